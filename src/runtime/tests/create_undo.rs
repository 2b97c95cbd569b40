//! Every undo path of RunPodSandbox and CreateContainer: a failure at each step leaves nothing
//! behind, and an undo that fails itself keeps the intent for the restart to finish.

use super::super::RuntimeError;
use super::{Harness, container_config, pod_config};
use crate::error::{Classify, Kind};

/// Creates a container in a fresh pod with one failure injected by `inject`, expects the error,
/// and checks that the pod is exactly as before.
async fn container_fails(inject: impl FnOnce(&Harness, &str)) -> RuntimeError {
    let h = Harness::new();
    let pod = h.run_pod("web").await;
    let before = (h.host.mounted(), h.host.cgroups());
    inject(&h, &pod);
    let err = h
        .runtime
        .create_container(&pod, container_config("app"), None)
        .await
        .expect_err("the injected failure fails the create");
    assert!(h.runtime.containers().unwrap().is_empty(), "no record");
    assert!(h.intents().is_empty(), "no intent");
    assert!(h.shim(&pod).held().is_empty(), "the shim holds nothing");
    assert_eq!(
        (h.host.mounted(), h.host.cgroups()),
        before,
        "mounts, cgroups"
    );
    assert!(h.entries("state", "containers").is_empty(), "bundles");
    assert!(
        h.entries("root", "containers").is_empty(),
        "writable layers"
    );
    h.runtime.remove_sandbox(&pod).await.unwrap();
    h.assert_clean();
    err
}

#[tokio::test]
async fn a_failed_rootfs_mount_is_undone() {
    let err = container_fails(|h, _| h.host.fail_next("mount_rootfs")).await;
    assert!(matches!(err, RuntimeError::Mount(_)), "{err:?}");
}

#[tokio::test]
async fn a_failed_cgroup_is_undone() {
    let err = container_fails(|h, _| h.host.fail_next("create_cgroup")).await;
    assert_eq!(err.kind(), Kind::FailedPrecondition);
}

#[tokio::test]
async fn failed_cgroup_limits_are_undone() {
    container_fails(|h, _| h.host.fail_next("limit_cgroup")).await;
}

#[tokio::test]
async fn a_failed_shim_create_is_undone() {
    let err = container_fails(|h, pod| h.shim(pod).fail_next("create", Kind::Internal)).await;
    assert!(matches!(err, RuntimeError::Shim(_)), "{err:?}");
}

#[tokio::test]
async fn an_undo_that_fails_keeps_the_intent_and_the_restart_finishes_it() {
    let mut h = Harness::new();
    let pod = h.run_pod("web").await;
    h.host.fail_next("create_cgroup");
    h.host.fail_next("unmount"); // the rootfs undo
    let err = h
        .runtime
        .create_container(&pod, container_config("app"), None)
        .await
        .unwrap_err();
    match &err {
        RuntimeError::Unwound { cleanup, .. } => {
            let rootfs = format!("mount {}", h.dir.path().join("state/containers").display());
            assert!(
                cleanup.iter().any(|c| c.what.starts_with(&rootfs)),
                "{cleanup:?}"
            )
        }
        other => panic!("expected the cleanup failure beside the cause: {other:?}"),
    }
    assert_eq!(h.intents().len(), 1, "the intent is kept");
    h.restart().await;
    assert!(h.intents().is_empty());
    assert_eq!(h.host.mounted(), [h.pod_dir(&pod).join("shm")]);
    assert!(h.entries("state", "containers").is_empty());
    assert!(h.entries("root", "containers").is_empty());
}

/// Runs a pod with one failure injected by `inject`, expects the error, and checks that
/// nothing is left.
async fn pod_fails(inject: impl FnOnce(&Harness)) -> RuntimeError {
    let h = Harness::new();
    inject(&h);
    let err = h
        .runtime
        .run_sandbox(pod_config("web"), "")
        .await
        .expect_err("the injected failure fails the pod");
    h.assert_clean();
    err
}

#[tokio::test]
async fn a_failed_shm_mount_is_undone() {
    pod_fails(|h| h.host.fail_next("mount_shm")).await;
}

#[tokio::test]
async fn a_failed_shim_spawn_is_undone() {
    let err = pod_fails(|h| *h.launcher.spawn_fails.lock().unwrap() = true).await;
    assert!(matches!(err, RuntimeError::Shim(_)), "{err:?}");
}

#[tokio::test]
async fn a_failed_network_attach_is_undone() {
    let err = pod_fails(|h| *h.network.attach_fails.lock().unwrap() = true).await;
    assert!(matches!(err, RuntimeError::Network(_)), "{err:?}");
}

#[tokio::test]
async fn a_pod_whose_undo_fails_is_finished_by_the_restart() {
    let mut h = Harness::new();
    *h.network.attach_fails.lock().unwrap() = true;
    h.host.fail_next("unmount"); // the shm undo
    let err = h
        .runtime
        .run_sandbox(pod_config("web"), "")
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Unwound { .. }), "{err:?}");
    assert_eq!(h.intents().len(), 1);
    h.restart().await;
    h.assert_clean();
}
