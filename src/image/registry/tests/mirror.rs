//! Mirrors: tried in order before the registry, skipped on any failure, never handed the
//! caller's credentials.

use super::server::{Reply, TestServer};
use super::*;
use crate::error::{Classify, Kind};
use crate::image::registry::Registry;

/// A registry serving the test manifest and a 1000-byte blob to anyone.
async fn open_registry() -> TestServer {
    let manifest = manifest_body();
    TestServer::start(move |req, _| match req.path() {
        MANIFEST_PATH => manifest_reply(&manifest),
        _ => Reply::ok(blob(1000)),
    })
    .await
}

fn with_mirrors(upstream: &str, mirrors: &[String]) -> RegistryClient {
    let config = RegistryConfig {
        mirrors: mirrors.to_vec(),
        ..insecure()
    };
    let quick = ImageConfig {
        max_attempts: 2,
        ..image_config()
    };
    client_with(&[(upstream, config)], &quick)
}

async fn pull_both(client: &RegistryClient, image: &ImageRef, creds: Option<&Credentials>) {
    let manifest = client.fetch_manifest(image, "v1", creds).await.unwrap();
    assert_eq!(manifest.bytes, manifest_body());
    let digest = Digest::of(&blob(1000));
    let stream = client
        .fetch_blob(image, &digest, 1000, creds)
        .await
        .unwrap();
    assert_eq!(collect(stream).await.unwrap(), blob(1000));
}

#[tokio::test]
async fn failing_mirrors_fall_back_to_the_registry() {
    let upstream = open_registry().await;
    let broken = TestServer::start(|_, _| Reply::status(500)).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = closed.local_addr().unwrap().to_string();
    drop(closed);
    let mirrors = [
        format!("http://{refused}"),
        format!("http://{}", broken.host()),
    ];
    let client = with_mirrors(&upstream.host(), &mirrors);

    pull_both(&client, &image(&upstream.host()), None).await;
    assert_eq!(
        broken.requests().len(),
        4,
        "two attempts each for manifest and blob"
    );
    assert_eq!(upstream.requests().len(), 2);
}

#[tokio::test]
async fn when_all_fail_the_error_is_the_registrys_and_names_each_mirror() {
    let upstream = TestServer::start(|_, _| Reply::status(503)).await;
    let empty = TestServer::start(|_, _| Reply::status(404)).await;
    let client = with_mirrors(&upstream.host(), &[format!("http://{}", empty.host())]);

    let err = client
        .fetch_manifest(&image(&upstream.host()), "v1", None)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        Kind::Unavailable,
        "the registry's own failure decides"
    );
    let text = err.to_string();
    assert!(text.contains(&upstream.host()), "{text}");
    assert!(text.contains(&format!("mirror {}", empty.host())), "{text}");
    assert!(text.contains("not found"), "{text}");

    let digest = Digest::of(&blob(1000));
    let img = image(&upstream.host());
    let err = client
        .fetch_blob(&img, &digest, 1000, None)
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), Kind::Unavailable);
    assert!(
        err.to_string()
            .contains(&format!("mirror {}", empty.host())),
        "{err}"
    );
}

#[tokio::test]
async fn a_working_mirror_spares_the_registry() {
    let upstream = TestServer::start(|_, _| Reply::status(500)).await;
    let mirror = open_registry().await;
    // No scheme: the mirror's own `registries` entry says it is plain http.
    let config = RegistryConfig {
        mirrors: vec![mirror.host()],
        ..insecure()
    };
    let client = client_with(
        &[(&upstream.host(), config), (&mirror.host(), insecure())],
        &image_config(),
    );
    pull_both(&client, &image(&upstream.host()), None).await;
    assert_eq!(mirror.requests().len(), 2);
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn mirrors_never_get_the_callers_credentials() {
    let upstream = open_registry().await;
    let mirror =
        TestServer::start(|_, _| Reply::status(401).header("www-authenticate", "Basic realm=m"))
            .await;
    let client = with_mirrors(&upstream.host(), &[format!("http://{}", mirror.host())]);
    let alice = basic("alice", "secret");
    pull_both(&client, &image(&upstream.host()), Some(&alice)).await;
    assert!(!mirror.requests().is_empty());
    assert!(
        mirror
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}

#[tokio::test]
async fn malformed_mirror_entries_fail_client_construction() {
    let config = RegistryConfig {
        mirrors: vec!["https://mirror.example/some/path".into()],
        ..RegistryConfig::default()
    };
    let registries = BTreeMap::from([("docker.io".to_string(), config)]);
    let err = match RegistryClient::new(&registries, &image_config()) {
        Ok(_) => panic!("a mirror with a path was accepted"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("docker.io.mirrors"), "{err}");
}
