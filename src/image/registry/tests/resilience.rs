//! Surviving bad networks and busy registries: retries with backoff, resumed and stalled
//! downloads, redirects to blob storage.

use std::time::{Duration, Instant};

use super::server::{Reply, TestServer};
use super::*;
use crate::error::{Classify, Kind};
use crate::image::registry::Registry;

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let layer = blob(5000);
    let digest = Digest::of(&layer);
    let manifest = manifest_body();
    let server = TestServer::start(move |req, hit| match (req.path(), hit) {
        (MANIFEST_PATH, 0) => Reply::status(429),
        (MANIFEST_PATH, 1) => Reply::status(503),
        (MANIFEST_PATH, _) => manifest_reply(&manifest),
        (_, 0 | 1) => Reply::status(500),
        _ => Reply::ok(layer.clone()),
    })
    .await;
    let client = plain_client(&server.host());
    let image = image(&server.host());

    client.fetch_manifest(&image, "v1", None).await.unwrap();
    assert_eq!(server.hits(MANIFEST_PATH).len(), 3);
    let stream = client
        .fetch_blob(&image, &digest, 5000, None)
        .await
        .unwrap();
    assert_eq!(collect(stream).await.unwrap(), blob(5000));
    assert_eq!(
        server.hits(&blob_path(&digest)).len(),
        3,
        "500 twice, then 200"
    );
}

#[tokio::test]
async fn exhausted_retries_are_unavailable() {
    let server = TestServer::start(|_, _| Reply::status(502)).await;
    let client = plain_client(&server.host());
    let err = client
        .fetch_manifest(&image(&server.host()), "v1", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable);
    assert!(err.to_string().contains("after 4 attempt(s)"), "{err}");
    assert_eq!(server.requests().len(), 4, "max_attempts requests in total");

    // Nothing listens on a port that was just released: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = closed.local_addr().unwrap().to_string();
    drop(closed);
    let client = plain_client(&host);
    let err = client
        .fetch_manifest(&image(&host), "v1", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable, "{err}");
}

#[tokio::test]
async fn cut_off_body_resumes_with_a_range_request() {
    let layer = blob(100_000);
    let digest = Digest::of(&layer);
    let served = layer.clone();
    let server = TestServer::start(move |req, hit| match hit {
        0 => Reply::ok(served.clone()).cut_after(40_000),
        _ => serve_range(&served, req),
    })
    .await;
    let client = plain_client(&server.host());
    let stream = client
        .fetch_blob(&image(&server.host()), &digest, 100_000, None)
        .await
        .unwrap();
    assert_eq!(collect(stream).await.unwrap(), layer);
    let requests = server.hits(&blob_path(&digest));
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("range"), None);
    assert_eq!(requests[1].header("range"), Some("bytes=40000-"));
}

#[tokio::test]
async fn resume_answered_with_the_whole_blob_skips_what_was_delivered() {
    let layer = blob(10_000);
    let digest = Digest::of(&layer);
    let served = layer.clone();
    let server = TestServer::start(move |_, hit| match hit {
        0 => Reply::ok(served.clone()).cut_after(3_000),
        _ => Reply::ok(served.clone()),
    })
    .await;
    let client = plain_client(&server.host());
    let stream = client
        .fetch_blob(&image(&server.host()), &digest, 10_000, None)
        .await
        .unwrap();
    assert_eq!(collect(stream).await.unwrap(), layer);
    assert_eq!(
        server.hits(&blob_path(&digest))[1].header("range"),
        Some("bytes=3000-")
    );
}

#[tokio::test]
async fn stalled_body_counts_as_broken_and_resumes() {
    let layer = blob(50_000);
    let digest = Digest::of(&layer);
    let served = layer.clone();
    let server = TestServer::start(move |req, hit| match hit {
        0 => Reply::ok(served.clone()).stall_after(25_000),
        _ => serve_range(&served, req),
    })
    .await;
    let config = ImageConfig {
        no_progress_timeout: Duration::from_millis(200),
        ..image_config()
    };
    let client = client_with(&[(&server.host(), insecure())], &config);
    let started = Instant::now();
    let stream = client
        .fetch_blob(&image(&server.host()), &digest, 50_000, None)
        .await
        .unwrap();
    assert_eq!(collect(stream).await.unwrap(), layer);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let requests = server.hits(&blob_path(&digest));
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("range"), Some("bytes=25000-"));
}

/// A loopback address whose SYNs go unanswered: a listener that never accepts, its accept queue
/// filled. Checked, so the test cannot pass without a connect that hangs.
fn blackholed() -> (
    std::net::SocketAddr,
    Vec<std::net::TcpStream>,
    tokio::net::TcpListener,
) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let probe = Duration::from_millis(300);
    let mut queued = Vec::new();
    for _ in 0..4 {
        match std::net::TcpStream::connect_timeout(&addr, probe) {
            Ok(stream) => queued.push(stream),
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
                return (addr, queued, listener);
            }
        }
    }
    panic!("the accept queue of {addr} never filled: no blackholed address for this test");
}

#[tokio::test]
async fn connecting_to_a_blackholed_address_is_bounded() {
    let (addr, _queued, _listener) = blackholed();
    let host = addr.to_string();
    let config = ImageConfig {
        max_attempts: 2,
        connect_timeout: Duration::from_millis(500),
        ..image_config()
    };
    let client = client_with(&[(&host, insecure())], &config);
    let started = Instant::now();
    let err = client
        .fetch_manifest(&image(&host), "v1", None)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.kind(), Kind::Unavailable, "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("registry {host} unavailable after 2 attempt(s)"))
            && message
                .contains("connecting (TCP connect and TLS handshake) took longer than 500ms"),
        "{message}"
    );
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_registry_that_never_answers_names_the_stage() {
    // Accepts connections and holds them, reading nothing and answering nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let config = ImageConfig {
        max_attempts: 1,
        no_progress_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(500),
        ..image_config()
    };
    let client = client_with(&[(&host, insecure())], &config);
    let err = client
        .fetch_manifest(&image(&host), "v1", None)
        .await
        .unwrap_err();
    silent.abort();
    assert_eq!(err.kind(), Kind::Unavailable, "{err}");
    assert!(
        err.to_string().ends_with(&format!(
            "registry {host} unavailable after 1 attempt(s): request sent, no answer within 300ms"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn redirect_to_blob_storage_does_not_carry_the_authorization() {
    let layer = blob(2_000);
    let digest = Digest::of(&layer);
    let served = layer.clone();
    let storage = TestServer::start(move |_, _| Reply::ok(served.clone())).await;
    let location = format!("http://{}/storage/blob?signature=abc", storage.host());
    let registry = TestServer::start(move |req, _| match req.header("authorization") {
        Some(_) => Reply::status(307).header("location", location.clone()),
        None => Reply::status(401).header("www-authenticate", "Basic realm=r"),
    })
    .await;
    let client = plain_client(&registry.host());
    let alice = basic("alice", "secret");
    let stream = client
        .fetch_blob(&image(&registry.host()), &digest, 2_000, Some(&alice))
        .await
        .unwrap();
    assert_eq!(collect(stream).await.unwrap(), layer);

    let at_registry = registry.requests();
    assert_eq!(at_registry.len(), 2);
    assert!(at_registry[1].header("authorization").is_some());
    let at_storage = storage.requests();
    assert_eq!(at_storage.len(), 1);
    assert_eq!(at_storage[0].target, "/storage/blob?signature=abc");
    assert_eq!(
        at_storage[0].header("authorization"),
        None,
        "credentials stay home"
    );
}
