//! The `Stream*` list RPCs of CRI v0.37 (KEP-5825) through berthd: each streams exactly the items
//! its `List*` counterpart returns, every message non-empty, and ends. Root, local registry.

mod common;

use berth::client::CriClient;
use berth::cri::api;
use common::Daemon;
use common::pods::*;
use common::registry::registries;
use futures::StreamExt;

/// Every message of a server stream, failing on an error or an empty message.
async fn collect<R, T>(stream: tonic::Streaming<R>, items: impl Fn(R) -> Vec<T>) -> Vec<T> {
    let messages: Vec<R> = stream.map(|m| m.expect("stream message")).collect().await;
    let chunks: Vec<Vec<T>> = messages.into_iter().map(items).collect();
    assert!(chunks.iter().all(|c| !c.is_empty()), "an empty chunk");
    chunks.into_iter().flatten().collect()
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    let mut ids: Vec<String> = items.iter().map(|i| id(i).to_string()).collect();
    ids.sort();
    ids
}

async fn stream_pods(cri: &mut CriClient) -> Vec<api::PodSandbox> {
    let req = api::StreamPodSandboxesRequest { filter: None };
    let stream = cri.runtime.stream_pod_sandboxes(req).await.unwrap();
    collect(stream.into_inner(), |r| r.pod_sandboxes).await
}

#[tokio::test]
async fn stream_rpcs_send_what_the_list_rpcs_return() {
    let r = registries();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    let mut cri = d.client().await;
    assert!(stream_pods(&mut cri).await.is_empty(), "no pod, no message");

    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut cri, &image).await;
    let logs = d.dir.path().join("logs");
    let a = run_pod(&mut cri, pod_config("stream-a", &logs)).await;
    let b = run_pod(&mut cri, pod_config("stream-b", &logs)).await;
    let ctr = start_container(
        &mut cri,
        &a,
        container_config("sleeper", &image, &["sleep", "600"]),
    )
    .await;

    let pods = stream_pods(&mut cri).await;
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(ids(&pods, |p| &p.id), want);
    let listed = cri
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(ids(&pods, |p| &p.id), ids(&listed, |p| &p.id));

    // A filter applies as in the List RPC.
    let filtered = cri
        .runtime
        .stream_pod_sandboxes(api::StreamPodSandboxesRequest {
            filter: Some(api::PodSandboxFilter {
                id: b.id.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let filtered = collect(filtered.into_inner(), |r| r.pod_sandboxes).await;
    assert_eq!(ids(&filtered, |p| &p.id), vec![b.id.clone()]);

    let containers = cri
        .runtime
        .stream_containers(api::StreamContainersRequest::default())
        .await
        .unwrap();
    let containers = collect(containers.into_inner(), |r| r.containers).await;
    assert_eq!(ids(&containers, |c| &c.id), vec![ctr.clone()]);

    let stats = cri
        .runtime
        .stream_container_stats(api::StreamContainerStatsRequest::default())
        .await
        .unwrap();
    let stats = collect(stats.into_inner(), |r| r.container_stats).await;
    let stat_ids: Vec<String> = stats
        .iter()
        .map(|s| s.attributes.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(stat_ids, vec![ctr.clone()]);

    let pod_stats = cri
        .runtime
        .stream_pod_sandbox_stats(api::StreamPodSandboxStatsRequest::default())
        .await
        .unwrap();
    let pod_stats = collect(pod_stats.into_inner(), |r| r.pod_sandbox_stats).await;
    let mut stat_pods: Vec<String> = pod_stats
        .iter()
        .map(|s| s.attributes.as_ref().unwrap().id.clone())
        .collect();
    stat_pods.sort();
    assert_eq!(stat_pods, want);

    let metrics = cri
        .runtime
        .stream_pod_sandbox_metrics(api::StreamPodSandboxMetricsRequest {})
        .await
        .unwrap();
    let metrics = collect(metrics.into_inner(), |r| r.pod_sandbox_metrics).await;
    assert_eq!(ids(&metrics, |m| &m.pod_sandbox_id), want);

    let images = cri
        .image
        .stream_images(api::StreamImagesRequest::default())
        .await
        .unwrap();
    let images = collect(images.into_inner(), |r| r.images).await;
    let listed = cri
        .image
        .list_images(api::ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images;
    assert!(!images.is_empty());
    assert_eq!(ids(&images, |i| &i.id), ids(&listed, |i| &i.id));

    for pod in [&a, &b] {
        stop_pod(&mut cri, &pod.id).await;
        remove_pod(&mut cri, &pod.id).await;
    }
}
