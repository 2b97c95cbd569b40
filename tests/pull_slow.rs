//! Slow registries: a blob connection that stalls or trickles is dropped after one
//! `image.slow_download_window` below `image.min_download_rate` and resumed with a Range request,
//! so a pull with kubelet-like 20 s deadline survives; a slow but steady one is left alone.
//! Pulls of the real test registry through a fault proxy of each test's own.

mod common;

use std::time::{Duration, Instant};

use berth::cri::api;
use common::Daemon;
use common::registry::{FaultProxy, registries};

fn daemon(proxy: &FaultProxy, image_yaml: &str) -> Daemon {
    Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\nimage:\n{image_yaml}",
        proxy.addr
    ))
}

/// The first layer digest of `repo:tag` in the plain registry (the proxy's log shows what
/// berthd asked for it).
fn first_layer(repo: &str, tag: &str) -> String {
    let r = registries();
    let out = std::process::Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &format!("http://{}/v2/{repo}/manifests/{tag}", r.plain),
        ])
        .output()
        .expect("run curl");
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).expect("manifest JSON");
    m["layers"][0]["digest"].as_str().unwrap().to_string()
}

/// Pulls `image` with a 20 s deadline; returns how long it took.
async fn pull_within_20s(d: &Daemon, image: &str) -> Duration {
    let mut cri = d.client().await;
    let mut req = tonic::Request::new(api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(20));
    let started = Instant::now();
    cri.image
        .pull_image(req)
        .await
        .expect("the pull survives within its 20 s deadline");
    started.elapsed()
}

/// Range headers of the proxy's GETs of `digest`, in order (None for a request from byte 0).
fn ranges(proxy: &FaultProxy, digest: &str) -> Vec<Option<String>> {
    proxy
        .log()
        .iter()
        .filter(|e| e["path"].as_str().unwrap_or("").ends_with(digest))
        .map(|e| e["range"].as_str().map(str::to_string))
        .collect()
}

/// With the default settings, `fault` on test/layered:gzip's 1 MB bottom layer is survived by
/// one Range resume after one 10 s window.
async fn survived_with_defaults(fault: &str) {
    let proxy = FaultProxy::private(&registries());
    let layer = first_layer("test/layered", "gzip");
    proxy.set(&format!(r#"{{{fault}, "count": 1, "digest": "{layer}"}}"#));
    let d = daemon(&proxy, "  max_attempts: 5\n");
    let took = pull_within_20s(&d, &format!("{}/test/layered:gzip", proxy.addr)).await;
    assert!(
        took >= Duration::from_secs(9),
        "the slow connection was given its 10 s window: {took:?}"
    );
    let ranges = ranges(&proxy, &layer);
    assert_eq!(ranges.len(), 2, "one slow GET, one resume: {ranges:?}");
    assert_eq!(ranges[0], None);
    let resumed = ranges[1].as_deref().expect("the resume asks for a Range");
    assert!(
        resumed.starts_with("bytes=") && resumed != "bytes=0-",
        "resumes where the slow connection stopped: {resumed}"
    );
}

#[tokio::test]
async fn a_stalled_connection_is_resumed_after_one_window() {
    survived_with_defaults(r#""mode": "stall", "stall_seconds": 60"#).await;
}

#[tokio::test]
async fn a_trickling_connection_is_resumed_after_one_window() {
    survived_with_defaults(r#""mode": "trickle", "rate": 1"#).await;
}

#[tokio::test]
async fn a_steady_connection_at_twice_the_minimum_is_never_dropped() {
    let proxy = FaultProxy::private(&registries());
    let layer = first_layer("library/debian", "bookworm");
    // 11.8 MB at 2 MB/s: about 6 s, three 2 s windows at a minimum of 1 MiB/s.
    proxy.set(&format!(
        r#"{{"mode": "trickle", "rate": 2000000, "digest": "{layer}"}}"#
    ));
    let d = daemon(
        &proxy,
        "  min_download_rate: 1048576\n  slow_download_window: 2s\n",
    );
    let took = pull_within_20s(&d, &format!("{}/library/debian:bookworm", proxy.addr)).await;
    assert!(
        took >= Duration::from_secs(5),
        "the layer was paced: {took:?}"
    );
    assert_eq!(
        ranges(&proxy, &layer),
        vec![None],
        "one connection from start to end"
    );
}
