//! Id-mapped CRI mounts (kubelet's, on every mount of a `hostUsers: false` pod): a mount carrying
//! the pod's mappings shows host files with their on-disk ids (host root is the container's root)
//! and stores what the container writes with the container's ids, where a plain bind of the same
//! directory shows them shifted; read-only is kept; other mappings, mappings on a pod without a
//! user namespace, a filesystem that cannot be id-mapped and an OCI runtime handler for such a pod
//! are refused with the right code.
//! Root; local registry.

mod common;

use std::os::unix::fs::MetadataExt;

use berth::cri::api;
use common::pods::*;

const HOST_ID: u32 = 400000;
const SIZE: u32 = 65536;

fn maps(host_id: u32) -> Vec<api::IdMapping> {
    vec![api::IdMapping {
        container_id: 0,
        host_id,
        length: SIZE,
    }]
}

fn userns_options() -> api::NamespaceOption {
    api::NamespaceOption {
        userns_options: Some(api::UserNamespace {
            mode: api::NamespaceMode::Pod as i32,
            uids: maps(HOST_ID),
            gids: maps(HOST_ID),
        }),
        ..Default::default()
    }
}

fn bind(container_path: &str, host_path: &std::path::Path, mapped_to: Option<u32>) -> api::Mount {
    api::Mount {
        container_path: container_path.into(),
        host_path: host_path.display().to_string(),
        uid_mappings: mapped_to.map(maps).unwrap_or_default(),
        gid_mappings: mapped_to.map(maps).unwrap_or_default(),
        ..Default::default()
    }
}

fn container(f: &Fixture, name: &str, mounts: Vec<api::Mount>) -> api::ContainerConfig {
    let mut config = container_config(name, &f.image, &["sleep", "1000"]);
    config.linux = Some(api::LinuxContainerConfig {
        security_context: Some(api::LinuxContainerSecurityContext {
            namespace_options: Some(userns_options()),
            ..Default::default()
        }),
        ..Default::default()
    });
    config.mounts = mounts;
    config
}

async fn create(f: &mut Fixture, pod: &Pod, config: api::ContainerConfig) -> tonic::Status {
    let req = api::CreateContainerRequest {
        pod_sandbox_id: pod.id.clone(),
        config: Some(config),
        sandbox_config: Some(pod.config.clone()),
    };
    f.cri
        .runtime
        .create_container(req)
        .await
        .expect_err("CreateContainer must be refused")
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
async fn kubelet_id_mapped_mounts_show_on_disk_ids() {
    let mut f = fixture("idmap", "library/busybox:latest").await;
    let mut config = pod_config("idmapped", &f.daemon.dir.path().join("logs"));
    config.linux = Some(api::LinuxPodSandboxConfig {
        security_context: Some(api::LinuxSandboxSecurityContext {
            namespace_options: Some(userns_options()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod = run_pod(&mut f.cri, config).await;

    // A kubelet-like volume: a root-owned 0755 directory with files of host root, of uid 1000
    // and of the pod's own host range (HOST_ID + 5).
    let vol = f.daemon.dir.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    let owned = [("root", 0), ("user", 1000), ("shifted", HOST_ID + 5)];
    for (name, id) in owned {
        std::fs::write(vol.join(name), name).unwrap();
        std::os::unix::fs::chown(vol.join(name), Some(id), Some(id)).unwrap();
    }
    let file = f.daemon.dir.path().join("hosts");
    std::fs::write(&file, "127.0.0.1 localhost\n").unwrap();
    let mounts = vec![
        bind("/mapped", &vol, Some(HOST_ID)),
        bind("/plain", &vol, None),
        api::Mount {
            readonly: true,
            ..bind("/ro", &vol, Some(HOST_ID))
        },
        bind("/etc/hosts", &file, Some(HOST_ID)),
    ];
    let config = container(&f, "c", mounts);
    let id = start_container(&mut f.cri, &pod, config).await;

    let stat = "stat -c %u:%g /mapped/root /mapped/user /mapped/shifted /mapped /etc/hosts";
    assert_eq!(
        sh(&mut f, &id, stat).await,
        "0:0\n1000:1000\n65534:65534\n0:0\n0:0",
        "id-mapped with the pod's mapping, files keep their on-disk ids inside"
    );
    let stat = "stat -c %u:%g /plain/root /plain/user /plain/shifted /plain";
    assert_eq!(
        sh(&mut f, &id, stat).await,
        "65534:65534\n65534:65534\n5:5\n65534:65534",
        "a plain bind of the same directory shows host ids shifted by the pod's range"
    );
    assert_eq!(sh(&mut f, &id, "stat -c %u /ro/root").await, "0");

    // The container's root owns the id-mapped directory and writes there as on-disk root; what
    // it gives uid 1000 is uid 1000 on disk. Through the plain bind it is not the owner.
    sh(
        &mut f,
        &id,
        "echo x > /mapped/new && chown 1000:1000 /mapped/new",
    )
    .await;
    let new = std::fs::metadata(vol.join("new")).unwrap();
    assert_eq!((new.uid(), new.gid()), (1000, 1000));
    sh(&mut f, &id, "echo y > /mapped/mine").await;
    let mine = std::fs::metadata(vol.join("mine")).unwrap();
    assert_eq!((mine.uid(), mine.gid()), (0, 0));
    let refused = sh(&mut f, &id, "touch /plain/x 2>&1 || echo refused").await;
    assert!(refused.ends_with("refused"), "{refused}");
    assert!(!vol.join("x").exists());
    let refused = sh(&mut f, &id, "touch /ro/x 2>&1 || echo refused").await;
    assert!(
        refused.contains("Read-only") && refused.ends_with("refused"),
        "{refused}"
    );

    // Another range than the pod's is refused, naming the mount.
    let config = container(&f, "bad", vec![bind("/v", &vol, Some(0))]);
    let bad = create(&mut f, &pod, config).await;
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad}");
    assert!(bad.message().contains("\"/v\": id-mapped mount"), "{bad}");
    // A filesystem that cannot be id-mapped (sysfs) is FailedPrecondition, naming it.
    let sys = std::path::Path::new("/sys/kernel");
    let config = container(&f, "sys", vec![bind("/k", sys, Some(HOST_ID))]);
    let bad = create(&mut f, &pod, config).await;
    assert_eq!(bad.code(), tonic::Code::FailedPrecondition, "{bad}");
    assert!(
        bad.message().contains("/k") && bad.message().contains("sysfs"),
        "{bad}"
    );
    // Mappings on a mount of a pod without a user namespace are InvalidArgument.
    let mut plain = container_config("hostns", &f.image, &["sleep", "1000"]);
    plain.mounts = vec![bind("/v", &vol, Some(HOST_ID))];
    let fixture_pod = Pod {
        id: f.pod.id.clone(),
        config: f.pod.config.clone(),
    };
    let bad = create(&mut f, &fixture_pod, plain).await;
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad}");
    assert!(bad.message().contains("no user namespace"), "{bad}");

    stop_pod(&mut f.cri, &pod.id).await;
    remove_pod(&mut f.cri, &pod.id).await;
    let left: Vec<String> = mounts_under(f.daemon.dir.path())
        .into_iter()
        .filter(|m| !m.contains(&f.pod.id))
        .collect();
    assert!(left.is_empty(), "mounts left behind: {left:?}");
}

#[tokio::test]
async fn oci_runtime_handlers_refuse_pods_with_their_own_user_namespace() {
    let d =
        common::Daemon::start("runtime:\n  handlers:\n  - name: runc\n    path: /usr/sbin/runc\n");
    let mut cri = d.client().await;
    let mut config = pod_config("runc-userns", &d.dir.path().join("logs"));
    config.linux = Some(api::LinuxPodSandboxConfig {
        security_context: Some(api::LinuxSandboxSecurityContext {
            namespace_options: Some(userns_options()),
            ..Default::default()
        }),
        ..Default::default()
    });
    let req = api::RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: "runc".into(),
    };
    let err = cri
        .runtime
        .run_pod_sandbox(req)
        .await
        .expect_err("runc pods get no user namespace");
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err}");
    assert!(
        err.message().contains("\"runc\"") && err.message().contains("user namespace"),
        "{err}"
    );
    let pods = cri
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(pods.is_empty(), "{pods:?}");
}
