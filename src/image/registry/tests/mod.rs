//! Tests of the registry client against scripted in-process HTTP servers: what goes on the wire
//! and what comes back to the caller.

mod auth;
mod mirror;
mod pull;
mod resilience;
mod server;
mod tls;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use super::{BlobStream, Credentials, OCI_MANIFEST, RegistryClient, RegistryError};
use crate::config::{ImageConfig, RegistryConfig};
use crate::image::digest::Digest;
use crate::image::reference::ImageRef;
use server::{Reply, Request};

/// Small timeouts so failure paths take milliseconds, with room for a loaded CI machine.
fn image_config() -> ImageConfig {
    ImageConfig {
        max_attempts: 4,
        no_progress_timeout: Duration::from_secs(2),
        ..ImageConfig::default()
    }
}

fn client_with(registries: &[(&str, RegistryConfig)], image: &ImageConfig) -> RegistryClient {
    let registries: BTreeMap<String, RegistryConfig> = registries
        .iter()
        .map(|(host, config)| (host.to_string(), config.clone()))
        .collect();
    RegistryClient::new(&registries, image).expect("client builds")
}

/// A client that speaks plain http to `host`.
fn plain_client(host: &str) -> RegistryClient {
    client_with(&[(host, insecure())], &image_config())
}

fn insecure() -> RegistryConfig {
    RegistryConfig {
        insecure: true,
        ..RegistryConfig::default()
    }
}

fn image(host: &str) -> ImageRef {
    format!("{host}/team/app:v1")
        .parse()
        .expect("valid reference")
}

const MANIFEST_PATH: &str = "/v2/team/app/manifests/v1";

fn blob_path(digest: &Digest) -> String {
    format!("/v2/team/app/blobs/{digest}")
}

/// A small OCI manifest document.
fn manifest_body() -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[]}}"#,
        Digest::of(b"{}")
    )
    .into_bytes()
}

fn manifest_reply(body: &[u8]) -> Reply {
    Reply::ok(body).header("content-type", OCI_MANIFEST)
}

/// `len` bytes that are not all the same, so misplaced ranges show.
fn blob(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Serves `blob` whole, or from a `Range: bytes=N-` start with 206.
fn serve_range(blob: &[u8], request: &Request) -> Reply {
    let start = request
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match start {
        Some(start) => Reply::status(206)
            .header(
                "content-range",
                format!("bytes {start}-{}/{}", blob.len() - 1, blob.len()),
            )
            .body(&blob[start..]),
        None => Reply::ok(blob),
    }
}

async fn collect(stream: BlobStream) -> Result<Vec<u8>, RegistryError> {
    let mut bytes = Vec::new();
    let mut stream = stream;
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
    }
    Ok(bytes)
}

fn basic(username: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: username.into(),
        password: password.into(),
    }
}
