//! TLS: a private CA from `ca_file`, refusal of an unknown issuer, `insecure` over https, and
//! the https-then-http rule for loopback registries.

use std::sync::Arc;
use std::time::Instant;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::server::{Reply, TestServer};
use super::*;
use crate::error::{Classify, Kind};
use crate::image::registry::Registry;
use crate::image::registry::endpoint::LOOPBACK_CONNECT_TIMEOUT;

/// A fresh CA (as PEM) and a server config whose certificate it signed, for 127.0.0.1 and
/// localhost.
fn ca_and_server() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    (ca_cert.pem(), Arc::new(server))
}

async fn tls_registry(server: Arc<rustls::ServerConfig>) -> TestServer {
    let manifest = manifest_body();
    TestServer::start_tls(server, move |_, _| manifest_reply(&manifest)).await
}

#[tokio::test]
async fn private_ca_from_ca_file_is_trusted() {
    let (ca_pem, server_tls) = ca_and_server();
    let server = tls_registry(server_tls).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let config = RegistryConfig {
        ca_file: Some(ca_file),
        ..RegistryConfig::default()
    };
    let client = client_with(&[(&server.host(), config)], &image_config());
    let fetched = client
        .fetch_manifest(&image(&server.host()), "v1", None)
        .await
        .unwrap();
    assert_eq!(fetched.bytes, manifest_body());
}

#[tokio::test]
async fn unknown_issuer_is_refused_without_falling_back_to_http() {
    let (_, server_tls) = ca_and_server();
    let server = tls_registry(server_tls).await;
    let quick = ImageConfig {
        max_attempts: 2,
        ..image_config()
    };
    let client = client_with(&[], &quick);
    let err = client
        .fetch_manifest(&image(&server.host()), "v1", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable, "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(
        err.to_string().contains("after 1 attempt"),
        "not retried: {err}"
    );
    assert!(server.requests().is_empty(), "no request got through");
}

#[tokio::test]
async fn insecure_https_mirror_accepts_any_certificate() {
    let (_, server_tls) = ca_and_server();
    let mirror = tls_registry(server_tls).await;
    let upstream = TestServer::start(|_, _| Reply::status(500)).await;
    let config = RegistryConfig {
        mirrors: vec![format!("https://{}", mirror.host())],
        ..insecure()
    };
    let client = client_with(
        &[(&upstream.host(), config), (&mirror.host(), insecure())],
        &image_config(),
    );
    client
        .fetch_manifest(&image(&upstream.host()), "v1", None)
        .await
        .unwrap();
    assert_eq!(mirror.requests().len(), 1);
    assert!(upstream.requests().is_empty());
}

#[tokio::test]
async fn loopback_registry_without_config_falls_back_to_http() {
    let manifest = manifest_body();
    let server = TestServer::start(move |_, _| manifest_reply(&manifest)).await;
    let client = client_with(&[], &image_config());
    let image = image(&server.host());
    client.fetch_manifest(&image, "v1", None).await.unwrap();
    client.fetch_manifest(&image, "v1", None).await.unwrap();
    assert_eq!(server.requests().len(), 2);
    assert_eq!(
        server.tls_hellos(),
        1,
        "https tried once, then http remembered"
    );
}

#[tokio::test]
async fn loopback_registry_silent_to_tls_falls_back_to_http_after_the_connect_bound() {
    let manifest = manifest_body();
    let server = TestServer::start_silent_to_tls(move |_, _| manifest_reply(&manifest)).await;
    // The default connect bound (10s), which loopback hosts cap.
    let client = client_with(&[], &image_config());
    let image = image(&server.host());
    let started = Instant::now();
    client.fetch_manifest(&image, "v1", None).await.unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= LOOPBACK_CONNECT_TIMEOUT && elapsed < LOOPBACK_CONNECT_TIMEOUT * 2,
        "fell back after {elapsed:?}"
    );
    assert_eq!(server.tls_hellos(), 1);
    let started = Instant::now();
    client.fetch_manifest(&image, "v1", None).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "http remembered"
    );
    assert_eq!(server.tls_hellos(), 1);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn unreadable_or_empty_ca_file_fails_client_construction() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    for ca_file in [dir.path().join("missing.pem"), empty] {
        let config = RegistryConfig {
            ca_file: Some(ca_file.clone()),
            ..RegistryConfig::default()
        };
        let registries = BTreeMap::from([("r.example".to_string(), config)]);
        let err = match RegistryClient::new(&registries, &image_config()) {
            Ok(_) => panic!("{} was accepted", ca_file.display()),
            Err(e) => e,
        };
        let message = err.to_string();
        assert!(message.contains("r.example.ca_file"), "{message}");
        assert_eq!(err.kind(), Kind::InvalidArgument);
    }
}
