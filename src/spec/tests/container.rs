//! Whole-spec tests of a container's process, root, mounts, capabilities and
//! privileged mode.

use oci_spec::runtime::{Capability, LinuxDeviceType, LinuxNamespaceType};

use super::*;

#[test]
fn typical_container() {
    let spec = Fixture::new().spec().unwrap();
    assert_eq!(spec.version(), OCI_VERSION);
    let root = spec.root().as_ref().unwrap();
    assert_eq!(root.path(), Path::new("/var/lib/berth/c1/rootfs"));
    assert_eq!(root.readonly(), Some(false));
    assert_eq!(spec.hostname().as_deref(), Some("web-0"));

    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.args().as_ref().unwrap(), &["/bin/server", "--port=80"]);
    assert_eq!(
        p.env().as_ref().unwrap(),
        &[
            "PATH=/app/bin:/bin",
            "HOSTNAME=web-0",
            "LANG=C.UTF-8",
            "MODE=prod"
        ]
    );
    assert_eq!(p.cwd(), Path::new("/"));
    assert_eq!(p.terminal(), Some(false));
    assert_eq!((p.user().uid(), p.user().gid()), (1000, 1000));
    assert_eq!(p.user().additional_gids().as_deref(), Some(&[20, 1000][..]));
    assert_eq!(p.no_new_privileges(), Some(false));
    assert_eq!(p.oom_score_adj(), None);
    assert_eq!(p.rlimits(), &None, "rlimits are inherited from the shim");
    let bounding = p
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .clone()
        .unwrap();
    assert_eq!(bounding, DEFAULT_CAPS.into_iter().collect());

    assert_eq!(
        ns_types(&spec),
        [
            (LinuxNamespaceType::Pid, None),
            (LinuxNamespaceType::Ipc, Some("/run/berth/sb-1/ipc".into())),
            (LinuxNamespaceType::Uts, Some("/run/berth/sb-1/uts".into())),
            (LinuxNamespaceType::Mount, None),
            (
                LinuxNamespaceType::Network,
                Some("/run/berth/sb-1/net".into())
            ),
            (LinuxNamespaceType::Cgroup, None),
        ]
    );
    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(Path::new("/kubepods/pod-uid-1/c1"))
    );
    assert_eq!(
        linux.sysctl().as_ref().unwrap()["net.ipv4.ip_unprivileged_port_start"],
        "0"
    );
    assert_eq!(
        linux.masked_paths().as_ref().unwrap().len(),
        DEFAULT_MASKED_PATHS.len()
    );
    assert_eq!(
        linux.readonly_paths().as_ref().unwrap().len(),
        DEFAULT_READONLY_PATHS.len()
    );
    assert_eq!(linux.seccomp(), &None);
    assert_eq!(linux.devices(), &None);

    let annotations = spec.annotations().as_ref().unwrap();
    assert_eq!(annotations["team"], "a");
    assert_eq!(annotations["io.kubernetes.cri.container-type"], "container");
    assert_eq!(annotations["io.kubernetes.cri.container-name"], "web");
    assert_eq!(annotations["io.kubernetes.cri.sandbox-id"], "sb-1");
    assert_eq!(
        annotations["io.kubernetes.cri.sandbox-namespace"],
        "default"
    );
    assert_eq!(
        annotations["io.kubernetes.cri.image-name"],
        "docker.io/library/web:1"
    );
}

#[test]
fn no_library_defaults_leak_into_the_spec() {
    let spec = Fixture::new().spec().unwrap();
    let json = serde_json::to_string(&spec).unwrap();
    for leftover in ["youki", "TERM=xterm", "\"sh\"", "\"rootfs\"", "/run\""] {
        assert!(!json.contains(leftover), "{leftover} in {json}");
    }
    let back: Spec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec, "the spec survives config.json");
    assert_eq!(
        Fixture::new().spec().unwrap(),
        spec,
        "same inputs, same spec"
    );
}

#[test]
fn readonly_rootfs_and_no_new_privs() {
    let mut f = Fixture::new();
    f.security().readonly_rootfs = true;
    f.security().no_new_privs = true;
    let spec = f.spec().unwrap();
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    assert_eq!(
        spec.process().as_ref().unwrap().no_new_privileges(),
        Some(true)
    );
    assert_eq!(
        mount_options(&spec, "/etc/resolv.conf"),
        ["rbind", "rprivate", "ro"]
    );
    assert_eq!(
        mount_options(&spec, "/dev/shm"),
        ["rbind", "rprivate", "rw"]
    );
}

#[test]
fn privileged_container() {
    let mut f = Fixture::new();
    f.security().privileged = true;
    assert_eq!(
        f.spec(),
        Err(SpecError::PrivilegedInUnprivilegedPod("web".into()))
    );

    let pod_sc = f
        .sandbox
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap();
    pod_sc.privileged = true;
    let spec = f.spec().unwrap();
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    assert!(
        caps.bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin)
    );
    assert_eq!(caps.bounding().as_ref().unwrap().len(), ALL_CAPS.len());
    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(linux.masked_paths().as_deref(), Some(&[][..]));
    assert_eq!(linux.readonly_paths().as_deref(), Some(&[][..]));
    let rules = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .clone()
        .unwrap();
    assert_eq!(rules.len(), 1);
    assert!(rules[0].allow());
    assert_eq!(mount_options(&spec, "/sys").last(), Some(&"rw"));
    assert!(
        !ns_types(&spec)
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::Cgroup)
    );
}

#[test]
fn privileged_without_host_devices_keeps_the_default_device_policy() {
    let mut f = Fixture::new();
    f.security().privileged = true;
    let pod = f.sandbox.linux.as_mut().unwrap();
    pod.security_context.as_mut().unwrap().privileged = true;
    let rules = |host_devices: bool| {
        let spec = container_spec(&ContainerInputs {
            privileged_host_devices: host_devices,
            namespaces: PodNamespaces {
                net: Some("/n".into()),
                ipc: Some("/i".into()),
                uts: Some("/u".into()),
                pid: Some("/p".into()),
                user: None,
            },
            ..inputs_without_paths(&f)
        })
        .unwrap();
        let linux = spec.linux().clone().unwrap();
        linux
            .resources()
            .clone()
            .unwrap()
            .devices()
            .clone()
            .unwrap()
    };
    let all = rules(true);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].allow() && all[0].typ() == Some(LinuxDeviceType::A));
    let default = rules(false);
    assert!(!default[0].allow(), "deny all first: {default:?}");
    assert!(
        default
            .iter()
            .skip(1)
            .all(|r| r.typ() != Some(LinuxDeviceType::A))
    );
}
