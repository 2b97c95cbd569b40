//! The OCI distribution API client berth pulls and pushes with: manifests as bytes, blobs as
//! streams. Transport only — parsing manifests is someone else's job. The pull code sees only
//! the [`Registry`] trait, the push code only [`RegistryPush`] (`push.rs`).
//!
//! - Requests go to a registry's mirrors in order, then to the registry itself; any failure on a
//!   mirror (logged at warn) moves on to the next. Schemes and TLS are per host (`endpoint.rs`).
//! - Authentication is anonymous first, then what a 401 asks for (`auth.rs`, `transport.rs`).
//!   The caller's credentials go to the registry only; a mirror gets its own configured ones.
//! - Connection failures, 408, 429 and 5xx are retried with backoff up to
//!   `image.max_attempts`; waiting longer than `image.no_progress_timeout` for any byte counts
//!   as a failure. There is no total timeout.
//! - Broken blob downloads resume with a Range request (`blob.rs`), on the same host.
//! - Proxies come from the usual `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` variables, as in
//!   containerd.

mod auth;
mod blob;
mod endpoint;
mod error;
mod manifest;
mod push;
mod transport;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tracing::warn;

use crate::config::{ImageConfig, RegistryConfig};
use crate::image::digest::Digest;
use crate::image::reference::ImageRef;

pub use error::{Cause, Object, RegistryError};
pub use manifest::{
    ACCEPTED_MEDIA_TYPES, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MAX_MANIFEST_BYTES, OCI_INDEX,
    OCI_MANIFEST,
};
pub use push::{BlobPushed, BlobUpload, RegistryPush};

use blob::BlobSource;
use endpoint::{Clients, Endpoint, Endpoints};
use transport::Transport;

/// How to authenticate to a registry, as the CRI `AuthConfig` carries it.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A username and password, sent as Basic auth or traded for a Bearer token.
    Basic { username: String, password: String },
    /// An OAuth2 refresh token, traded for an access token at the registry's token endpoint.
    IdentityToken(String),
    /// A ready Bearer token, sent as is.
    RegistryToken(String),
}

impl fmt::Debug for Credentials {
    /// Names the user, never a password or token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Credentials::RegistryToken(_) => f.write_str("RegistryToken(<redacted>)"),
        }
    }
}

/// A manifest exactly as the registry sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// One of [`ACCEPTED_MEDIA_TYPES`].
    pub media_type: String,
    /// The sha256 of `bytes`, checked against the reference when it was a digest.
    pub digest: Digest,
    pub bytes: bytes::Bytes,
}

/// A blob's bytes, in order from byte 0; ends after exactly the descriptor's size.
pub type BlobStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, RegistryError>> + Send>>;

/// The seam: the pull code takes `Arc<dyn Registry>` so unit tests can fake it.
pub trait Registry: Send + Sync {
    /// Fetches the manifest `reference` (a tag or a digest) of `image`'s repository.
    fn fetch_manifest<'a>(
        &'a self,
        image: &'a ImageRef,
        reference: &'a str,
        creds: Option<&'a Credentials>,
    ) -> BoxFuture<'a, Result<FetchedManifest, RegistryError>>;

    /// Streams the blob from byte 0; the stream resumes internally after a broken connection.
    /// `size` is the descriptor's size: the stream ends after exactly that many bytes, and more
    /// is an error — also for a size of 0, which is an empty blob, never "unknown". The caller
    /// verifies the digest.
    fn fetch_blob<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a Digest,
        size: u64,
        creds: Option<&'a Credentials>,
    ) -> BoxFuture<'a, Result<BlobStream, RegistryError>>;
}

/// The real registry client. Cheap to share behind an `Arc`; tokens and learned schemes are
/// kept for the life of the client.
pub struct RegistryClient {
    clients: Clients,
    transport: Arc<Transport>,
    /// Per registry name, made on first use and kept: an endpoint remembers a learned scheme.
    endpoints: Mutex<HashMap<String, Arc<Endpoints>>>,
}

impl RegistryClient {
    /// Builds the HTTP clients for every configured registry. Fails when a CA file cannot be
    /// read or a mirror entry is malformed, naming the config key.
    pub fn new(
        registries: &BTreeMap<String, RegistryConfig>,
        image: &ImageConfig,
    ) -> Result<RegistryClient, RegistryError> {
        Ok(RegistryClient {
            clients: Clients::new(registries, image)?,
            transport: Arc::new(Transport::new(
                image.max_attempts,
                image.no_progress_timeout,
                transport::MinRate {
                    bytes_per_second: image.min_download_rate,
                    window: image.slow_download_window,
                },
            )),
            endpoints: Mutex::new(HashMap::new()),
        })
    }

    fn endpoints(&self, registry: &str) -> Arc<Endpoints> {
        let mut known = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        known
            .entry(registry.to_string())
            .or_insert_with(|| Arc::new(self.clients.endpoints(registry)))
            .clone()
    }
}

impl Registry for RegistryClient {
    fn fetch_manifest<'a>(
        &'a self,
        image: &'a ImageRef,
        reference: &'a str,
        creds: Option<&'a Credentials>,
    ) -> BoxFuture<'a, Result<FetchedManifest, RegistryError>> {
        Box::pin(async move {
            let endpoints = self.endpoints(image.registry());
            let (name, repository) = (image.name(), image.repository());
            manifest::pinned_digest(&name, reference)?;
            let mut mirror_errors = Vec::new();
            for mirror in &endpoints.mirrors {
                let credentials = mirror.credentials(creds);
                let fetched = manifest::fetch(
                    &self.transport,
                    mirror,
                    &name,
                    repository,
                    reference,
                    credentials,
                )
                .await;
                match fetched {
                    Ok(manifest) => return Ok(manifest),
                    Err(e) => {
                        warn!(mirror = %mirror.host, error = %e, "mirror failed, trying the next");
                        mirror_errors.push((mirror.host.clone(), e));
                    }
                }
            }
            let upstream = &endpoints.upstream;
            let credentials = upstream.credentials(creds);
            manifest::fetch(
                &self.transport,
                upstream,
                &name,
                repository,
                reference,
                credentials,
            )
            .await
            .map_err(|e| e.after_mirrors(&mirror_errors))
        })
    }

    fn fetch_blob<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a Digest,
        size: u64,
        creds: Option<&'a Credentials>,
    ) -> BoxFuture<'a, Result<BlobStream, RegistryError>> {
        Box::pin(async move {
            let endpoints = self.endpoints(image.registry());
            let source = |endpoint: &Arc<Endpoint>| BlobSource {
                transport: self.transport.clone(),
                endpoint: endpoint.clone(),
                name: image.name(),
                repository: image.repository().to_string(),
                credentials: endpoint.credentials(creds).cloned(),
                digest: digest.clone(),
                size,
            };
            let mut mirror_errors = Vec::new();
            for mirror in &endpoints.mirrors {
                match source(mirror).open().await {
                    Ok(stream) => return Ok(stream),
                    Err(e) => {
                        warn!(mirror = %mirror.host, error = %e, "mirror failed, trying the next");
                        mirror_errors.push((mirror.host.clone(), e));
                    }
                }
            }
            let opened = source(&endpoints.upstream).open().await;
            opened.map_err(|e| e.after_mirrors(&mirror_errors))
        })
    }
}
