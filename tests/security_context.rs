//! What a pod's securityContext asks for is enforced, observed from inside real containers:
//! users and groups, read-only rootfs, capabilities, no_new_privs; confinement berth cannot
//! apply yet (seccomp) is refused instead of silently dropped. Root; local registry.

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

#[tokio::test]
async fn seccomp_confinement_is_refused_not_dropped() {
    let mut f = fixture("confined", "library/busybox:latest").await;
    let mut config = container_config("confined", &f.image, &["true"]);
    config.linux = Some(api::LinuxContainerConfig {
        security_context: Some(api::LinuxContainerSecurityContext {
            seccomp: Some(api::SecurityProfile {
                profile_type: api::security_profile::ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
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
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");
    assert!(err.message().contains("seccomp"), "{err:?}");
    remove_pod(&mut f.cri, &f.pod.id).await;
}
