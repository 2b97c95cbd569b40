//! Table tests for namespaces, resources, devices and protected paths.

use std::path::PathBuf;

use crate::cri_api::{HugepageLimit, NamespaceOption};

use super::*;

fn given() -> PodNamespaces {
    PodNamespaces {
        net: Some("/run/berth/ns/net".into()),
        ipc: Some("/run/berth/ns/ipc".into()),
        uts: Some("/run/berth/ns/uts".into()),
        pid: Some("/run/berth/ns/pid".into()),
        user: None,
    }
}

fn pid_mode(mode: NamespaceMode) -> LinuxContainerSecurityContext {
    LinuxContainerSecurityContext {
        namespace_options: Some(NamespaceOption {
            pid: mode as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn summary(ns: &[LinuxNamespace]) -> Vec<(String, Option<String>)> {
    ns.iter()
        .map(|n| {
            let path = n.path().as_ref().map(|p| p.to_string_lossy().into_owned());
            (n.typ().to_string(), path)
        })
        .collect()
}

#[test]
fn namespaces_by_pod_plan_and_pid_mode() {
    use NamespaceMode::*;
    let pod = PinnedNamespaces {
        net: true,
        ipc: true,
        uts: true,
        pid: false,
    };
    let host_net = PinnedNamespaces {
        net: false,
        uts: false,
        ..pod
    };
    let all_host = PinnedNamespaces::default();
    let p = |s: &str| Some(s.to_string());
    let new = None;
    // (pinned, container pid mode, cgroupns, want)
    let cases = [
        (
            pod,
            Container,
            true,
            vec![
                ("pid", new.clone()),
                ("ipc", p("/run/berth/ns/ipc")),
                ("uts", p("/run/berth/ns/uts")),
                ("mnt", new.clone()),
                ("net", p("/run/berth/ns/net")),
                ("cgroup", new.clone()),
            ],
        ),
        (
            pod,
            Pod,
            false,
            vec![
                ("pid", p("/run/berth/ns/pid")),
                ("ipc", p("/run/berth/ns/ipc")),
                ("uts", p("/run/berth/ns/uts")),
                ("mnt", new.clone()),
                ("net", p("/run/berth/ns/net")),
            ],
        ),
        (
            host_net,
            Container,
            false,
            vec![
                ("pid", new.clone()),
                ("ipc", p("/run/berth/ns/ipc")),
                ("mnt", new.clone()),
            ],
        ),
        (all_host, Node, false, vec![("mnt", new.clone())]),
        (
            all_host,
            Target,
            false,
            vec![("pid", p("/run/berth/ns/pid")), ("mnt", new)],
        ),
    ];
    for (pinned, pid, cgroupns, want) in cases {
        let got = namespaces(pinned, Some(&pid_mode(pid)), &given(), cgroupns, false).unwrap();
        let want: Vec<_> = want.into_iter().map(|(t, p)| (t.to_string(), p)).collect();
        assert_eq!(summary(&got), want, "{pinned:?} {pid:?}");
    }
}

#[test]
fn no_security_context_means_pid_mode_pod() {
    let got = namespaces(PinnedNamespaces::default(), None, &given(), false, false).unwrap();
    assert_eq!(
        summary(&got)[0],
        ("pid".into(), Some("/run/berth/ns/pid".into()))
    );
}

#[test]
fn a_pinned_namespace_without_a_path_is_an_error() {
    let pinned = PinnedNamespaces {
        net: true,
        ..Default::default()
    };
    let missing = PodNamespaces {
        net: None,
        ..given()
    };
    let sc = pid_mode(NamespaceMode::Container);
    assert_eq!(
        namespaces(pinned, Some(&sc), &missing, false, false),
        Err(SpecError::MissingNamespace("network"))
    );
    let no_pid = PodNamespaces {
        pid: None,
        ..given()
    };
    let sc = pid_mode(NamespaceMode::Pod);
    let shared_pid = PinnedNamespaces {
        pid: true,
        ..Default::default()
    };
    assert_eq!(
        namespaces(shared_pid, Some(&sc), &no_pid, false, false),
        Err(SpecError::MissingNamespace("pid"))
    );
}

#[test]
fn pid_mode_pod_follows_a_pod_without_a_shared_pid_namespace() {
    let no_pid = PodNamespaces {
        pid: None,
        ..given()
    };
    let sc = pid_mode(NamespaceMode::Pod);
    let none = PinnedNamespaces::default();
    // a host-PID pod: the container is in the host's PID namespace too
    let got = namespaces(none, Some(&sc), &no_pid, false, true).unwrap();
    assert!(summary(&got).iter().all(|(t, _)| t != "pid"), "{got:?}");
    // a pod whose containers each have their own: a new one
    let got = namespaces(none, Some(&sc), &no_pid, false, false).unwrap();
    assert_eq!(summary(&got)[0], ("pid".into(), None));
}

#[test]
fn translates_cri_resources() {
    let r = LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 512,
        memory_limit_in_bytes: 256 << 20,
        oom_score_adj: 0,
        cpuset_cpus: "0-1".into(),
        cpuset_mems: "0".into(),
        hugepage_limits: vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 4 << 20,
        }],
        unified: [("memory.high".to_string(), "200M".to_string())].into(),
        memory_swap_limit_in_bytes: 0,
    };
    let out = resources(Some(&r), &[], false, true).unwrap();
    let cpu = out.cpu().as_ref().unwrap();
    assert_eq!(cpu.shares(), Some(512));
    assert_eq!(cpu.quota(), Some(50_000));
    assert_eq!(cpu.period(), Some(100_000));
    assert_eq!(cpu.cpus().as_deref(), Some("0-1"));
    assert_eq!(cpu.mems().as_deref(), Some("0"));
    let memory = out.memory().as_ref().unwrap();
    assert_eq!(memory.limit(), Some(256 << 20));
    assert_eq!(
        memory.swap(),
        Some(256 << 20),
        "no swap limit means no swapping"
    );
    let huge = out.hugepage_limits().as_ref().unwrap();
    assert_eq!(
        (huge[0].page_size().as_str(), huge[0].limit()),
        ("2MB", 4 << 20)
    );
    assert_eq!(out.unified().as_ref().unwrap()["memory.high"], "200M");
    assert_eq!(out.pids(), &None);
}

#[test]
fn memory_and_swap_limits() {
    // (memory limit, swap limit, swap controller, want limit, want swap)
    let cases = [
        (0, 0, true, None, None),
        (100, 0, true, Some(100), Some(100)),
        (100, 300, true, Some(100), Some(300)),
        (100, -1, true, Some(100), Some(-1)),
        (100, 300, false, Some(100), None),
        (0, 300, true, None, Some(300)),
    ];
    for (limit, swap, controller, want_limit, want_swap) in cases {
        let r = LinuxContainerResources {
            memory_limit_in_bytes: limit,
            memory_swap_limit_in_bytes: swap,
            ..Default::default()
        };
        let out = resources(Some(&r), &[], false, controller).unwrap();
        let got = out.memory().map(|m| (m.limit(), m.swap()));
        let want = (want_limit.is_some() || want_swap.is_some()).then_some((want_limit, want_swap));
        assert_eq!(got, want, "{limit} {swap} {controller}");
    }
}

#[test]
fn unset_resources_add_only_device_rules() {
    for r in [None, Some(LinuxContainerResources::default())] {
        let out = resources(r.as_ref(), &[], false, true).unwrap();
        assert_eq!(out.cpu(), &None);
        assert_eq!(out.memory(), &None);
        assert_eq!(out.hugepage_limits(), &None);
        assert_eq!(out.unified(), &None);
        assert!(out.devices().as_ref().is_some_and(|d| !d.is_empty()));
    }
}

/// UpdateContainerResources must not reset the device policy (a privileged container or one
/// with CRI devices would lose them).
#[test]
fn updated_resources_carry_no_device_rules() {
    let r = LinuxContainerResources {
        memory_limit_in_bytes: 64 << 20,
        ..Default::default()
    };
    let out = crate::spec::container_resources(&r, &crate::spec::Host::default()).unwrap();
    assert_eq!(out.devices(), &None);
    assert!(out.memory().is_some());
}

/// kubelet sends a hugepage limit for every page size the machine has; without a hugetlb
/// controller an external runtime (runc) would fail the container on it, so none is set.
#[test]
fn hugepage_limits_only_with_a_hugetlb_controller() {
    let r = LinuxContainerResources {
        hugepage_limits: vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 0,
        }],
        ..Default::default()
    };
    for controller in [false, true] {
        let host = crate::spec::Host {
            hugetlb_controller: controller,
            ..Default::default()
        };
        let out = crate::spec::container_resources(&r, &host).unwrap();
        let pages = out.hugepage_limits().as_ref().map(|h| h.len());
        assert_eq!(pages, controller.then_some(1), "controller {controller}");
    }
}

#[test]
fn negative_shares_and_periods_are_errors() {
    for (shares, period, field) in [(-2, 0, "cpu_shares"), (0, -1, "cpu_period")] {
        let r = LinuxContainerResources {
            cpu_shares: shares,
            cpu_period: period,
            ..Default::default()
        };
        let err = resources(Some(&r), &[], false, true).unwrap_err();
        assert!(
            matches!(err, SpecError::Resource { field: f, .. } if f == field),
            "{err}"
        );
    }
}

fn gpu(permissions: &str) -> DeviceNode {
    DeviceNode {
        path: PathBuf::from("/dev/nvidia0"),
        typ: LinuxDeviceType::C,
        major: 195,
        minor: 0,
        file_mode: 0o666,
        uid: 0,
        gid: 0,
        permissions: permissions.into(),
    }
}

fn rule_summary(r: &LinuxDeviceCgroup) -> (bool, String, Option<i64>, Option<i64>, String) {
    let typ = r.typ().map(|t| t.as_str().to_string()).unwrap_or_default();
    (
        r.allow(),
        typ,
        r.major(),
        r.minor(),
        r.access().clone().unwrap_or_default(),
    )
}

#[test]
fn device_allow_list() {
    let out = resources(None, &[gpu("rw")], false, true).unwrap();
    let rules: Vec<_> = out
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .map(rule_summary)
        .collect();
    let r = |allow, t: &str, major, minor, access: &str| {
        (allow, t.to_string(), major, minor, access.to_string())
    };
    assert_eq!(
        rules[0],
        r(false, "a", None, None, "rwm"),
        "deny everything first"
    );
    for want in [
        r(true, "c", None, None, "m"),
        r(true, "b", None, None, "m"),
        r(true, "c", Some(1), Some(3), "rwm"),
        r(true, "c", Some(1), Some(9), "rwm"),
        r(true, "c", Some(5), Some(2), "rwm"),
        r(true, "c", Some(136), None, "rwm"),
    ] {
        assert!(rules.contains(&want), "{want:?}");
    }
    assert_eq!(rules.last(), Some(&r(true, "c", Some(195), Some(0), "rw")));

    let privileged = resources(None, &[gpu("rw")], true, true).unwrap();
    let rules: Vec<_> = privileged
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .map(rule_summary)
        .collect();
    assert_eq!(rules, [r(true, "a", None, None, "rwm")]);

    let nodes = device_nodes(&[gpu("rw")]);
    assert_eq!(nodes[0].path(), &PathBuf::from("/dev/nvidia0"));
    assert_eq!((nodes[0].major(), nodes[0].minor()), (195, 0));
    assert_eq!(nodes[0].file_mode(), Some(0o666));
}

#[test]
fn device_permissions_are_validated() {
    for bad in ["", "rwx", "RW"] {
        let err = resources(None, &[gpu(bad)], false, true).unwrap_err();
        assert!(
            matches!(err, SpecError::DevicePermissions { .. }),
            "{bad:?}"
        );
    }
}

#[test]
fn masked_and_readonly_paths() {
    let defaults = |d: &[&str]| d.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let custom = LinuxContainerSecurityContext {
        masked_paths: vec!["/proc/secret".into()],
        readonly_paths: vec!["/proc/ro".into()],
        ..Default::default()
    };
    let privileged = LinuxContainerSecurityContext {
        privileged: true,
        ..custom.clone()
    };
    let cases = [
        (
            None,
            false,
            defaults(&DEFAULT_MASKED_PATHS),
            defaults(&DEFAULT_READONLY_PATHS),
        ),
        (
            Some(LinuxContainerSecurityContext::default()),
            false,
            defaults(&DEFAULT_MASKED_PATHS),
            defaults(&DEFAULT_READONLY_PATHS),
        ),
        (
            Some(custom),
            false,
            defaults(&["/proc/secret"]),
            defaults(&["/proc/ro"]),
        ),
        (Some(privileged), true, vec![], vec![]),
    ];
    for (sc, privileged, masked, readonly) in cases {
        assert_eq!(
            protected_paths(sc.as_ref(), privileged),
            (masked, readonly),
            "{sc:?}"
        );
    }
}
