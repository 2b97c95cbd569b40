//! Pods with their own user namespace (kubelet's `hostUsers: false`): the mapping is the one
//! asked for, processes are root inside and an unprivileged host id outside, the image's files
//! appear owned by root through id-mapped layers, what a container writes to a host directory is
//! owned by the mapped host id, the pod's network (CNI) and shared PID namespace work, exec
//! joins the namespace, a host-network pod with its own user namespace sees the host's network
//! and a read-only /sys, and bad options are InvalidArgument with nothing left behind. Root;
//! local registry; real CNI plugins.

mod common;

use std::os::unix::fs::MetadataExt;

use berth::cri::api;
use common::pods::*;

const HOST_ID: u32 = 100000;
const SIZE: u32 = 65536;

fn userns(mode: api::NamespaceMode, maps: &[(u32, u32, u32)]) -> api::NamespaceOption {
    let maps: Vec<api::IdMapping> = maps
        .iter()
        .map(|&(container_id, host_id, length)| api::IdMapping {
            container_id,
            host_id,
            length,
        })
        .collect();
    api::NamespaceOption {
        userns_options: Some(api::UserNamespace {
            mode: mode as i32,
            uids: maps.clone(),
            gids: maps,
        }),
        ..Default::default()
    }
}

fn with_namespaces(
    mut config: api::PodSandboxConfig,
    ns: &api::NamespaceOption,
) -> api::PodSandboxConfig {
    config.linux = Some(api::LinuxPodSandboxConfig {
        security_context: Some(api::LinuxSandboxSecurityContext {
            namespace_options: Some(ns.clone()),
            ..Default::default()
        }),
        ..Default::default()
    });
    config
}

async fn sh(f: &mut Fixture, id: &str, script: &str) -> String {
    let out = exec(&mut f.cri, id, &["sh", "-c", script], 10)
        .await
        .expect("ExecSync");
    assert_eq!(
        out.exit_code,
        0,
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn pod_user_namespace_maps_ids_rootfs_and_volumes() {
    let mut f = fixture("hostusers", "library/busybox:latest").await;
    let status = f
        .cri
        .runtime
        .status(api::StatusRequest { verbose: false })
        .await
        .expect("Status")
        .into_inner();
    let builtin = status
        .runtime_handlers
        .iter()
        .find(|h| h.name.is_empty())
        .expect("the built-in handler");
    assert!(
        builtin.features.as_ref().unwrap().user_namespaces,
        "this host supports user namespaces; see berthd's log for the probe's reason"
    );

    let ns = userns(api::NamespaceMode::Pod, &[(0, HOST_ID, SIZE)]);
    let config = pod_config("userns", &f.daemon.dir.path().join("logs"));
    let pod = run_pod(&mut f.cri, with_namespaces(config, &ns)).await;
    let volume = f.daemon.dir.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    let open = std::os::unix::fs::PermissionsExt::from_mode(0o777);
    std::fs::set_permissions(&volume, open).unwrap();

    let mut config = container_config("c", &f.image, &["sleep", "1000"]);
    config.linux = Some(api::LinuxContainerConfig {
        security_context: Some(api::LinuxContainerSecurityContext {
            namespace_options: Some(ns.clone()),
            ..Default::default()
        }),
        ..Default::default()
    });
    config.mounts = vec![api::Mount {
        container_path: "/vol".into(),
        host_path: volume.display().to_string(),
        ..Default::default()
    }];
    let id = start_container(&mut f.cri, &pod, config).await;

    let maps = sh(&mut f, &id, "cat /proc/self/uid_map /proc/self/gid_map").await;
    let fields: Vec<Vec<&str>> = maps
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let want = ["0", "100000", "65536"];
    assert_eq!(fields, [want, want], "{maps}");
    assert_eq!(sh(&mut f, &id, "id -u; id -g").await, "0\n0");
    // The image's files, root-owned on disk, are root-owned inside through id-mapped layers.
    assert_eq!(
        sh(&mut f, &id, "stat -c %u:%g / /bin/busybox /etc/passwd").await,
        "0:0\n0:0\n0:0"
    );
    // Writing to the rootfs (copy-up) and to a new file works as root.
    let script = "echo x >> /etc/passwd && echo y > /new && stat -c %u:%g /etc/passwd /new";
    assert_eq!(sh(&mut f, &id, script).await, "0:0\n0:0");
    // A host directory is written as the mapped host id.
    sh(&mut f, &id, "touch /vol/made").await;
    let made = std::fs::metadata(volume.join("made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (HOST_ID, HOST_ID));
    // The pod's namespaces are the user namespace's: its network (set up by CNI from the
    // host), sysfs of that network, the pod hostname, and the shared PID namespace's pause.
    let eth0 = sh(&mut f, &id, "ip -o -4 addr show eth0; ls /sys/class/net").await;
    assert!(eth0.contains("inet ") && eth0.contains("lo"), "{eth0}");
    assert_eq!(sh(&mut f, &id, "hostname").await, "userns-host");
    let init = sh(&mut f, &id, "tr '\\0' ' ' < /proc/1/cmdline").await;
    assert!(init.contains("pause"), "PID 1 is the pod's pause: {init}");
    // ... running as the namespace's unprivileged 65535 (host 165535, the pause image's user),
    // never as an unmapped host root, and without capabilities.
    let uid = sh(&mut f, &id, "grep -e '^Uid:' -e '^CapEff:' /proc/1/status").await;
    assert_eq!(
        uid.split_whitespace().collect::<Vec<_>>(),
        [
            "Uid:",
            "65535",
            "65535",
            "65535",
            "65535",
            "CapEff:",
            "0000000000000000"
        ]
    );
    // Root inside is not root outside: creating a device node is refused.
    let refused = sh(&mut f, &id, "mknod /dev/sda1 b 8 1 2>&1 || echo refused").await;
    assert!(refused.ends_with("refused"), "{refused}");

    // kubelet's usual pod: each container its own PID namespace, owned by the pod's user
    // namespace too (so /proc mounts), with a second pod of another range beside the first.
    let mut own_pid = userns(api::NamespaceMode::Pod, &[(0, 2 * HOST_ID, SIZE)]);
    own_pid.pid = api::NamespaceMode::Container as i32;
    let config = pod_config("userns-pid", &f.daemon.dir.path().join("logs"));
    let pod2 = run_pod(&mut f.cri, with_namespaces(config, &own_pid)).await;
    let mut config = container_config("c", &f.image, &["sleep", "1001"]);
    config.linux = Some(api::LinuxContainerConfig {
        security_context: Some(api::LinuxContainerSecurityContext {
            namespace_options: Some(own_pid),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id2 = start_container(&mut f.cri, &pod2, config).await;
    let out = sh(
        &mut f,
        &id2,
        "cat /proc/self/uid_map; tr '\\0' ' ' < /proc/1/cmdline",
    )
    .await;
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words, ["0", "200000", "65536", "sleep", "1001"], "{out}");

    // After a crash of berthd the pod's user namespace is still known: a new container joins it.
    f.daemon.kill9();
    f.daemon.restart();
    f.cri = f.daemon.client().await;
    let mut config = container_config("after", &f.image, &["sleep", "1002"]);
    config.linux = Some(api::LinuxContainerConfig {
        security_context: Some(api::LinuxContainerSecurityContext {
            namespace_options: Some(ns),
            ..Default::default()
        }),
        ..Default::default()
    });
    let after = start_container(&mut f.cri, &pod, config).await;
    let map = sh(
        &mut f,
        &after,
        "cat /proc/self/uid_map; stat -c %u /bin/busybox",
    )
    .await;
    let words: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(words, ["0", "100000", "65536", "0"], "{map}");

    for pod in [&pod, &pod2] {
        stop_pod(&mut f.cri, &pod.id).await;
        remove_pod(&mut f.cri, &pod.id).await;
    }
    let dir = f.daemon.dir.path();
    let left: Vec<String> = mounts_under(dir)
        .into_iter()
        .filter(|m| !m.contains(&f.pod.id))
        .collect();
    assert!(left.is_empty(), "mounts left behind: {left:?}");
}

#[tokio::test]
async fn host_user_namespace_is_unchanged_and_bad_options_are_invalid() {
    let mut f = fixture("nodeusers", "library/busybox:latest").await;
    let ns = userns(api::NamespaceMode::Node, &[]);
    let config = pod_config("node", &f.daemon.dir.path().join("logs"));
    let pod = run_pod(&mut f.cri, with_namespaces(config, &ns)).await;
    let id = start_container(
        &mut f.cri,
        &pod,
        container_config("c", &f.image, &["sleep", "1000"]),
    )
    .await;
    let host_map = std::fs::read_to_string("/proc/self/uid_map").unwrap();
    let inside = sh(&mut f, &id, "cat /proc/self/uid_map").await;
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(words(&inside), words(&host_map));

    let before = mounts_under(f.daemon.dir.path());
    let cases = [
        userns(api::NamespaceMode::Container, &[]),
        userns(api::NamespaceMode::Target, &[]),
        userns(api::NamespaceMode::Pod, &[]),
        userns(
            api::NamespaceMode::Pod,
            &[(0, HOST_ID, SIZE), (0, 2 * HOST_ID, SIZE)],
        ),
        userns(api::NamespaceMode::Pod, &[(1, HOST_ID, SIZE)]),
    ];
    for ns in cases {
        let config = pod_config("bad", &f.daemon.dir.path().join("logs"));
        let req = api::RunPodSandboxRequest {
            config: Some(with_namespaces(config, &ns)),
            runtime_handler: String::new(),
        };
        let err = f
            .cri
            .runtime
            .run_pod_sandbox(req)
            .await
            .expect_err("refused");
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{ns:?}: {err}");
        assert!(err.message().contains("user namespace"), "{err}");
    }
    assert_eq!(mounts_under(f.daemon.dir.path()), before);
    let pods = f
        .cri
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(pods.len(), 2, "only the fixture's pod and the NODE pod");
}

#[tokio::test]
async fn host_network_pod_with_its_own_user_namespace_runs() {
    let mut f = fixture("hostnet-userns", "library/busybox:latest").await;
    let status = f
        .cri
        .runtime
        .status(api::StatusRequest { verbose: false })
        .await
        .expect("Status")
        .into_inner();
    assert!(
        status.features.unwrap().user_namespaces_host_network,
        "this host supports it; see berthd's log for the probe's reason"
    );
    let mut ns = userns(api::NamespaceMode::Pod, &[(0, 3 * HOST_ID, SIZE)]);
    ns.network = api::NamespaceMode::Node as i32;
    let config = pod_config("hnu", &f.daemon.dir.path().join("logs"));
    let pod = run_pod(&mut f.cri, with_namespaces(config, &ns)).await;
    let mut config = container_config("c", &f.image, &["sleep", "1000"]);
    config.linux = Some(api::LinuxContainerConfig {
        security_context: Some(api::LinuxContainerSecurityContext {
            namespace_options: Some(ns),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = start_container(&mut f.cri, &pod, config).await;
    let map = sh(&mut f, &id, "cat /proc/self/uid_map").await;
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "300000", "65536"]
    );
    // The host's network namespace, and the host's interfaces in /sys.
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    let inside = sh(&mut f, &id, "readlink /proc/self/ns/net").await;
    assert_eq!(inside, host_net.display().to_string());
    // Other tests add and remove veths meanwhile: only the interfaces the host had before and
    // after the listing must be in it.
    let host_ifaces = || -> Vec<String> {
        std::fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let before = host_ifaces();
    let listed = sh(&mut f, &id, "ls /sys/class/net").await;
    let after = host_ifaces();
    let stable: Vec<&String> = before.iter().filter(|i| after.contains(i)).collect();
    assert!(stable.iter().any(|i| *i == "lo"), "{stable:?}");
    for iface in stable {
        assert!(
            listed.split_whitespace().any(|l| l == iface),
            "{iface}: {listed}"
        );
    }
    // /sys and every mount below it are read-only for the container.
    let probe = "touch /sys/kernel/x 2>&1; echo 1 > /sys/fs/cgroup/x 2>&1; \
                 grep ' /sys' /proc/self/mounts | grep -vc ' ro,'";
    let out = sh(&mut f, &id, &format!("{probe} || true")).await;
    assert!(out.ends_with('0'), "a writable mount under /sys: {out}");
    stop_pod(&mut f.cri, &pod.id).await;
    remove_pod(&mut f.cri, &pod.id).await;
}
