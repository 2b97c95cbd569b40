//! A berthd killed and restarted: what recovery makes of shims that died or lived on, exits it
//! missed, and operations the kill cut short (the issue's chaos findings as unit tests).

use super::super::intents::Intent;
use super::super::records::{ContainerState, SandboxState};
use super::Harness;
use crate::error::Kind;
use crate::shimclient::{Exit, exit_file};

#[tokio::test]
async fn a_shim_gone_with_an_exit_file_gives_the_recorded_exit() {
    let mut h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    h.runtime.start_container(&id).await.unwrap();
    let exit = Exit {
        exit_code: 7,
        signal: 0,
        finished_at: 42,
        oom_killed: false,
        pid: 1000,
    };
    exit_file::write(&h.container(&id).bundle, &exit).unwrap();
    h.launcher.lose(&h.pod_dir(&pod));
    h.restart().await;
    assert_eq!(h.sandbox(&pod).state, SandboxState::NotReady);
    let c = h.container(&id);
    assert_eq!(c.state, ContainerState::Exited);
    let recorded = c.exit.unwrap();
    assert_eq!((recorded.code, recorded.finished_at), (7, 42));
    assert_eq!(recorded.reason, "Error");
}

#[tokio::test]
async fn a_shim_gone_without_an_exit_file_gives_a_lost_exit() {
    let mut h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    h.runtime.start_container(&id).await.unwrap();
    h.launcher.lose(&h.pod_dir(&pod));
    h.restart().await;
    let c = h.container(&id);
    assert_eq!(c.state, ContainerState::Exited);
    let exit = c.exit.unwrap();
    assert_eq!((exit.code, exit.reason.as_str()), (255, "Unknown"));
    // The pod can still be removed, with everything it had.
    h.runtime.remove_sandbox(&pod).await.unwrap();
    h.assert_clean();
}

#[tokio::test]
async fn a_live_shim_replays_an_exit_that_happened_while_berthd_was_down() {
    let mut h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    h.runtime.start_container(&id).await.unwrap();
    h.shim(&pod).exit_unseen(&id, 5);
    assert_eq!(h.container(&id).state, ContainerState::Running);
    h.restart().await;
    assert_eq!(h.sandbox(&pod).state, SandboxState::Ready);
    assert_eq!(h.exited(&id).await.exit.unwrap().code, 5);
}

#[tokio::test]
async fn a_start_the_kill_cut_short_is_running_after_restart() {
    let mut h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    // The shim released the process; berthd died before recording it.
    use crate::shimclient::PodShim;
    h.shim(&pod).start(&id).await.unwrap();
    h.restart().await;
    let c = h.container(&id);
    assert_eq!(c.state, ContainerState::Running);
    assert!(c.started_at > 0);
}

#[tokio::test]
async fn an_interrupted_pod_creation_is_undone_on_restart() {
    // A kill after the shim, its shm mount and the pod's network, before the record.
    let mut h = Harness::new();
    let id = "a".repeat(64);
    let (pod_dir, data_dir) = (h.pod_dir(&id), h.dir.path().join("root/pods").join(&id));
    h.runtime
        .intend(
            &id,
            Intent::CreatePod {
                pod_dir: pod_dir.clone(),
                data_dir: data_dir.clone(),
            },
        )
        .unwrap();
    std::fs::create_dir_all(&data_dir).unwrap();
    let options = crate::shimclient::ShimOptions {
        net: true,
        ipc: true,
        uts: true,
        pid: false,
        hostname: None,
        userns: None,
    };
    use crate::shimclient::ShimLauncher;
    h.launcher.spawn(&id, &pod_dir, &options).await.unwrap();
    use super::super::host::HostOps;
    h.host.mount_shm(&pod_dir.join("shm")).unwrap();
    use crate::network::PodNetwork;
    let attachment = crate::network::Attachment {
        sandbox_id: id.clone(),
        netns: pod_dir.join("ns/net"),
        pod_name: "web".into(),
        pod_namespace: "default".into(),
        pod_uid: "u".into(),
        runtime_config: Default::default(),
    };
    h.network.attach(&attachment).await.unwrap();
    h.restart().await;
    assert!(h.shim_calls_of(&pod_dir).contains(&"shutdown".to_string()));
    h.assert_clean();
}

#[tokio::test]
async fn an_interrupted_container_creation_is_undone_on_restart() {
    // A kill after the rootfs mount, the cgroup and the shim's create, before the record.
    let mut h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = "b".repeat(64);
    let bundle = h.dir.path().join("state/containers").join(&id);
    let rw_dir = h.dir.path().join("root/containers").join(&id);
    let cgroup = format!("/berth/{id}");
    h.runtime
        .intend(
            &id,
            Intent::CreateContainer {
                sandbox_id: pod.clone(),
                bundle: bundle.clone(),
                rw_dir: rw_dir.clone(),
                cgroup: cgroup.clone(),
            },
        )
        .unwrap();
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    std::fs::create_dir_all(&rw_dir).unwrap();
    use super::super::host::HostOps;
    let overlay = crate::snapshot::mount::Overlay {
        lowers: vec![],
        upper: rw_dir.join("upper"),
        work: rw_dir.join("work"),
        volatile: true,
    };
    h.host
        .mount_rootfs(&overlay, &bundle.join("rootfs"), None)
        .unwrap();
    h.host.create_cgroup(&cgroup).unwrap();
    let request = crate::shimclient::CreateContainer {
        id: id.clone(),
        bundle: bundle.clone(),
        log_path: None,
        stdin: false,
        stdin_once: false,
        tty: false,
        cgroup: Some(cgroup.clone()),
        runtime: None,
    };
    use crate::shimclient::PodShim;
    h.shim(&pod).create(&request).await.unwrap();
    h.restart().await;
    assert!(h.shim(&pod).held().is_empty());
    assert!(h.intents().is_empty());
    assert_eq!(h.host.mounted(), [h.pod_dir(&pod).join("shm")]);
    assert!(h.host.cgroups().is_empty());
    assert!(!bundle.exists() && !rw_dir.exists());
    h.runtime.remove_sandbox(&pod).await.unwrap();
    h.assert_clean();
}

#[tokio::test]
async fn an_interrupted_removal_is_finished_not_reverted() {
    // A kill in RemoveContainer after the intent and the kill, before the record went: the
    // container must not come back Exited.
    let mut h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    h.runtime.intend(&id, Intent::RemoveContainer).unwrap();
    h.restart().await;
    assert_eq!(
        crate::error::Classify::kind(&h.runtime.container(&id).unwrap_err()),
        Kind::NotFound
    );
    assert!(h.intents().is_empty());
    assert!(h.shim(&pod).held().is_empty());
    assert_eq!(h.host.cgroups(), Vec::<String>::new());
}

#[tokio::test]
async fn pods_no_record_names_are_swept_on_restart() {
    // Leftovers of a berth that wrote no intents: dirs of an unknown pod and container.
    let mut h = Harness::new();
    let pod = h.run_pod("web").await;
    let stray = "c".repeat(64);
    for base in [
        "state/pods",
        "root/pods",
        "state/containers",
        "root/containers",
    ] {
        std::fs::create_dir_all(h.dir.path().join(base).join(&stray)).unwrap();
    }
    h.restart().await;
    assert_eq!(h.entries("state", "pods"), [pod]);
    assert_eq!(h.entries("state", "containers"), Vec::<String>::new());
    assert_eq!(h.entries("root", "containers"), Vec::<String>::new());
}

#[tokio::test]
async fn a_container_on_a_layer_the_machine_lost_is_still_removed() {
    // The machine went down before the flush of a pulled layer a container ran on: at startup,
    // recovery (`image::flush::recover`) deletes the layer's snapshot and the image under the
    // dead container, which must still be removed whole.
    use crate::image::flush::{blob_key, mark_in_boot, snapshot_key};
    let mut h = Harness::new();
    let store = h.images.store();
    let diff = crate::image::Digest::of(b"lost layer");
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/app"]}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
    );
    let id = crate::image::Digest::of(config.as_bytes());
    store.put_unflushed(&id, config.as_bytes()).unwrap();
    let staging = store.snapshots.staging().unwrap();
    std::fs::write(staging.path().join("app"), "lost").unwrap();
    let layer = crate::snapshot::Layer {
        chain_id: &diff,
        parent: None,
        diff_id: &diff,
        size: 4,
        inodes: 1,
    };
    let snapshot = store.snapshots.commit_unsynced(staging, &layer).unwrap();
    let snapshot_dir = store.snapshots.dir(&snapshot);
    store
        .add(crate::image::store::ImageRecord {
            id: id.clone(),
            repo_tags: vec!["r.io/lost:1".into()],
            repo_digests: vec![],
            manifest: id.clone(),
            index: None,
            layers: vec![],
            chain_ids: vec![diff.clone()],
            size: 4,
            user: String::new(),
            pinned: false,
        })
        .unwrap();
    let pod = h.run_pod("web").await;
    let mut config = super::container_config("app");
    config.image = Some(crate::cri_api::ImageSpec {
        image: "r.io/lost:1".into(),
        ..Default::default()
    });
    let container = (h.runtime.create_container(&pod, config, None).await).unwrap();
    h.runtime.start_container(&container).await.unwrap();
    // The marks as the next boot finds them; the pod's shim died with the machine.
    (store.db.write(|w| {
        mark_in_boot(w, &snapshot_key(&diff), "an-earlier-boot")?;
        mark_in_boot(w, &blob_key(&id), "an-earlier-boot")
    }))
    .unwrap();
    h.launcher.lose(&h.pod_dir(&pod));
    h.restart().await;
    let runtime = h.runtime.clone();
    h.images
        .set_snapshot_users(Box::new(move || runtime.snapshots_in_use().unwrap()));
    h.images.sweep_leftovers().await.unwrap();
    let store = h.images.store();
    assert!(store.lookup("r.io/lost:1").unwrap().is_none());
    assert!(store.snapshots.get(&diff).unwrap().is_none());
    assert_eq!(h.container(&container).state, ContainerState::Exited);
    h.runtime.remove_container(&container).await.unwrap();
    h.runtime.remove_sandbox(&pod).await.unwrap();
    h.assert_clean();
    let trash = h.dir.path().join("root/trash");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while snapshot_dir.exists() || std::fs::read_dir(&trash).unwrap().next().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lost layer's files stay behind"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
