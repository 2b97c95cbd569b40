//! Records written before the CRI v0.37 upgrade still read back: `tests/fixtures/meta-cri-v0.32.redb`
//! was written by berth on CRI v0.32 types (k8s-cri 0.11) and holds one pod and one container
//! record with every field set; this test opens it with today's types and compares every field
//! (`KeyValue.value` became `bytes`; fields CRI added since read as their defaults).

// The fixture sets the deprecated fields too: they are stored like any other.
#![allow(deprecated)]

use std::collections::HashMap;
use std::path::PathBuf;

use berth::cri::api;
use berth::runtime::image_volumes::ImageVolume;
use berth::runtime::records::*;
use berth::store::{Store, Table};

const FIXTURE: &str = "tests/fixtures/meta-cri-v0.32.redb";
const POD_ID: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const CTR_ID: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn resources(base: i64) -> api::LinuxContainerResources {
    api::LinuxContainerResources {
        cpu_period: base + 100_000,
        cpu_quota: base + 50_000,
        cpu_shares: base + 512,
        memory_limit_in_bytes: (base + 64) << 20,
        oom_score_adj: 10,
        cpuset_cpus: "0-1".into(),
        cpuset_mems: "0".into(),
        hugepage_limits: vec![api::HugepageLimit {
            page_size: "2MB".into(),
            limit: 4 << 20,
        }],
        unified: map(&[("memory.high", "50000000")]),
        memory_swap_limit_in_bytes: (base + 128) << 20,
    }
}

fn profile(kind: api::security_profile::ProfileType, r: &str) -> Option<api::SecurityProfile> {
    Some(api::SecurityProfile {
        profile_type: kind as i32,
        localhost_ref: r.into(),
    })
}

fn namespaces() -> api::NamespaceOption {
    api::NamespaceOption {
        network: api::NamespaceMode::Pod as i32,
        pid: api::NamespaceMode::Container as i32,
        ipc: api::NamespaceMode::Pod as i32,
        target_id: "target".into(),
        userns_options: Some(api::UserNamespace {
            mode: api::NamespaceMode::Pod as i32,
            uids: vec![api::IdMapping {
                host_id: 100_000,
                container_id: 0,
                length: 65536,
            }],
            gids: vec![api::IdMapping {
                host_id: 200_000,
                container_id: 0,
                length: 65536,
            }],
        }),
    }
}

fn selinux() -> api::SeLinuxOption {
    api::SeLinuxOption {
        user: "system_u".into(),
        role: "system_r".into(),
        r#type: "container_t".into(),
        level: "s0:c1,c2".into(),
    }
}

fn image_spec(name: &str) -> api::ImageSpec {
    api::ImageSpec {
        image: name.into(),
        annotations: map(&[("image-annotation", "a")]),
        user_specified_image: "busybox".into(),
        runtime_handler: "runc".into(),
        image_ref: "sha256:cccc".into(),
    }
}

/// The pod record the fixture holds.
fn sandbox() -> SandboxRecord {
    use api::security_profile::ProfileType;
    SandboxRecord {
        id: POD_ID.into(),
        state: SandboxState::NotReady,
        created_at: 1_700_000_000_123_456_789,
        config: api::PodSandboxConfig {
            metadata: Some(api::PodSandboxMetadata {
                name: "web".into(),
                uid: "uid-1".into(),
                namespace: "default".into(),
                attempt: 2,
            }),
            hostname: "web-host".into(),
            log_directory: "/var/log/pods/web".into(),
            dns_config: Some(api::DnsConfig {
                servers: vec!["10.0.0.10".into()],
                searches: vec!["svc.cluster.local".into()],
                options: vec!["ndots:5".into()],
            }),
            port_mappings: vec![api::PortMapping {
                protocol: api::Protocol::Udp as i32,
                container_port: 53,
                host_port: 5353,
                host_ip: "127.0.0.1".into(),
            }],
            labels: map(&[("app", "web")]),
            annotations: map(&[("note", "ünïcode ✓")]),
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: "/kubepods/pod-uid-1".into(),
                security_context: Some(api::LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    selinux_options: Some(selinux()),
                    run_as_user: Some(api::Int64Value { value: 1000 }),
                    run_as_group: Some(api::Int64Value { value: 2000 }),
                    readonly_rootfs: true,
                    supplemental_groups: vec![3000, 3001],
                    supplemental_groups_policy: api::SupplementalGroupsPolicy::Strict as i32,
                    privileged: true,
                    seccomp: profile(ProfileType::Localhost, "profiles/pod.json"),
                    apparmor: profile(ProfileType::Unconfined, ""),
                    seccomp_profile_path: "localhost/old.json".into(),
                }),
                sysctls: map(&[("net.ipv4.ip_forward", "1")]),
                overhead: Some(resources(1)),
                resources: Some(resources(2)),
            }),
            windows: None,
        },
        runtime_handler: "runc".into(),
        pod_dir: PathBuf::from("/run/berth/pods/1111"),
        data_dir: PathBuf::from("/var/lib/berth/pods/1111"),
        namespaces: PinnedPaths {
            net: Some("/run/berth/pods/1111/ns/net".into()),
            ipc: Some("/run/berth/pods/1111/ns/ipc".into()),
            uts: Some("/run/berth/pods/1111/ns/uts".into()),
            pid: Some("/run/berth/pods/1111/ns/pid".into()),
            user: Some("/run/berth/pods/1111/ns/user".into()),
        },
        shm: Some("/run/berth/pods/1111/shm".into()),
        hostname: Some("web-host".into()),
        ips: vec!["10.88.0.5".into(), "fd00::5".into()],
    }
}

/// The container record the fixture holds.
fn container() -> ContainerRecord {
    use api::security_profile::ProfileType;
    ContainerRecord {
        id: CTR_ID.into(),
        sandbox_id: POD_ID.into(),
        state: ContainerState::Exited,
        created_at: 1_700_000_001_000_000_000,
        started_at: 1_700_000_002_000_000_000,
        exit: Some(Exit {
            code: 137,
            finished_at: 1_700_000_003_000_000_000,
            reason: "OOMKilled".into(),
            message: "out of memory".into(),
        }),
        pid: 4242,
        config: api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: "app".into(),
                attempt: 3,
            }),
            image: Some(image_spec("127.0.0.1:5000/library/busybox:latest")),
            command: vec!["/bin/sh".into(), "-c".into()],
            args: vec!["sleep 1000".into()],
            working_dir: "/work".into(),
            envs: vec![
                api::KeyValue {
                    key: "PATH".into(),
                    value: b"/bin:/usr/bin".to_vec(),
                },
                api::KeyValue {
                    key: "GREETING".into(),
                    value: "grüß dich ✓".as_bytes().to_vec(),
                },
                api::KeyValue {
                    key: "EMPTY".into(),
                    value: vec![],
                },
            ],
            mounts: vec![
                api::Mount {
                    container_path: "/data".into(),
                    host_path: "/srv/data".into(),
                    readonly: true,
                    selinux_relabel: true,
                    propagation: api::MountPropagation::PropagationHostToContainer as i32,
                    uid_mappings: vec![api::IdMapping {
                        host_id: 1,
                        container_id: 2,
                        length: 3,
                    }],
                    gid_mappings: vec![api::IdMapping {
                        host_id: 4,
                        container_id: 5,
                        length: 6,
                    }],
                    recursive_read_only: true,
                    image: None,
                    image_sub_path: "".into(),
                    // CRI v0.37; not in the v0.32 record, so read as its default.
                    mount_options: vec![],
                },
                api::Mount {
                    container_path: "/tools".into(),
                    image: Some(image_spec("127.0.0.1:5000/library/tools:1")),
                    image_sub_path: "bin".into(),
                    ..Default::default()
                },
            ],
            devices: vec![api::Device {
                container_path: "/dev/fuse".into(),
                host_path: "/dev/fuse".into(),
                permissions: "rwm".into(),
            }],
            labels: map(&[("io.kubernetes.container.name", "app")]),
            annotations: map(&[("io.kubernetes.container.hash", "abc")]),
            log_path: "app/3.log".into(),
            stdin: true,
            stdin_once: true,
            tty: true,
            linux: Some(api::LinuxContainerConfig {
                resources: Some(resources(3)),
                security_context: Some(api::LinuxContainerSecurityContext {
                    capabilities: Some(api::Capability {
                        add_capabilities: vec!["NET_ADMIN".into()],
                        drop_capabilities: vec!["MKNOD".into()],
                        add_ambient_capabilities: vec!["NET_BIND_SERVICE".into()],
                    }),
                    privileged: true,
                    namespace_options: Some(namespaces()),
                    selinux_options: Some(selinux()),
                    run_as_user: Some(api::Int64Value { value: 1001 }),
                    run_as_group: Some(api::Int64Value { value: 2001 }),
                    run_as_username: "app".into(),
                    readonly_rootfs: true,
                    supplemental_groups: vec![4000],
                    supplemental_groups_policy: api::SupplementalGroupsPolicy::Merge as i32,
                    no_new_privs: true,
                    masked_paths: vec!["/proc/kcore".into()],
                    readonly_paths: vec!["/proc/sys".into()],
                    seccomp: profile(ProfileType::RuntimeDefault, ""),
                    apparmor: profile(ProfileType::Localhost, "berth-test"),
                    apparmor_profile: "localhost/berth-test".into(),
                    seccomp_profile_path: "runtime/default".into(),
                }),
            }),
            windows: None,
            cdi_devices: vec![api::CdiDevice {
                name: "vendor.com/gpu=0".into(),
            }],
            // CRI v0.37; not in the v0.32 record, so read as its default.
            stop_signal: api::Signal::RuntimeDefault as i32,
        },
        image_id: "sha256:aaaa".into(),
        image_name: "127.0.0.1:5000/library/busybox:latest".into(),
        image_ref: "127.0.0.1:5000/library/busybox@sha256:bbbb".into(),
        log_path: PathBuf::from("/var/log/pods/web/app/3.log"),
        bundle: PathBuf::from("/run/berth/containers/2222"),
        rw_dir: PathBuf::from("/var/lib/berth/containers/2222"),
        chain_id: "sha256:dddd".into(),
        cgroup: "/kubepods/pod-uid-1/2222".into(),
        user: Some(ProcessUser {
            uid: 1001,
            gid: 2001,
            supplemental_groups: vec![2001, 4000],
        }),
        image_volumes: vec![ImageVolume {
            container_path: "/tools".into(),
            image_id: "sha256:eeee".into(),
            chain_ids: vec!["sha256:ffff".into()],
            mount_dir: "/run/berth/containers/2222/image-volumes/0".into(),
        }],
        // Not in the v0.32 record: StopContainer then chooses from the config and the image.
        stop_signal: 0,
    }
}

#[test]
fn records_written_on_cri_v032_read_back_field_for_field() {
    // Copied: opening a redb file may write to it (schema check), and the fixture stays pristine.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.redb");
    std::fs::copy(FIXTURE, &path).expect("the committed fixture exists");
    let store = Store::open(&path).unwrap();
    let pod: SandboxRecord = store
        .read(|r| r.get(Table::Sandboxes, POD_ID))
        .unwrap()
        .expect("pod record");
    let ctr: ContainerRecord = store
        .read(|r| r.get(Table::Containers, CTR_ID))
        .unwrap()
        .expect("container record");
    assert_eq!(pod, sandbox());
    assert_eq!(ctr, container());
}
