use crate::cri_api::{LinuxContainerSecurityContext, SecurityProfile};
use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompOperator};

use super::*;
use crate::spec::DEFAULT_CAPS;

fn names(s: &LinuxSeccomp) -> Vec<(String, LinuxSeccompAction, bool)> {
    s.syscalls()
        .iter()
        .flatten()
        .flat_map(|e| {
            e.names()
                .iter()
                .map(|n| (n.clone(), e.action(), e.args().is_some()))
        })
        .collect()
}

fn allowed_unconditionally(s: &LinuxSeccomp, name: &str) -> bool {
    names(s)
        .iter()
        .any(|(n, a, args)| n == name && *a == LinuxSeccompAction::ScmpActAllow && !args)
}

fn mentioned(s: &LinuxSeccomp, name: &str) -> bool {
    names(s).iter().any(|(n, _, _)| n == name)
}

fn default_caps() -> Vec<String> {
    DEFAULT_CAPS.iter().map(|c| c.to_string()).collect()
}

#[test]
fn default_profile_denies_by_default_and_follows_capabilities() {
    let p = SeccompProfile::runtime_default();
    let plain = p.resolve(&default_caps(), "amd64");
    assert_eq!(plain.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(plain.default_errno_ret(), Some(1));
    assert_eq!(
        plain.architectures().as_deref(),
        Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
    );
    for name in ["read", "execve", "setuid", "capset", "arch_prctl", "ptrace"] {
        assert!(allowed_unconditionally(&plain, name), "{name}");
    }
    for name in [
        "mount",
        "unshare",
        "setns",
        "keyctl",
        "add_key",
        "init_module",
        "reboot",
    ] {
        assert!(!mentioned(&plain, name), "{name} should be denied");
    }
    // clone only without namespace flags; clone3 answers ENOSYS so libc falls back to clone.
    let clone = plain
        .syscalls()
        .iter()
        .flatten()
        .find(|e| e.names() == &["clone"]);
    let args = clone.unwrap().args().clone().unwrap();
    assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
    assert_eq!(args[0].value(), 0x7e02_0000);
    let clone3 = plain
        .syscalls()
        .iter()
        .flatten()
        .find(|e| e.names() == &["clone3"]);
    assert_eq!(clone3.unwrap().errno_ret(), Some(libc::ENOSYS as u32));
    // chroot: a default capability.
    assert!(allowed_unconditionally(&plain, "chroot"));

    let mut admin = default_caps();
    admin.push("CAP_SYS_ADMIN".into());
    let admin = p.resolve(&admin, "arm64");
    for name in [
        "mount",
        "unshare",
        "setns",
        "sethostname",
        "clone",
        "clone3",
    ] {
        assert!(allowed_unconditionally(&admin, name), "{name}");
    }
    assert!(!mentioned(&admin, "arch_prctl"));
    assert_eq!(
        admin.architectures().as_deref(),
        Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
    );
    let none = p.resolve(&[], "amd64");
    assert!(!mentioned(&none, "chroot"));
}

#[test]
fn localhost_profiles_parse_in_oci_and_docker_forms() {
    let oci = r#"{"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}"#;
    let s = SeccompProfile::parse(oci, "x")
        .unwrap()
        .resolve(&[], "amd64");
    assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActAllow);
    assert_eq!(s.architectures(), &None);
    assert_eq!(
        names(&s),
        [(
            "sethostname".into(),
            LinuxSeccompAction::ScmpActErrno,
            false
        )]
    );

    let docker = r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
          {"name": "read", "action": "SCMP_ACT_ALLOW", "args": []},
          {"names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_BPF"]}},
          {"names": ["x"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}}],
        "comment": "ignored"}"#;
    let s = SeccompProfile::parse(docker, "x").unwrap();
    let plain = s.resolve(&[], "amd64");
    assert_eq!(
        names(&plain),
        [("read".into(), LinuxSeccompAction::ScmpActAllow, false)]
    );
    assert!(mentioned(&s.resolve(&["bpf".into()], "amd64"), "bpf"));

    let err = SeccompProfile::parse("{", "/etc/p.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("/etc/p.json"), "{err}");
    let err = SeccompProfile::parse(r#"{"defaultAction": "SCMP_ACT_NOPE"}"#, "p")
        .unwrap_err()
        .to_string();
    assert!(err.contains("SCMP_ACT_NOPE"), "{err}");
}

#[allow(deprecated)]
#[test]
fn the_security_context_picks_the_source() {
    let sc = |seccomp: Option<SecurityProfile>, path: &str, privileged| {
        let sc = LinuxContainerSecurityContext {
            seccomp,
            seccomp_profile_path: path.to_string(),
            privileged,
            ..Default::default()
        };
        seccomp_source(Some(&sc))
    };
    let profile = |t: ProfileType, r: &str| {
        Some(SecurityProfile {
            profile_type: t as i32,
            localhost_ref: r.to_string(),
        })
    };
    use SeccompSource::*;
    assert_eq!(seccomp_source(None).unwrap(), Unconfined);
    assert_eq!(sc(None, "", false).unwrap(), Unconfined);
    assert_eq!(sc(None, "runtime/default", false).unwrap(), RuntimeDefault);
    assert_eq!(sc(None, "docker/default", false).unwrap(), RuntimeDefault);
    assert_eq!(
        sc(None, "localhost//p.json", false).unwrap(),
        Localhost("/p.json".into())
    );
    assert_eq!(
        sc(profile(ProfileType::RuntimeDefault, ""), "", false).unwrap(),
        RuntimeDefault
    );
    assert_eq!(
        sc(profile(ProfileType::RuntimeDefault, ""), "", true).unwrap(),
        Unconfined
    );
    assert_eq!(
        sc(profile(ProfileType::Localhost, "/a/b.json"), "", false).unwrap(),
        Localhost("/a/b.json".into())
    );
    let err = sc(profile(ProfileType::Localhost, "b.json"), "", false).unwrap_err();
    assert!(err.to_string().contains("not an absolute path"), "{err}");
    let err = sc(None, "bogus", false).unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
}

#[test]
fn privileged_containers_get_no_filter() {
    assert_eq!(section(&SeccompChoice::RuntimeDefault, true, &[]), None);
    assert_eq!(section(&SeccompChoice::Unconfined, false, &[]), None);
    assert!(section(&SeccompChoice::RuntimeDefault, false, &[]).is_some());
}
