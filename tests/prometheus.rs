//! berthd's Prometheus endpoint (`metrics.address`), scraped after a real pull and a real pod run:
//! the values, not only the names. Root; the local test registry.

mod common;

use common::Daemon;
use common::pods::{container_config, pod_config, pull, run_pod, start_container};
use common::registry::{http, registries};

/// The value of the sample `name_and_labels` (the exact text before the value) in `text`.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

fn scrape(address: &str) -> String {
    let (status, body) = http(address, "GET", "/metrics", "").expect("scrape /metrics");
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn metrics_count_rpcs_pulls_pods_and_the_process() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(&format!("metrics:\n  address: {address}\n"));
    let mut cri = daemon.client().await;

    let text = scrape(&address);
    assert_eq!(sample(&text, r#"berth_pods{state="ready"}"#), Some(0.0));
    assert_eq!(sample(&text, "berth_shims"), Some(0.0));

    let image = format!("{}/library/busybox:latest", registries().plain);
    pull(&mut cri, &image).await;
    // A pull of an image that does not exist fails, and is counted by its cause.
    let missing = format!("{}/library/busybox:no-such-tag", registries().plain);
    let err = cri
        .image
        .pull_image(berth::cri::api::PullImageRequest {
            image: Some(berth::cri::api::ImageSpec {
                image: missing,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    let pod = run_pod(
        &mut cri,
        pod_config("prom", &daemon.dir.path().join("logs")),
    )
    .await;
    start_container(
        &mut cri,
        &pod,
        container_config("sleeper", &image, &["sleep", "300"]),
    )
    .await;

    let text = scrape(&address);
    let v = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("no {s} in\n{text}"));
    assert_eq!(v(r#"berth_image_pulls_total{result="ok"}"#), 1.0);
    assert_eq!(v(r#"berth_image_pulls_total{result="NotFound"}"#), 1.0);
    assert_eq!(v(r#"berth_image_pull_layers_total{source="fetched"}"#), 1.0);
    assert!(v("berth_image_pull_bytes_total") > 100_000.0, "{text}");
    assert_eq!(
        v(r#"berth_grpc_requests_total{method="PullImage",code="OK"}"#),
        1.0
    );
    assert_eq!(
        v(r#"berth_grpc_requests_total{method="PullImage",code="NotFound"}"#),
        1.0
    );
    assert_eq!(
        v(r#"berth_grpc_requests_total{method="RunPodSandbox",code="OK"}"#),
        1.0
    );
    assert_eq!(
        v(r#"berth_grpc_request_duration_seconds_count{method="StartContainer"}"#),
        1.0
    );
    assert_eq!(v(r#"berth_pods{state="ready"}"#), 1.0);
    assert_eq!(v(r#"berth_containers{state="running"}"#), 1.0);
    assert_eq!(v("berth_shims"), 1.0);
    assert!(v(r#"berth_cni_duration_seconds_count{op="add"}"#) >= 1.0);
    assert!(v("berth_process_open_fds") > 0.0);
    assert!(v("berth_process_threads") >= 1.0);
    assert!(v("berth_process_resident_memory_bytes") > 1_000_000.0);

    // Only GET /metrics is served.
    let (status, _) = http(&address, "GET", "/", "").unwrap();
    assert_eq!(status, 404);
    let (status, _) = http(&address, "POST", "/metrics", "").unwrap();
    assert_eq!(status, 405);

    common::pods::stop_pod(&mut cri, &pod.id).await;
    common::pods::remove_pod(&mut cri, &pod.id).await;
    let text = scrape(&address);
    assert_eq!(sample(&text, r#"berth_pods{state="ready"}"#), Some(0.0));
    assert_eq!(sample(&text, "berth_shims"), Some(0.0));
}

#[test]
fn a_non_loopback_metrics_address_stops_berthd_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "metrics:\n  address: 0.0.0.0:9338\n").unwrap();
    let out = std::process::Command::new(common::berthd_path())
        .arg("--config")
        .arg(&config)
        .output()
        .expect("run berthd");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("metrics.address"), "{stderr}");
}
