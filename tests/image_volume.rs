//! Image volumes (CRI mounts of an image, the Kubernetes ImageVolume feature) through a real
//! berthd: the five-layer test image and busybox mounted read-only into a running container,
//! with a sub path; the refusals (read-write, missing sub path, image not pulled) leave nothing
//! mounted; ContainerStatus reports the mounted image; removing the image keeps the volume's
//! snapshots while the container exists, also across a berthd restart; removing the container
//! unmounts everything. Root; local registry (`hack/registry.sh start`, test images built).

mod common;

use berth::cri::api;
use common::pods::*;
use common::registry::registries;

fn image_mount(container_path: &str, image: &str, sub_path: &str) -> api::Mount {
    api::Mount {
        container_path: container_path.into(),
        readonly: true,
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        image_sub_path: sub_path.into(),
        ..Default::default()
    }
}

/// Committed snapshot directories under the daemon's root.
fn snapshot_dirs(root: &std::path::Path) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(root.join("root/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("tmp-"))
        .collect();
    dirs.sort();
    dirs
}

async fn sh(cri: &mut berth::client::CriClient, id: &str, script: &str) -> (i32, String) {
    let out = exec(cri, id, &["sh", "-c", script], 30).await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.exit_code, text)
}

#[tokio::test]
async fn image_volumes_mount_read_only_and_outlive_their_image() {
    let mut f = fixture("imgvol", "library/busybox:latest").await;
    let dir = f.daemon.dir.path().to_path_buf();
    let layered = format!("{}/test/layered:gzip", registries().plain);
    let layered_id = pull(&mut f.cri, &layered).await;
    let busybox_id = pull(&mut f.cri, &f.image).await;

    // Refusals: each leaves no container and nothing mounted.
    let mounted = mounts_under(&dir);
    let refusals = [
        (
            {
                let mut m = image_mount("/vol", &layered_id, "");
                m.readonly = false;
                m
            },
            tonic::Code::InvalidArgument,
            "read-only",
        ),
        (
            image_mount("/vol", &layered_id, "not-existing"),
            tonic::Code::InvalidArgument,
            "does not exist",
        ),
        (
            image_mount("/vol", &layered_id, "data/../../links/../../not-existing"),
            tonic::Code::InvalidArgument,
            "does not exist",
        ),
        (
            image_mount("/vol", "127.0.0.1:1/never/pulled:1", ""),
            tonic::Code::NotFound,
            "never/pulled",
        ),
    ];
    for (mount, code, message) in refusals {
        let mut config = container_config("refused", &f.image, &["sleep", "1000"]);
        config.mounts = vec![mount];
        let err = try_create_container(&mut f.cri, &f.pod, config)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains(message), "{err:?}");
    }
    assert_eq!(mounts_under(&dir), mounted, "a refused create left a mount");

    // The five-layer image whole, and busybox's /bin through a sub path (by tag, not id).
    let mut config = container_config("reader", &f.image, &["sleep", "1000"]);
    config.mounts = vec![
        image_mount("/layered", &layered_id, ""),
        image_mount("/bb", &f.image, "/bin/"),
    ];
    let id = start_container(&mut f.cri, &f.pod, config).await;
    let checks = "cat /layered/data/keep.txt && \
                  ! test -e /layered/data/delete-me.txt && \
                  ! test -e /layered/data/gone-dir && \
                  ! touch /layered/new 2>/dev/null && \
                  ! rm /layered/data/keep.txt 2>/dev/null && \
                  test -x /bb/busybox && ! test -e /bb/bin && \
                  /bb/busybox echo exec-ok";
    let (code, out) = sh(&mut f.cri, &id, checks).await;
    assert_eq!((code, out.as_str()), (0, "keep\nexec-ok\n"));

    let s = status(&mut f.cri, &id).await;
    let reported = |s: &api::ContainerStatus, path: &str| {
        s.mounts
            .iter()
            .find(|m| m.container_path == path)
            .and_then(|m| m.image.clone())
            .map(|i| (i.image, i.image_ref))
    };
    assert_eq!(
        reported(&s, "/layered"),
        Some((layered_id.clone(), layered_id.clone()))
    );
    assert_eq!(
        reported(&s, "/bb"),
        Some((f.image.clone(), busybox_id.clone()))
    );

    // Removing the image frees none of the snapshots the volume mounts.
    let before = snapshot_dirs(&dir);
    assert_eq!(
        before.len(),
        5,
        "busybox's layer is layered's first: {before:?}"
    );
    f.cri
        .image
        .remove_image(api::RemoveImageRequest {
            image: Some(api::ImageSpec {
                image: layered_id.clone(),
                ..Default::default()
            }),
        })
        .await
        .expect("RemoveImage");
    assert_eq!(snapshot_dirs(&dir), before);

    // A restarted berthd still knows the volumes.
    f.daemon.kill9();
    f.daemon.restart();
    let mut cri = f.daemon.client().await;
    let s = status(&mut cri, &id).await;
    assert_eq!(
        reported(&s, "/layered"),
        Some((layered_id.clone(), layered_id.clone()))
    );
    let (code, out) = sh(&mut cri, &id, "cat /layered/data/keep.txt").await;
    assert_eq!((code, out.as_str()), (0, "keep\n"));

    cri.runtime
        .remove_container(api::RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await
        .expect("RemoveContainer");
    let left: Vec<String> = mounts_under(&dir)
        .into_iter()
        .filter(|m| m.contains("containers"))
        .collect();
    assert!(left.is_empty(), "left mounted: {left:?}");
    assert!(!dir.join("state/containers").join(&id).exists());
    remove_pod(&mut cri, &f.pod.id).await;
}

#[tokio::test]
async fn image_volumes_work_through_the_runc_handler() {
    let mut f = fixture("imgvol-host", "library/busybox:latest").await;
    let dir = f.daemon.dir.path().to_path_buf();
    let layered = format!("{}/test/layered:gzip", registries().plain);
    let layered_id = pull(&mut f.cri, &layered).await;
    let config = pod_config("imgvol-runc", &dir.join("logs"));
    let req = api::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: "runc".into(),
    };
    let id = f
        .cri
        .runtime
        .run_pod_sandbox(req)
        .await
        .expect("RunPodSandbox with runc")
        .into_inner()
        .pod_sandbox_id;
    let pod = Pod { id, config };
    let mut config = container_config("reader", &f.image, &["sleep", "1000"]);
    config.mounts = vec![image_mount("/layered", &layered_id, "data")];
    let id = start_container(&mut f.cri, &pod, config).await;
    let (code, out) = sh(
        &mut f.cri,
        &id,
        "cat /layered/keep.txt && ! touch /layered/new 2>/dev/null && ! test -e /layered/data",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "keep\n"));
    remove_pod(&mut f.cri, &pod.id).await;
    let left: Vec<String> = mounts_under(&dir)
        .into_iter()
        .filter(|m| m.contains("containers"))
        .collect();
    assert!(left.is_empty(), "left mounted: {left:?}");
}

#[tokio::test]
async fn image_volumes_are_id_mapped_in_a_user_namespace_pod() {
    let mut f = fixture("imgvol-base", "library/busybox:latest").await;
    let dir = f.daemon.dir.path().to_path_buf();
    let layered = format!("{}/test/layered:gzip", registries().plain);
    let layered_id = pull(&mut f.cri, &layered).await;
    let map = vec![api::IdMapping {
        container_id: 0,
        host_id: 200000,
        length: 65536,
    }];
    let ns = api::NamespaceOption {
        userns_options: Some(api::UserNamespace {
            mode: api::NamespaceMode::Pod as i32,
            uids: map.clone(),
            gids: map,
        }),
        ..Default::default()
    };
    let config = pod_config_with_namespaces("imgvol-userns", &dir.join("logs"), ns);
    let pod = run_pod(&mut f.cri, config).await;
    let mut config = container_config("reader", &f.image, &["sleep", "1000"]);
    // Both kinds: busybox is one layer (a bind), test/layered five (an overlay).
    config.mounts = vec![
        image_mount("/bb", &f.image, "bin"),
        image_mount("/layered", &layered_id, ""),
    ];
    let id = start_container(&mut f.cri, &pod, config).await;
    let (code, out) = sh(
        &mut f.cri,
        &id,
        "stat -c %u:%g /bb/busybox /layered/data/keep.txt && cat /layered/data/keep.txt && \
         ! touch /layered/new 2>/dev/null && /bb/busybox true",
    )
    .await;
    assert_eq!(
        (code, out.as_str()),
        (0, "0:0\n0:0\nkeep\n"),
        "image files are owned by the namespace's root"
    );
    remove_pod(&mut f.cri, &pod.id).await;
    let left: Vec<String> = mounts_under(&dir)
        .into_iter()
        .filter(|m| m.contains("containers"))
        .collect();
    assert!(left.is_empty(), "left mounted: {left:?}");
}
