//! CRI requests carrying far more metadata than kubelet ever sends: a pod or container whose
//! labels and annotations pass berth's cap is refused with `InvalidArgument` and leaves nothing
//! listed (a few such pods would make ListPodSandbox's reply outgrow the gRPC limit, breaking it
//! for everyone); one at the scale Kubernetes allows (256 KiB of annotations) works. Root.

mod common;

use berth::cri::api;
use common::Daemon;
use common::pods::{container_config, pod_config, pull, run_pod, try_create_container};
use common::registry::registries;

const MIB: usize = 1 << 20;

async fn pods(cri: &mut berth::client::CriClient) -> Vec<api::PodSandbox> {
    let req = api::ListPodSandboxRequest { filter: None };
    let reply = cri.runtime.list_pod_sandbox(req).await;
    reply.expect("ListPodSandbox").into_inner().items
}

#[tokio::test]
async fn oversized_pod_and_container_metadata_is_refused_and_leaves_nothing() {
    let r = registries();
    let daemon = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    let mut cri = daemon.client().await;
    let logs = daemon.dir.path().join("logs");

    let mut huge = pod_config("huge", &logs);
    huge.labels.insert("huge".into(), "x".repeat(15 * MIB));
    let req = api::RunPodSandboxRequest {
        config: Some(huge),
        runtime_handler: String::new(),
    };
    let err = cri.runtime.run_pod_sandbox(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("labels and annotations"),
        "{}",
        err.message()
    );
    assert!(pods(&mut cri).await.is_empty(), "the refused pod is listed");

    // What the Kubernetes API lets a pod carry in annotations passes.
    let mut big = pod_config("big", &logs);
    big.annotations.insert("big".into(), "y".repeat(256 << 10));
    let pod = run_pod(&mut cri, big).await;
    assert_eq!(pods(&mut cri).await.len(), 1);

    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut cri, &image).await;
    let mut config = container_config("huge", &image, &["sleep", "60"]);
    config
        .annotations
        .insert("huge".into(), "z".repeat(15 * MIB));
    let err = try_create_container(&mut cri, &pod, config)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let listed = common::pods::list_containers(&mut cri).await;
    assert!(listed.is_empty(), "the refused container is listed");
}
