//! The NRI seam's hooks over the fakes: called at each lifecycle point in order, a failing
//! RunPodSandbox or CreateContainer hook unwinding everything (and a retry working), an
//! adjusted spec reaching config.json, a second StopPodSandbox sending nothing.

use super::{Harness, container_config, pod_config};
use crate::error::{Classify, Kind};

/// The position of the first call `call` in `calls`.
fn at(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("no {call:?} in {calls:?}"))
}

#[tokio::test]
async fn hooks_run_at_each_lifecycle_point_in_order() {
    let h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    h.runtime.start_container(&id).await.unwrap();
    h.runtime.stop_container(&id, 30).await.unwrap();
    h.runtime.remove_container(&id).await.unwrap();
    h.runtime.stop_sandbox(&pod).await.unwrap();
    h.runtime.remove_sandbox(&pod).await.unwrap();
    let calls = h.nri.calls();
    let order = [
        format!("RunPodSandbox {pod}"),
        format!("CreateContainer {id}"),
        format!("PostCreateContainer {id}"),
        format!("StartContainer {id}"),
        format!("PostStartContainer {id}"),
        format!("StopContainer {id}"),
        format!("RemoveContainer {id}"),
        format!("StopPodSandbox {pod}"),
        format!("RemovePodSandbox {pod}"),
    ];
    for pair in order.windows(2) {
        assert!(
            at(&calls, &pair[0]) < at(&calls, &pair[1]),
            "{} before {}: {calls:?}",
            pair[0],
            pair[1]
        );
    }
    // Stopped once: the second StopPodSandbox (by RemovePodSandbox) sends nothing.
    let stops = calls
        .iter()
        .filter(|c| c.starts_with("StopPodSandbox"))
        .count();
    assert_eq!(stops, 1, "{calls:?}");
    h.assert_clean();
}

#[tokio::test]
async fn the_create_hook_adjusts_the_written_spec() {
    let h = Harness::new();
    let pod = h.run_pod("web").await;
    let id = h.create(&pod, "app").await;
    let spec = std::fs::read_to_string(h.container(&id).bundle.join("config.json")).unwrap();
    let spec: oci_spec::runtime::Spec = serde_json::from_str(&spec).unwrap();
    let env = spec.process().clone().unwrap().env().clone().unwrap();
    assert!(env.contains(&"NRI=1".to_string()), "{env:?}");
}

#[tokio::test]
async fn a_failing_create_hook_leaves_nothing_and_a_retry_works() {
    let h = Harness::new();
    let pod = h.run_pod("web").await;
    let before = (h.host.mounted(), h.host.cgroups());
    h.nri.fail_next("CreateContainer");
    let err = h
        .runtime
        .create_container(&pod, container_config("app"), None)
        .await
        .expect_err("the hook fails the create");
    assert_eq!(err.kind(), Kind::FailedPrecondition);
    assert!(err.to_string().contains("induced failure"), "{err}");
    assert!(h.runtime.containers().unwrap().is_empty(), "no record");
    assert!(h.intents().is_empty(), "no intent");
    assert!(h.shim(&pod).held().is_empty(), "the shim holds nothing");
    assert_eq!((h.host.mounted(), h.host.cgroups()), before);
    assert!(h.entries("state", "containers").is_empty(), "bundles");
    assert!(
        h.entries("root", "containers").is_empty(),
        "writable layers"
    );
    // The name is free again.
    h.create(&pod, "app").await;
}

#[tokio::test]
async fn a_failing_run_pod_hook_leaves_no_pod_and_a_retry_works() {
    let h = Harness::new();
    h.nri.fail_next("RunPodSandbox");
    let err = h
        .runtime
        .run_sandbox(pod_config("web"), "")
        .await
        .expect_err("the hook fails the pod");
    assert_eq!(err.kind(), Kind::FailedPrecondition);
    h.assert_clean();
    assert!(
        h.network.attached_ids().is_empty(),
        "the network is detached"
    );
    h.run_pod("web").await;
}
