//! Pulls through the fault proxy (hack/faultproxy.py), through a front that never answers TLS,
//! and of hostile images: every pull ends in a correct image or a clean error, with no temp files
//! or half snapshots left behind. The proxy's fault selection is global, so the tests that use
//! it run one at a time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth::cri::api;
use common::Daemon;
use common::registry::{FaultProxy, Registries, registries};
use tokio::sync::Mutex;

static PROXY: Mutex<()> = Mutex::const_new(());

fn daemon(r: &Registries, extra: &str) -> Daemon {
    Daemon::start(&format!(
        "registries:\n  \"{plain}\":\n    insecure: true\n  \"{proxy}\":\n    insecure: true\n{extra}",
        plain = r.plain,
        proxy = r.proxy,
    ))
}

fn request(image: &str, auth: Option<api::AuthConfig>) -> api::PullImageRequest {
    api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        auth,
        sandbox_config: None,
    }
}

async fn pull(d: &Daemon, image: &str) -> Result<String, tonic::Status> {
    let mut cri = d.client().await;
    Ok(cri
        .image
        .pull_image(request(image, None))
        .await?
        .into_inner()
        .image_ref)
}

async fn image_count(d: &Daemon) -> usize {
    let mut cri = d.client().await;
    let req = api::ListImagesRequest { filter: None };
    cri.image
        .list_images(req)
        .await
        .unwrap()
        .into_inner()
        .images
        .len()
}

/// Staging dirs, ingest files and (when no image is stored) snapshots and blobs.
fn leftovers(d: &Daemon) -> Vec<String> {
    let root = d.dir.path().join("root");
    let mut out = vec![];
    for dir in [root.join("snapshots"), root.join("content/ingest")] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            out.push(e.path().display().to_string());
        }
    }
    out
}

/// Waits briefly for cancelled work to finish cleaning up, then returns what is left.
async fn settled_leftovers(d: &Daemon) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = leftovers(d);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn debian(r: &Registries) -> String {
    format!("{}/library/debian:bookworm", r.proxy)
}

#[tokio::test]
async fn second_pull_transfers_only_the_manifest() {
    let _serial = PROXY.lock().await;
    let r = registries();
    let proxy = FaultProxy::new(&r);
    let d = daemon(&r, "");
    let image = format!("{}/test/layered:gzip", r.proxy);
    let id = pull(&d, &image).await.unwrap();
    let first = proxy.blob_gets();
    assert!(first.len() >= 5, "config and layers fetched: {first:?}");
    proxy.reset();
    assert_eq!(pull(&d, &image).await.unwrap(), id);
    let log = proxy.log();
    assert!(
        proxy.blob_gets().is_empty(),
        "nothing but manifests: {log:?}"
    );
    assert!(
        log.iter()
            .any(|e| e["path"].as_str().unwrap().contains("/manifests/"))
    );
}

#[tokio::test]
async fn identical_concurrent_pulls_are_merged() {
    let _serial = PROXY.lock().await;
    let r = registries();
    let proxy = FaultProxy::new(&r);
    let d = daemon(&r, "");
    let image = debian(&r);
    let (a, b, c) = tokio::join!(pull(&d, &image), pull(&d, &image), pull(&d, &image));
    let id = a.unwrap();
    assert_eq!(b.unwrap(), id);
    assert_eq!(c.unwrap(), id);
    let gets = proxy.blob_gets();
    let mut unique = gets.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(gets.len(), unique.len(), "each blob fetched once: {gets:?}");
    assert_eq!(gets.len(), 4, "config + 3 layers: {gets:?}");
}

#[tokio::test]
async fn truncated_blobs_resume_with_range_requests() {
    let _serial = PROXY.lock().await;
    let r = registries();
    let proxy = FaultProxy::new(&r);
    proxy.set(r#"{"mode": "truncate", "count": 3}"#);
    let d = daemon(&r, "");
    pull(&d, &debian(&r))
        .await
        .expect("pull survives truncated blobs");
    let resumed = proxy
        .log()
        .into_iter()
        .filter(|e| e["range"].is_string())
        .count();
    assert!(resumed >= 1, "resumed with Range: {:?}", proxy.log());
    assert!(
        leftovers(&d)
            .iter()
            .all(|p| !p.contains("/tmp-") && !p.contains("ingest/"))
    );
}

#[tokio::test]
async fn server_errors_are_retried() {
    let _serial = PROXY.lock().await;
    let r = registries();
    let proxy = FaultProxy::new(&r);
    proxy.set(r#"{"mode": "error500", "count": 2}"#);
    let d = daemon(&r, "");
    pull(&d, &debian(&r)).await.expect("two 500s then success");
    let errors = proxy
        .log()
        .into_iter()
        .filter(|e| e["status"] == 500)
        .count();
    assert_eq!(errors, 2);
}

#[tokio::test]
async fn a_stalled_download_is_detected_and_resumed() {
    let _serial = PROXY.lock().await;
    let r = registries();
    let proxy = FaultProxy::new(&r);
    proxy.set(r#"{"mode": "stall", "count": 1, "stall_seconds": 30}"#);
    let d = daemon(&r, "image:\n  no_progress_timeout: 1s\n");
    let started = Instant::now();
    pull(&d, &debian(&r))
        .await
        .expect("stall detected, download resumed");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "did not wait for the stall to end"
    );
}

#[tokio::test]
async fn corrupted_blob_fails_cleanly_and_a_retry_succeeds() {
    let _serial = PROXY.lock().await;
    let r = registries();
    let proxy = FaultProxy::new(&r);
    proxy.set(r#"{"mode": "wrongdigest"}"#);
    let d = daemon(&r, "");
    let err = pull(&d, &debian(&r)).await.unwrap_err();
    assert!(
        err.message().contains("mismatch") || err.message().contains("decompress"),
        "{err:?}"
    );
    assert_eq!(image_count(&d).await, 0);
    assert_eq!(settled_leftovers(&d).await, Vec::<String>::new());
    proxy.reset();
    pull(&d, &debian(&r)).await.expect("clean retry");
}

#[tokio::test]
async fn unauthorized_registry_is_permission_denied() {
    let _serial = PROXY.lock().await;
    let r = registries();
    let proxy = FaultProxy::new(&r);
    proxy.set(r#"{"mode": "unauthorized"}"#);
    let d = daemon(&r, "");
    let err = pull(&d, &debian(&r)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(settled_leftovers(&d).await.is_empty());
}

#[tokio::test]
async fn bearer_token_flow_and_redirects() {
    let _serial = PROXY.lock().await;
    let r = registries();
    let proxy = FaultProxy::new(&r);
    proxy.set(r#"{"mode": "bearer+redirect"}"#);
    let d = daemon(&r, "");
    let image = format!("{}/library/busybox:latest", r.proxy);
    let err = pull(&d, &image).await.unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::PermissionDenied,
        "no credentials: {err:?}"
    );
    let auth = api::AuthConfig {
        username: "tokenuser".into(),
        password: "tokenpass".into(),
        ..Default::default()
    };
    let mut cri = d.client().await;
    cri.image
        .pull_image(request(&image, Some(auth)))
        .await
        .expect("bearer pull");
    let log = proxy.log();
    assert!(
        log.iter()
            .any(|e| e["path"].as_str().unwrap().starts_with("/token")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|e| e["path"].as_str().unwrap().starts_with("/__blob/")),
        "{log:?}"
    );
}

#[tokio::test]
async fn deadline_exceeded_leaves_nothing_behind() {
    let _serial = PROXY.lock().await;
    let r = registries();
    let proxy = FaultProxy::new(&r);
    proxy.set(r#"{"mode": "stall", "stall_seconds": 60}"#);
    let d = daemon(&r, "");
    let mut cri = d.client().await;
    let mut req = tonic::Request::new(request(&debian(&r), None));
    req.set_timeout(Duration::from_secs(2));
    let err = cri.image.pull_image(req).await.unwrap_err();
    // berthd and the client both enforce the deadline; whichever fires first answers.
    let client_side = err.code() == tonic::Code::Cancelled && err.message().contains("Timeout");
    assert!(
        err.code() == tonic::Code::DeadlineExceeded || client_side,
        "{err:?}"
    );
    proxy.reset();
    assert_eq!(settled_leftovers(&d).await, Vec::<String>::new());
    assert_eq!(image_count(&d).await, 0);
}

/// A loopback front for the plain registry: a connection that opens with a TLS handshake record
/// gets silence, as from an HTTP/1 server waiting for a request line (counted); any other is
/// relayed to `upstream`.
async fn silent_to_tls_front(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let hellos = Arc::new(AtomicUsize::new(0));
    let counted = hellos.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (upstream, counted) = (upstream.clone(), counted.clone());
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if client.peek(&mut first).await.ok() != Some(1) {
                    return;
                }
                if first[0] == 0x16 {
                    counted.fetch_add(1, Ordering::Relaxed);
                    let mut sink = [0u8; 1024];
                    while matches!(tokio::io::AsyncReadExt::read(&mut client, &mut sink).await, Ok(n) if n > 0)
                    {
                    }
                    return;
                }
                if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    (host, hellos)
}

#[tokio::test]
async fn loopback_registry_silent_to_tls_is_pulled_over_http_in_bounded_time() {
    let r = registries();
    let (front, hellos) = silent_to_tls_front(r.plain.clone()).await;
    let d = daemon(&r, ""); // no entry for the front: https first, as for any loopback host
    let image = format!("{front}/library/busybox:latest");
    let started = Instant::now();
    let pulled = tokio::time::timeout(Duration::from_secs(60), pull(&d, &image)).await;
    let elapsed = started.elapsed();
    let id = pulled
        .expect("the pull hung until the test's deadline")
        .expect("pull over http");
    assert!(id.starts_with("sha256:"), "{id}");
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    assert_eq!(hellos.load(Ordering::Relaxed), 1, "https tried once");
    assert_eq!(image_count(&d).await, 1);
}

#[tokio::test]
async fn hostile_layers_are_rejected_without_writing_outside() {
    let _serial = PROXY.lock().await;
    let r = registries();
    let d = daemon(&r, "image:\n  max_layer_bytes: 268435456\n");
    for tag in [
        "dotdot",
        "symlink-escape",
        "hardlink-escape",
        "symlink-parent",
    ] {
        let image = format!("{}/test/hostile:{tag}", r.plain);
        let err = pull(&d, &image).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{tag}: {err:?}");
        assert_eq!(settled_leftovers(&d).await, Vec::<String>::new(), "{tag}");
    }
    // Like Docker, an absolute entry path is taken relative to the rootfs, not rejected.
    pull(&d, &format!("{}/test/hostile:absolute", r.plain))
        .await
        .expect("absolute paths stay inside");
    let mut cri = d.client().await;
    let img = format!("{}/test/hostile:absolute", r.plain);
    let req = api::RemoveImageRequest {
        image: Some(api::ImageSpec {
            image: img,
            ..Default::default()
        }),
    };
    cri.image.remove_image(req).await.unwrap();
    for escaped in ["/escape", "/tmp/escaped", "/etc/escape-abs"] {
        assert!(
            !std::path::Path::new(escaped).exists(),
            "{escaped} written outside the rootfs"
        );
    }
    let err = pull(&d, &format!("{}/test/hostile:bomb", r.plain))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "bomb: {err:?}");
    let err = pull(&d, &format!("{}/test/hostile:bad-diffid", r.plain))
        .await
        .unwrap_err();
    assert!(err.message().contains("diff id"), "{err:?}");
    let err = pull(&d, &format!("{}/test/hostile:bad-size", r.plain))
        .await
        .unwrap_err();
    assert_ne!(err.code(), tonic::Code::Ok);
    assert_eq!(settled_leftovers(&d).await, Vec::<String>::new());
    assert_eq!(image_count(&d).await, 0);
}
