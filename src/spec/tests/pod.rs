//! Whole-spec tests of how a container joins its pod (host network, PID modes, missing paths)
//! and of its cgroup resources.

use crate::cri_api::LinuxContainerResources;
use oci_spec::runtime::LinuxNamespaceType;

use super::*;

#[test]
fn host_network_pod() {
    let mut f = Fixture::new();
    let host_net = namespaces(NamespaceMode::Node, NamespaceMode::Container);
    let pod_sc = f
        .sandbox
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap();
    pod_sc.namespace_options = Some(host_net);
    f.sandbox.hostname.clear();
    f.sandbox.linux.as_mut().unwrap().sysctls.clear();
    let spec = f.spec().unwrap();
    assert_eq!(spec.hostname(), &None);
    let types: Vec<_> = ns_types(&spec).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        types,
        [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Cgroup
        ]
    );
    let env = spec.process().as_ref().unwrap().env().clone().unwrap();
    assert!(env.contains(&"HOSTNAME=node-1".to_string()), "{env:?}");
}

#[test]
fn pid_namespace_modes() {
    let cases = [
        (NamespaceMode::Container, Some(None)),
        (
            NamespaceMode::Pod,
            Some(Some("/run/berth/sb-1/pid".to_string())),
        ),
        (NamespaceMode::Node, None),
    ];
    for (mode, want) in cases {
        let mut f = Fixture::new();
        f.security().namespace_options = Some(namespaces(NamespaceMode::Pod, mode));
        let spec = f.spec().unwrap();
        let pid = ns_types(&spec)
            .into_iter()
            .find(|(t, _)| *t == LinuxNamespaceType::Pid)
            .map(|(_, path)| path);
        assert_eq!(pid, want, "{mode:?}");
    }
}

#[test]
fn resources_and_oom_score() {
    let mut f = Fixture::new();
    f.container.linux.as_mut().unwrap().resources = Some(LinuxContainerResources {
        cpu_shares: 102,
        memory_limit_in_bytes: 64 << 20,
        oom_score_adj: 999,
        ..Default::default()
    });
    f.host.cgroup_v2 = false;
    let spec = f.spec().unwrap();
    assert_eq!(spec.process().as_ref().unwrap().oom_score_adj(), Some(999));
    let resources = spec.linux().as_ref().unwrap().resources().clone().unwrap();
    assert_eq!(resources.cpu().as_ref().unwrap().shares(), Some(102));
    assert_eq!(resources.memory().as_ref().unwrap().limit(), Some(64 << 20));
    assert!(
        !ns_types(&spec)
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::Cgroup)
    );
}

#[test]
fn empty_cgroups_path_is_left_unset() {
    let f = Fixture::new();
    let spec = container_spec(&ContainerInputs {
        cgroups_path: String::new(),
        namespaces: PodNamespaces {
            net: Some("/n".into()),
            ipc: Some("/i".into()),
            uts: Some("/u".into()),
            pid: None,
            user: None,
        },
        ..inputs_without_paths(&f)
    })
    .unwrap();
    assert_eq!(spec.linux().as_ref().unwrap().cgroups_path(), &None);
    let mounts = spec.mounts().as_ref().unwrap();
    let shm = mounts
        .iter()
        .find(|m| m.destination() == Path::new("/dev/shm"))
        .unwrap();
    assert_eq!(
        shm.typ().as_deref(),
        Some("tmpfs"),
        "no pod shm means a private tmpfs"
    );
    assert!(
        !mounts
            .iter()
            .any(|m| m.destination() == Path::new("/etc/hosts"))
    );
}

#[test]
fn errors_are_classified() {
    use crate::error::{Classify, Kind};
    let f = Fixture::new();
    let err = container_spec(&inputs_without_paths(&f)).unwrap_err();
    assert_eq!(err, SpecError::MissingNamespace("ipc"));
    assert_eq!(err.kind(), Kind::Internal);
    assert_eq!(
        SpecError::UserNamespace("mode CONTAINER".into()).kind(),
        Kind::InvalidArgument
    );
    let idmapped = SpecError::IdMappedMount {
        container_path: "/x".into(),
        reason: "other mappings".into(),
    };
    assert_eq!(idmapped.kind(), Kind::InvalidArgument);
    assert_eq!(
        SpecError::UnknownUser("x".into()).kind(),
        Kind::InvalidArgument
    );
}

#[test]
fn user_namespace_pod() {
    let mut f = Fixture::new();
    let map = vec![crate::cri_api::IdMapping {
        container_id: 0,
        host_id: 100000,
        length: 65536,
    }];
    let mut options = namespaces(NamespaceMode::Pod, NamespaceMode::Container);
    options.userns_options = Some(crate::cri_api::UserNamespace {
        mode: NamespaceMode::Pod as i32,
        uids: map.clone(),
        gids: map,
    });
    let pod_sc = f.sandbox.linux.as_mut().unwrap().security_context.as_mut();
    pod_sc.unwrap().namespace_options = Some(options.clone());
    f.security().namespace_options = Some(options);
    let spec = f.spec().unwrap();
    let types = ns_types(&spec);
    assert_eq!(
        types[0],
        (
            LinuxNamespaceType::User,
            Some("/run/berth/sb-1/user".to_string())
        ),
        "the user namespace is joined first: {types:?}"
    );
    let linux = spec.linux().as_ref().unwrap();
    for maps in [linux.uid_mappings(), linux.gid_mappings()] {
        let maps = maps.as_ref().unwrap();
        assert_eq!(maps.len(), 1);
        assert_eq!(
            (maps[0].container_id(), maps[0].host_id(), maps[0].size()),
            (0, 100000, 65536)
        );
    }
    // A container that asks for the host's user namespace in such a pod is refused.
    f.security()
        .namespace_options
        .as_mut()
        .unwrap()
        .userns_options = Some(crate::cri_api::UserNamespace {
        mode: NamespaceMode::Node as i32,
        ..Default::default()
    });
    assert!(matches!(f.spec(), Err(SpecError::UserNamespace(_))));
}
