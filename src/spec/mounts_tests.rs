//! Table tests for the mount table: defaults, pod files, CRI mounts, order and overrides.

use super::*;

/// The mount table of a pod without a user namespace.
fn mounts(
    cri: &[CriMount],
    etc: &EtcFiles,
    shm: Option<&Path>,
    privileged: bool,
    readonly_rootfs: bool,
) -> Result<MountPlan, SpecError> {
    super::mounts(cri, etc, shm, privileged, readonly_rootfs, None)
}

const DEFAULTS: [&str; 7] = [
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/sys",
    "/sys/fs/cgroup",
];

fn cri(container_path: &str, host_path: &str) -> CriMount {
    CriMount {
        container_path: container_path.into(),
        host_path: host_path.into(),
        ..Default::default()
    }
}

fn etc() -> EtcFiles {
    EtcFiles {
        hosts: Some("/pod/hosts".into()),
        resolv_conf: Some("/pod/resolv.conf".into()),
        hostname: Some("/pod/hostname".into()),
    }
}

fn destinations(plan: &MountPlan) -> Vec<String> {
    plan.mounts
        .iter()
        .map(|m| m.destination().to_string_lossy().into_owned())
        .collect()
}

fn find<'a>(plan: &'a MountPlan, destination: &str) -> &'a Mount {
    plan.mounts
        .iter()
        .find(|m| m.destination() == Path::new(destination))
        .unwrap_or_else(|| panic!("no mount at {destination}"))
}

fn options(m: &Mount) -> Vec<&str> {
    m.options()
        .as_ref()
        .unwrap()
        .iter()
        .map(String::as_str)
        .collect()
}

#[test]
fn order_and_overrides() {
    // (CRI mounts, shm, expected destinations in order)
    let cases: Vec<(Vec<CriMount>, Option<&str>, Vec<&str>)> = vec![
        (vec![], None, DEFAULTS.to_vec()),
        (
            vec![],
            Some("/pod/shm"),
            vec![
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/dev/shm",
            ],
        ),
        (
            vec![
                cri("/data/a/b", "/h1"),
                cri("/data", "/h2"),
                cri("/data/a", "/h3"),
            ],
            None,
            [&DEFAULTS[..], &["/data", "/data/a", "/data/a/b"]].concat(),
        ),
        (
            vec![cri("/dev", "/host/dev")],
            Some("/pod/shm"),
            vec!["/proc", "/sys", "/sys/fs/cgroup", "/dev", "/dev/shm"],
        ),
        (
            vec![
                cri("/sys/fs/cgroup", "/host/cg"),
                cri("/proc/", "/host/proc"),
            ],
            None,
            vec![
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/proc",
                "/sys/fs/cgroup",
            ],
        ),
    ];
    for (cri_mounts, shm, want) in cases {
        let plan = mounts(
            &cri_mounts,
            &EtcFiles::default(),
            shm.map(Path::new),
            false,
            false,
        )
        .unwrap();
        assert_eq!(destinations(&plan), want, "{cri_mounts:?} {shm:?}");
    }
}

#[test]
fn pod_files_follow_defaults_and_yield_to_cri_mounts() {
    let plan = mounts(
        &[cri("/etc/hosts", "/kubelet/hosts")],
        &etc(),
        None,
        false,
        false,
    )
    .unwrap();
    let want = [
        &DEFAULTS[..],
        &["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"],
    ]
    .concat();
    assert_eq!(destinations(&plan), want);
    assert_eq!(
        find(&plan, "/etc/hosts").source().as_deref(),
        Some(Path::new("/kubelet/hosts"))
    );
    let hostname = find(&plan, "/etc/hostname");
    assert_eq!(hostname.typ().as_deref(), Some("bind"));
    assert_eq!(options(hostname), ["rbind", "rprivate", "rw"]);
}

#[test]
fn readonly_rootfs_makes_pod_files_readonly_but_not_shm() {
    let plan = mounts(&[], &etc(), Some(Path::new("/pod/shm")), false, true).unwrap();
    for dest in ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"] {
        assert_eq!(
            options(find(&plan, dest)),
            ["rbind", "rprivate", "ro"],
            "{dest}"
        );
    }
    assert_eq!(
        options(find(&plan, "/dev/shm")),
        ["rbind", "rprivate", "rw"]
    );
}

#[test]
fn cri_mount_options_and_rootfs_propagation() {
    use MountPropagation::*;
    // (readonly, recursive_read_only, propagation, options, rootfs propagation)
    let cases = [
        (
            false,
            false,
            PropagationPrivate,
            ["rbind", "rprivate", "rw"],
            None,
        ),
        (
            true,
            false,
            PropagationPrivate,
            ["rbind", "rprivate", "ro"],
            None,
        ),
        (
            true,
            true,
            PropagationPrivate,
            ["rbind", "rprivate", "rro"],
            None,
        ),
        (
            false,
            false,
            PropagationHostToContainer,
            ["rbind", "rslave", "rw"],
            Some("rslave"),
        ),
        (
            true,
            false,
            PropagationBidirectional,
            ["rbind", "rshared", "ro"],
            Some("rshared"),
        ),
    ];
    for (readonly, rro, propagation, want, rootfs) in cases {
        let m = CriMount {
            readonly,
            recursive_read_only: rro,
            propagation: propagation as i32,
            selinux_relabel: true,
            ..cri("/vol", "/host/vol")
        };
        let plan = mounts(&[m], &EtcFiles::default(), None, false, false).unwrap();
        assert_eq!(
            options(find(&plan, "/vol")),
            want,
            "{readonly} {rro} {propagation:?}"
        );
        assert_eq!(plan.rootfs_propagation.as_deref(), rootfs);
    }
    let both = [
        CriMount {
            propagation: PropagationHostToContainer as i32,
            ..cri("/a", "/ha")
        },
        CriMount {
            propagation: PropagationBidirectional as i32,
            ..cri("/b", "/hb")
        },
    ];
    let plan = mounts(&both, &EtcFiles::default(), None, false, false).unwrap();
    assert_eq!(plan.rootfs_propagation.as_deref(), Some("rshared"));
}

#[test]
fn cri_mount_options_are_applied_and_unknown_ones_refused() {
    let m = CriMount {
        readonly: true,
        mount_options: vec!["noexec".into(), "nosuid".into(), "nodev".into()],
        ..cri("/vol", "/host/vol")
    };
    let plan = mounts(&[m], &EtcFiles::default(), None, false, false).unwrap();
    assert_eq!(
        options(find(&plan, "/vol")),
        ["rbind", "rprivate", "ro", "noexec", "nosuid", "nodev"]
    );
    for bad in ["suid", "exec", "remount", "bind", "mode=0777", ""] {
        let m = CriMount {
            mount_options: vec!["noexec".into(), bad.into()],
            ..cri("/vol", "/host/vol")
        };
        let err = mounts(&[m], &EtcFiles::default(), None, false, false).unwrap_err();
        assert!(matches!(err, SpecError::MountOption { .. }), "{bad}: {err}");
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        assert_eq!(
            crate::error::Classify::kind(&err),
            crate::error::Kind::InvalidArgument
        );
    }
}

#[test]
fn privileged_gets_writable_sys_and_cgroup() {
    for (privileged, access) in [(false, "ro"), (true, "rw")] {
        let plan = mounts(&[], &EtcFiles::default(), None, privileged, false).unwrap();
        for dest in ["/sys", "/sys/fs/cgroup"] {
            assert_eq!(
                options(find(&plan, dest)).last(),
                Some(&access),
                "{dest} {privileged}"
            );
        }
    }
}

#[test]
fn default_mount_details() {
    let plan = mounts(&[], &EtcFiles::default(), None, false, false).unwrap();
    let dev = find(&plan, "/dev");
    assert_eq!(dev.typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        options(dev),
        ["nosuid", "strictatime", "mode=755", "size=65536k"]
    );
    let pts = options(find(&plan, "/dev/pts"));
    for o in ["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] {
        assert!(pts.contains(&o), "{o}");
    }
    assert!(options(find(&plan, "/dev/shm")).contains(&"size=65536k"));
    assert_eq!(
        find(&plan, "/sys/fs/cgroup").typ().as_deref(),
        Some("cgroup")
    );
    assert_eq!(plan.rootfs_propagation, None);
}

#[test]
fn rejects_bad_cri_mounts() {
    use MountPropagation::*;
    let cases = [
        (cri("rel/path", "/h"), "container path must be absolute"),
        (
            cri("/x", ""),
            "no host path (image volumes must be resolved by the caller)",
        ),
        (
            CriMount {
                recursive_read_only: true,
                ..cri("/x", "/h")
            },
            "recursive read-only mount must also be read-only",
        ),
        (
            CriMount {
                readonly: true,
                recursive_read_only: true,
                propagation: PropagationHostToContainer as i32,
                ..cri("/x", "/h")
            },
            "recursive read-only mount needs private propagation",
        ),
        (
            CriMount {
                propagation: 42,
                ..cri("/x", "/h")
            },
            "unknown mount propagation",
        ),
    ];
    for (m, reason) in cases {
        let err = mounts(
            std::slice::from_ref(&m),
            &EtcFiles::default(),
            None,
            false,
            false,
        )
        .unwrap_err();
        assert_eq!(
            err,
            SpecError::Mount {
                container_path: m.container_path.clone(),
                reason
            }
        );
    }
}

fn id_map(container_id: u32, host_id: u32, length: u32) -> IdMapping {
    IdMapping {
        container_id,
        host_id,
        length,
    }
}

const POD: UserNamespaceMaps = UserNamespaceMaps {
    uids: IdMap {
        container: 0,
        host: 100000,
        size: 65536,
    },
    gids: IdMap {
        container: 0,
        host: 200000,
        size: 65536,
    },
};

fn mapped(uids: Vec<IdMapping>, gids: Vec<IdMapping>) -> CriMount {
    CriMount {
        uid_mappings: uids,
        gid_mappings: gids,
        ..cri("/x", "/h")
    }
}

#[test]
fn a_mount_with_the_pods_mappings_is_an_idmap_bind() {
    let m = mapped(
        vec![id_map(0, 100000, 65536)],
        vec![id_map(0, 200000, 65536)],
    );
    let plan = super::mounts(&[m], &EtcFiles::default(), None, false, false, Some(&POD)).unwrap();
    let bind = plan.mounts.last().unwrap();
    assert_eq!(bind.destination(), Path::new("/x"));
    assert_eq!(
        bind.options().as_deref().unwrap(),
        ["rbind", "rprivate", "rw", "idmap"]
    );
    // Without mappings, a mount of the same pod is a plain bind.
    let plan = super::mounts(
        &[cri("/y", "/h")],
        &EtcFiles::default(),
        None,
        false,
        false,
        Some(&POD),
    )
    .unwrap();
    let options = plan.mounts.last().unwrap().options().clone().unwrap();
    assert!(!options.contains(&"idmap".to_string()), "{options:?}");
}

#[test]
fn other_mappings_are_invalid() {
    let pod_uids = || vec![id_map(0, 100000, 65536)];
    let pod_gids = || vec![id_map(0, 200000, 65536)];
    let cases = [
        // uids without gids and the other way round
        (pod_uids(), vec![], Some(&POD), "gid mappings [] are not"),
        (vec![], pod_gids(), Some(&POD), "uid mappings [] are not"),
        // another range, another start, a longer or wrapping length
        (
            vec![id_map(0, 0, 65536)],
            pod_gids(),
            Some(&POD),
            "uid mappings [0:0:65536]",
        ),
        (
            vec![id_map(1, 100000, 65536)],
            pod_gids(),
            Some(&POD),
            "not the pod's",
        ),
        (
            vec![id_map(0, 100000, u32::MAX)],
            pod_gids(),
            Some(&POD),
            "not the pod's",
        ),
        // the pod's mapping twice, or split in two overlapping pieces
        (
            vec![id_map(0, 100000, 65536), id_map(0, 100000, 65536)],
            pod_gids(),
            Some(&POD),
            "not the pod's",
        ),
        // gids given the uid range
        (pod_uids(), pod_uids(), Some(&POD), "gid mappings"),
        // a pod without a user namespace
        (pod_uids(), pod_gids(), None, "has no user namespace"),
    ];
    for (uids, gids, userns, want) in cases {
        let m = mapped(uids, gids);
        let err = super::mounts(
            std::slice::from_ref(&m),
            &EtcFiles::default(),
            None,
            false,
            false,
            userns,
        )
        .unwrap_err();
        assert!(
            matches!(&err, SpecError::IdMappedMount { container_path, .. } if container_path == "/x"),
            "{m:?}: {err:?}"
        );
        assert!(err.to_string().contains(want), "{m:?}: {err}");
        assert_eq!(
            crate::error::Classify::kind(&err),
            crate::error::Kind::InvalidArgument
        );
    }
}

#[test]
fn cleans_paths_lexically() {
    let cases = [
        ("/", "/"),
        ("/a/b/", "/a/b"),
        ("//a//./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/../..", "/"),
    ];
    for (input, want) in cases {
        assert_eq!(clean(input), want, "{input}");
    }
}

#[test]
fn unresolved_image_volumes_are_refused() {
    // The runtime mounts the image and sets host_path before the spec is built.
    let mut m = cri("/mnt/image-volume", "");
    m.image = Some(crate::cri_api::ImageSpec {
        image: "registry.example/data:1".into(),
        ..Default::default()
    });
    let Err(err) = cri_bind(&m, None) else {
        panic!("an unresolved image volume was accepted");
    };
    assert!(err.to_string().contains("no host path"), "{err}");
}
