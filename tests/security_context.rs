//! What a pod's securityContext asks for is enforced, observed from inside real containers:
//! users and groups, read-only rootfs, capabilities, no_new_privs, seccomp (berth's default
//! profile and Localhost profiles). Root; local registry.

mod common;

use berth::cri::api;
use common::pods::*;

/// Runs `sleep` with the security context and returns `sh -c script`'s stdout and exit code.
async fn run_with(
    f: &mut Fixture,
    name: &str,
    sc: api::LinuxContainerSecurityContext,
    script: &str,
) -> (String, i32) {
    let mut config = container_config(name, &f.image, &["sleep", "1000"]);
    config.linux = Some(api::LinuxContainerConfig {
        security_context: Some(sc),
        ..Default::default()
    });
    let id = start_container(&mut f.cri, &f.pod, config).await;
    let out = exec(&mut f.cri, &id, &["sh", "-c", script], 10)
        .await
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        out.exit_code,
    )
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[tokio::test]
async fn users_groups_and_supplemental_groups() {
    let mut f = fixture("ids", "library/busybox:latest").await;
    let sc = api::LinuxContainerSecurityContext {
        run_as_user: Some(api::Int64Value { value: 1234 }),
        run_as_group: Some(api::Int64Value { value: 5678 }),
        supplemental_groups: vec![4000, 4001],
        ..Default::default()
    };
    let (out, _) = run_with(&mut f, "ids", sc, "id -u; id -g; id -G").await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1234");
    assert_eq!(lines[1], "5678");
    let groups: Vec<&str> = lines[2].split(' ').collect();
    assert!(
        groups.contains(&"4000") && groups.contains(&"4001"),
        "{out}"
    );

    let sc = api::LinuxContainerSecurityContext {
        run_as_username: "app".into(),
        ..Default::default()
    };
    let (out, _) = run_with(&mut f, "named", sc, "id -un").await;
    assert_eq!(out, "app", "the image's /etc/passwd resolves the name");
    remove_pod(&mut f.cri, &f.pod.id).await;
}

#[tokio::test]
async fn readonly_rootfs_capabilities_and_no_new_privs() {
    let mut f = fixture("locked", "library/busybox:latest").await;
    let sc = api::LinuxContainerSecurityContext {
        readonly_rootfs: true,
        no_new_privs: true,
        capabilities: Some(api::Capability {
            drop_capabilities: vec!["ALL".into()],
            add_capabilities: vec!["NET_BIND_SERVICE".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let script = "touch /x 2>/dev/null && echo wrote; cat /proc/self/status";
    let (out, _) = run_with(&mut f, "locked", sc, script).await;
    assert!(
        !out.contains("wrote"),
        "the rootfs must be read-only: {out}"
    );
    assert_eq!(
        status_field(&out, "CapEff"),
        "0000000000000400",
        "only CAP_NET_BIND_SERVICE"
    );
    assert_eq!(status_field(&out, "CapBnd"), "0000000000000400");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");

    // the defaults: containerd's capability set, new privileges allowed
    let (out, _) = run_with(
        &mut f,
        "default",
        Default::default(),
        "cat /proc/self/status",
    )
    .await;
    assert_eq!(
        status_field(&out, "CapEff"),
        "00000000a80425fb",
        "containerd's default set"
    );
    assert_eq!(status_field(&out, "NoNewPrivs"), "0");
    remove_pod(&mut f.cri, &f.pod.id).await;
}

fn security_profile(
    profile_type: api::security_profile::ProfileType,
    path: &str,
) -> Option<api::SecurityProfile> {
    Some(api::SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref: path.to_string(),
    })
}

#[tokio::test]
async fn seccomp_runtime_default_filters_the_container_and_its_execs() {
    use api::security_profile::ProfileType;
    let mut f = fixture("seccomp", "library/busybox:latest").await;
    // The container's own process and an exec'd one are both filtered; unshare is denied by
    // the profile (the kernel alone would let root create a user namespace).
    let script = "grep Seccomp: /proc/$(pidof sleep)/status; grep Seccomp: /proc/self/status; \
                  unshare -U true 2>&1; echo rc=$?";
    let confined = api::LinuxContainerSecurityContext {
        seccomp: security_profile(ProfileType::RuntimeDefault, ""),
        ..Default::default()
    };
    let (out, _) = run_with(&mut f, "default", confined, script).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].split_whitespace().nth(1), Some("2"), "{out}");
    assert_eq!(lines[1].split_whitespace().nth(1), Some("2"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(!out.ends_with("rc=0"), "{out}");

    let unconfined = api::LinuxContainerSecurityContext {
        seccomp: security_profile(ProfileType::Unconfined, ""),
        ..Default::default()
    };
    let (out, _) = run_with(&mut f, "unconfined", unconfined, script).await;
    assert!(out.starts_with("Seccomp:\t0"), "{out}");
    assert!(
        out.ends_with("rc=0"),
        "without the filter unshare works: {out}"
    );

    // With no_new_privs the filter is loaded last, after the credentials change.
    let nnp = api::LinuxContainerSecurityContext {
        seccomp: security_profile(ProfileType::RuntimeDefault, ""),
        no_new_privs: true,
        run_as_user: Some(api::Int64Value { value: 1000 }),
        ..Default::default()
    };
    let script = "cat /proc/self/status; unshare -U true 2>&1; echo rc=$?";
    let (out, _) = run_with(&mut f, "nnp", nnp, script).await;
    assert_eq!(status_field(&out, "Seccomp"), "2", "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), "1", "{out}");
    assert_eq!(
        status_field(&out, "Uid").split_whitespace().next(),
        Some("1000")
    );
    assert!(out.contains("Operation not permitted"), "{out}");
    remove_pod(&mut f.cri, &f.pod.id).await;
}

#[tokio::test]
async fn seccomp_localhost_profiles() {
    use api::security_profile::ProfileType;
    let mut f = fixture("localhost", "library/busybox:latest").await;
    let dir = tempfile::tempdir().unwrap();
    let block_chmod = dir.path().join("block-chmod.json");
    std::fs::write(
        &block_chmod,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["chmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let sc = api::LinuxContainerSecurityContext {
        seccomp: security_profile(ProfileType::Localhost, block_chmod.to_str().unwrap()),
        ..Default::default()
    };
    let (out, _) = run_with(&mut f, "chmod", sc, "chmod 400 / 2>&1; echo rc=$?").await;
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(!out.ends_with("rc=0"), "{out}");

    // A profile can deny what a capability allows: sethostname with CAP_SYS_ADMIN.
    let block_hostname = dir.path().join("block-hostname.json");
    std::fs::write(
        &block_hostname,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let with_admin = |profile| api::LinuxContainerSecurityContext {
        seccomp: profile,
        capabilities: Some(api::Capability {
            add_capabilities: vec!["SYS_ADMIN".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let script = "hostname renamed 2>&1; echo rc=$?";
    let profile = security_profile(ProfileType::Localhost, block_hostname.to_str().unwrap());
    let (out, _) = run_with(&mut f, "blocked", with_admin(profile), script).await;
    assert!(out.contains("rc=1"), "{out}");
    let (out, _) = run_with(&mut f, "allowed", with_admin(None), script).await;
    assert_eq!(out, "rc=0");

    // A missing, relative or malformed profile is the caller's error, named.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"defaultAction\": 1}").unwrap();
    let missing = dir.path().join("missing.json");
    for (path, says) in [
        (missing.to_str().unwrap(), "missing.json"),
        ("relative.json", "not an absolute path"),
        (bad.to_str().unwrap(), "bad.json"),
    ] {
        let mut config = container_config("bad-profile", &f.image, &["true"]);
        config.linux = Some(api::LinuxContainerConfig {
            security_context: Some(api::LinuxContainerSecurityContext {
                seccomp: security_profile(ProfileType::Localhost, path),
                ..Default::default()
            }),
            ..Default::default()
        });
        let req = api::CreateContainerRequest {
            pod_sandbox_id: f.pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(f.pod.config.clone()),
        };
        let err = f.cri.runtime.create_container(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(says), "{err:?}");
    }
    remove_pod(&mut f.cri, &f.pod.id).await;
}

#[tokio::test]
async fn supplemental_groups_policy_and_the_reported_user() {
    let mut f = fixture("groups", "library/busybox:latest").await;
    let runtime_status = f.cri.runtime.status(api::StatusRequest::default()).await;
    let features = runtime_status.unwrap().into_inner().features.unwrap();
    assert!(features.supplemental_groups_policy);
    // The image's user `app` (1000) is a member of `users` (100) in its /etc/group.
    for (policy, want) in [
        (api::SupplementalGroupsPolicy::Merge, vec![100, 1000, 4000]),
        (api::SupplementalGroupsPolicy::Strict, vec![1000, 4000]),
    ] {
        let name = format!("groups-{}", policy.as_str_name().to_lowercase());
        let mut config = container_config(&name, &f.image, &["sleep", "1000"]);
        config.linux = Some(api::LinuxContainerConfig {
            security_context: Some(api::LinuxContainerSecurityContext {
                run_as_user: Some(api::Int64Value { value: 1000 }),
                supplemental_groups: vec![4000],
                supplemental_groups_policy: policy as i32,
                ..Default::default()
            }),
            ..Default::default()
        });
        let id = start_container(&mut f.cri, &f.pod, config).await;
        let out = exec(&mut f.cri, &id, &["id", "-G"], 10).await.unwrap();
        let mut got: Vec<i64> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|g| g.parse().unwrap())
            .collect();
        got.sort();
        assert_eq!(got, want, "{policy:?}: id -G inside");
        let user = status(&mut f.cri, &id).await.user.unwrap().linux.unwrap();
        assert_eq!((user.uid, user.gid), (1000, 1000), "{policy:?}");
        assert_eq!(
            user.supplemental_groups, want,
            "{policy:?}: ContainerStatus.user"
        );
    }
    remove_pod(&mut f.cri, &f.pod.id).await;
}

#[tokio::test]
async fn apparmor_profiles_follow_the_host() {
    use api::security_profile::ProfileType;
    let mut f = fixture("apparmor", "library/busybox:latest").await;
    let host_has_apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y");
    let create = |profile_type: ProfileType, name: &str| {
        let mut config = container_config(name, &f.image, &["true"]);
        config.linux = Some(api::LinuxContainerConfig {
            security_context: Some(api::LinuxContainerSecurityContext {
                apparmor: security_profile(profile_type, "localhost/berth-test"),
                ..Default::default()
            }),
            ..Default::default()
        });
        api::CreateContainerRequest {
            pod_sandbox_id: f.pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(f.pod.config.clone()),
        }
    };
    let localhost = create(ProfileType::Localhost, "aa-localhost");
    let default = create(ProfileType::RuntimeDefault, "aa-default");
    let err = f.cri.runtime.create_container(localhost).await.unwrap_err();
    let default = f.cri.runtime.create_container(default).await;
    if host_has_apparmor {
        // Not applied yet: refused rather than run unconfined.
        assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
        assert_eq!(default.unwrap_err().code(), tonic::Code::Unimplemented);
    } else {
        // Nothing to apply a profile with: a named profile is an error, the default is moot.
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("AppArmor is not enabled"), "{err:?}");
        default.unwrap();
    }
    remove_pod(&mut f.cri, &f.pod.id).await;
}

#[tokio::test]
async fn the_default_seccomp_profile_runs_a_glibc_userland() {
    use api::security_profile::ProfileType;
    let mut f = fixture("glibc", "library/debian:bookworm").await;
    let sc = api::LinuxContainerSecurityContext {
        seccomp: security_profile(ProfileType::RuntimeDefault, ""),
        ..Default::default()
    };
    // Threads (sort --parallel: glibc tries clone3 first and falls back to clone on ENOSYS),
    // process creation, file and user database calls.
    let script = "grep Seccomp: /proc/self/status; \
                  seq 1 300000 | sort -n -r --parallel=4 -S 2M | head -1; \
                  id -un; ls / >/dev/null && date +%Y >/dev/null && echo done";
    let (out, code) = run_with(&mut f, "debian", sc, script).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "Seccomp:\t2\n300000\nroot\ndone");
    remove_pod(&mut f.cri, &f.pod.id).await;
}
