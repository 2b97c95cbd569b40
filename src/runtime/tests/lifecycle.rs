//! Start, stop, exits and removal over the fakes.

use super::super::RuntimeError;
use super::super::events::EventKind;
use super::super::records::{ContainerState, SandboxState};
use super::{Harness, container_config, pod_config};
use crate::error::{Classify, Kind};

#[tokio::test]
async fn a_container_is_created_started_and_exits() {
    let h = Harness::new();
    let pod = h.run_pod("web").await;
    assert_eq!(h.sandbox(&pod).state, SandboxState::Ready);
    assert_eq!(h.sandbox(&pod).ips, ["10.0.0.2"]);
    let id = h.create(&pod, "app").await;
    let c = h.container(&id);
    assert_eq!(c.state, ContainerState::Created);
    assert_eq!(
        h.host.mounted(),
        [c.bundle.join("rootfs"), h.pod_dir(&pod).join("shm")]
            .iter()
            .rev()
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(h.host.cgroups(), [format!("/berth/{id}")]);
    assert!(c.bundle.join("config.json").exists());
    h.runtime.start_container(&id).await.unwrap();
    assert_eq!(h.container(&id).state, ContainerState::Running);
    h.shim(&pod).exit(&id, 3);
    let c = h.exited(&id).await;
    assert_eq!(c.exit.unwrap().code, 3);
    assert!(h.intents().is_empty());
}

#[tokio::test]
async fn stop_waits_out_the_timeout_then_kills() {
    let h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    h.runtime.start_container(&id).await.unwrap();
    let shim = h.shim(&pod);
    shim.dies_on(&[libc::SIGKILL]); // ignores SIGTERM
    let started = std::time::Instant::now();
    h.runtime.stop_container(&id, 1).await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let signals: Vec<_> = shim
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("signal"))
        .collect();
    assert_eq!(
        signals,
        [
            format!("signal {id} {} all=false", libc::SIGTERM),
            format!("signal {id} {} all=true", libc::SIGKILL),
        ]
    );
    let c = h.container(&id);
    assert_eq!(c.state, ContainerState::Exited);
    assert_eq!(c.exit.unwrap().code, 128 + libc::SIGKILL);
}

#[tokio::test]
async fn stop_with_a_graceful_exit_sends_no_kill() {
    let h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    h.runtime.start_container(&id).await.unwrap();
    h.runtime.stop_container(&id, 30).await.unwrap();
    let calls = h.shim(&pod).calls();
    assert!(calls.contains(&format!("signal {id} {} all=false", libc::SIGTERM)));
    assert!(
        !calls
            .iter()
            .any(|c| c.contains(&format!(" {} ", libc::SIGKILL)))
    );
    assert_eq!(h.container(&id).exit.unwrap().code, 128 + libc::SIGTERM);
}

#[tokio::test]
async fn a_failed_start_leaves_the_container_exited_with_start_error() {
    let h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    let mut events = h.runtime.subscribe();
    h.shim(&pod).fail_next("start", Kind::Internal);
    let err = h.runtime.start_container(&id).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Shim(_)), "{err:?}");
    let c = h.container(&id);
    assert_eq!(c.state, ContainerState::Exited);
    let exit = c.exit.unwrap();
    assert_eq!((exit.code, exit.reason.as_str()), (128, "StartError"));
    let kinds: Vec<_> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventKind::Started, EventKind::Stopped]);
    // A second start is refused: the container is no longer Created.
    let again = h.runtime.start_container(&id).await.unwrap_err();
    assert_eq!(again.kind(), Kind::FailedPrecondition);
}

#[tokio::test]
async fn a_duplicate_exit_record_keeps_the_first_exit() {
    let h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    h.runtime.start_container(&id).await.unwrap();
    let mut events = h.runtime.subscribe();
    let shim = h.shim(&pod);
    shim.exit(&id, 3);
    let first = h.exited(&id).await.exit.unwrap();
    // The same exit again (a replay) and a different one: neither changes the record.
    shim.exit(&id, 3);
    shim.exit(&id, 9);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(h.container(&id).exit.unwrap(), first);
    let stopped = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| e.kind == EventKind::Stopped)
        .count();
    assert_eq!(stopped, 1);
}

#[tokio::test]
async fn removing_unknown_objects_is_not_an_error() {
    let h = Harness::new();
    let unknown = "f".repeat(64);
    h.runtime.stop_container(&unknown, 10).await.unwrap();
    h.runtime.remove_container(&unknown).await.unwrap();
    h.runtime.stop_sandbox(&unknown).await.unwrap();
    h.runtime.remove_sandbox(&unknown).await.unwrap();
    let err = h.runtime.start_container(&unknown).await.unwrap_err();
    assert_eq!(err.kind(), Kind::NotFound);
    h.assert_clean();
}

#[tokio::test]
async fn removing_a_half_gone_container_finishes() {
    let h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    let c = h.container(&id);
    // Its shim forgot it and its dirs are gone already.
    h.shim(&pod).fail_next("delete", Kind::NotFound);
    std::fs::remove_dir_all(&c.bundle).unwrap();
    std::fs::remove_dir_all(&c.rw_dir).unwrap();
    h.runtime.remove_container(&id).await.unwrap();
    assert_eq!(h.runtime.container(&id).unwrap_err().kind(), Kind::NotFound);
    h.runtime.remove_sandbox(&pod).await.unwrap();
    h.assert_clean();
}

#[tokio::test]
async fn a_pod_is_stopped_then_removed_with_everything_it_had() {
    let h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    h.runtime.start_container(&id).await.unwrap();
    h.runtime.stop_sandbox(&pod).await.unwrap();
    assert_eq!(h.sandbox(&pod).state, SandboxState::NotReady);
    assert_eq!(h.container(&id).state, ContainerState::Exited);
    assert!(h.network.attached_ids().is_empty());
    h.runtime.remove_sandbox(&pod).await.unwrap();
    h.assert_clean();
}

#[tokio::test]
async fn two_requests_racing_for_one_pod_name_make_one_pod() {
    let h = Harness::new();
    let (a, b) = tokio::join!(
        h.runtime.run_sandbox(pod_config("web"), ""),
        h.runtime.run_sandbox(pod_config("web"), "")
    );
    let (won, lost) = match (a, b) {
        (Ok(id), Err(e)) | (Err(e), Ok(id)) => (id, e),
        other => panic!("one must win and one lose: {other:?}"),
    };
    assert_eq!(lost.kind(), Kind::AlreadyExists);
    assert_eq!(h.launcher.spawned(), 1);
    assert_eq!(h.runtime.list_sandboxes().unwrap().len(), 1);
    assert_eq!(h.sandbox(&won).state, SandboxState::Ready);
}

#[tokio::test]
async fn two_requests_racing_for_one_container_name_make_one_container() {
    let h = Harness::new();
    let pod = h.run_pod("web").await;
    let (a, b) = tokio::join!(
        h.runtime
            .create_container(&pod, container_config("app"), None),
        h.runtime
            .create_container(&pod, container_config("app"), None)
    );
    let (won, lost) = match (a, b) {
        (Ok(id), Err(e)) | (Err(e), Ok(id)) => (id, e),
        other => panic!("one must win and one lose: {other:?}"),
    };
    assert_eq!(lost.kind(), Kind::AlreadyExists);
    assert_eq!(h.shim(&pod).held(), [won]);
    assert_eq!(h.host.cgroups().len(), 1);
    assert_eq!(h.entries("state", "containers").len(), 1);
}
