//! The upload half of the distribution API: does the registry have a blob (HEAD), mount it from
//! another repository of the same registry, upload it (POST, then one PUT streaming the file),
//! and put a manifest. Pushes go to the registry itself, never to a mirror.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use futures::future::BoxFuture;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};

use super::endpoint::Endpoint;
use super::error::{Object, RegistryError, Subject};
use super::transport::Access;
use super::{Credentials, RegistryClient};
use crate::image::digest::Digest;
use crate::image::reference::ImageRef;

/// How a blob got to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPushed {
    /// The registry had it already: nothing was sent.
    Exists,
    /// Mounted from another repository of the same registry: nothing was sent.
    Mounted,
    /// Its bytes were uploaded.
    Uploaded,
}

/// One blob to push: its digest and size, and the file holding its bytes.
#[derive(Debug, Clone)]
pub struct BlobUpload {
    pub digest: Digest,
    pub size: u64,
    pub path: PathBuf,
    /// A repository of the same registry that has the blob (where the image was pulled from).
    pub mount_from: Option<String>,
}

/// The seam the push code sees, so its tests can fake the registry.
pub trait RegistryPush: Send + Sync {
    /// Makes sure `image`'s repository has the blob: HEAD, else mount, else upload. `sent`
    /// counts the bytes uploaded so far.
    fn push_blob<'a>(
        &'a self,
        image: &'a ImageRef,
        blob: &'a BlobUpload,
        creds: Option<&'a Credentials>,
        sent: Arc<AtomicU64>,
    ) -> BoxFuture<'a, Result<BlobPushed, RegistryError>>;

    /// Puts a manifest (or index) under `reference` (a tag or its digest).
    fn put_manifest<'a>(
        &'a self,
        image: &'a ImageRef,
        reference: &'a str,
        media_type: &'a str,
        bytes: bytes::Bytes,
        creds: Option<&'a Credentials>,
    ) -> BoxFuture<'a, Result<(), RegistryError>>;
}

impl RegistryPush for RegistryClient {
    fn push_blob<'a>(
        &'a self,
        image: &'a ImageRef,
        blob: &'a BlobUpload,
        creds: Option<&'a Credentials>,
        sent: Arc<AtomicU64>,
    ) -> BoxFuture<'a, Result<BlobPushed, RegistryError>> {
        Box::pin(async move {
            let endpoints = self.endpoints(image.registry());
            let endpoint = &endpoints.upstream;
            let credentials = endpoint.credentials(creds);
            let pusher = Pusher {
                client: self,
                endpoint,
                image,
                credentials,
                subject: Subject {
                    name: image.name(),
                    object: Object::Blob(blob.digest.clone()),
                },
            };
            if pusher.exists(&blob.digest).await? {
                return Ok(BlobPushed::Exists);
            }
            let mount_from = blob
                .mount_from
                .as_deref()
                .filter(|from| *from != image.repository());
            let location = match pusher.start(&blob.digest, mount_from).await? {
                Started::Mounted => return Ok(BlobPushed::Mounted),
                Started::Upload(location) => location,
            };
            pusher.upload(&location, blob, sent).await?;
            Ok(BlobPushed::Uploaded)
        })
    }

    fn put_manifest<'a>(
        &'a self,
        image: &'a ImageRef,
        reference: &'a str,
        media_type: &'a str,
        bytes: bytes::Bytes,
        creds: Option<&'a Credentials>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let endpoints = self.endpoints(image.registry());
            let endpoint = &endpoints.upstream;
            let subject = Subject {
                name: image.name(),
                object: Object::Manifest(reference.to_string()),
            };
            let url = endpoint.url(&format!("{}/manifests/{reference}", image.repository()));
            let build = || {
                endpoint
                    .client
                    .put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            };
            let access = Access::push(image.repository());
            let response = self
                .transport
                .request(
                    endpoint,
                    &access,
                    endpoint.credentials(creds),
                    &subject,
                    build,
                )
                .await?;
            match response.status() {
                StatusCode::CREATED | StatusCode::OK | StatusCode::ACCEPTED => Ok(()),
                status => Err(refused(&subject, &endpoint.host, status, response).await),
            }
        })
    }
}

/// What starting an upload gave.
enum Started {
    Mounted,
    Upload(Url),
}

/// One blob push to one endpoint.
struct Pusher<'a> {
    client: &'a RegistryClient,
    endpoint: &'a Endpoint,
    image: &'a ImageRef,
    credentials: Option<&'a Credentials>,
    subject: Subject,
}

impl Pusher<'_> {
    fn access(&self, mount_from: Option<&str>) -> Access {
        let mut access = Access::push(self.image.repository());
        access.also_pull.extend(mount_from.map(str::to_string));
        access
    }

    async fn send(
        &self,
        access: &Access,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let transport = &self.client.transport;
        transport
            .request(
                self.endpoint,
                access,
                self.credentials,
                &self.subject,
                build,
            )
            .await
    }

    /// HEAD on the blob: 200 has it, 404 does not.
    async fn exists(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self
            .endpoint
            .url(&format!("{}/blobs/{digest}", self.image.repository()));
        let response = self
            .send(&self.access(None), || self.endpoint.client.head(&url))
            .await?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            status => Err(refused(&self.subject, &self.endpoint.host, status, response).await),
        }
    }

    /// POSTs a new upload, asking for a mount from `mount_from` when given: 201 is a mount done,
    /// 202 an upload to send to its `Location`.
    async fn start(
        &self,
        digest: &Digest,
        mount_from: Option<&str>,
    ) -> Result<Started, RegistryError> {
        let mut url = Url::parse(
            &self
                .endpoint
                .url(&format!("{}/blobs/uploads/", self.image.repository())),
        )
        .map_err(|e| self.bad(e.to_string()))?;
        if let Some(from) = mount_from {
            url.query_pairs_mut()
                .append_pair("mount", digest.as_str())
                .append_pair("from", from);
        }
        let build = || {
            self.endpoint
                .client
                .post(url.clone())
                .header(CONTENT_LENGTH, "0")
        };
        let response = self.send(&self.access(mount_from), build).await?;
        match response.status() {
            StatusCode::CREATED if mount_from.is_some() => Ok(Started::Mounted),
            StatusCode::ACCEPTED => Ok(Started::Upload(self.location(&url, &response)?)),
            status => Err(refused(&self.subject, &self.endpoint.host, status, response).await),
        }
    }

    /// The upload URL from a `Location` header, relative to `base` ([`upload_location`]).
    fn location(&self, base: &Url, response: &reqwest::Response) -> Result<Url, RegistryError> {
        let text = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.bad("upload started without a Location"))?;
        upload_location(base, text).map_err(|reason| self.bad(reason))
    }

    /// PUTs the whole blob to the upload `location` in one request, streaming the file.
    async fn upload(
        &self,
        location: &Url,
        blob: &BlobUpload,
        sent: Arc<AtomicU64>,
    ) -> Result<(), RegistryError> {
        let mut url = location.clone();
        url.query_pairs_mut()
            .append_pair("digest", blob.digest.as_str());
        let build = || {
            sent.store(0, Ordering::Relaxed);
            let body = file_body(&blob.path, sent.clone());
            self.endpoint
                .client
                .put(url.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, blob.size)
                .body(body)
        };
        let response = self.send(&self.access(None), build).await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            status => Err(refused(&self.subject, &self.endpoint.host, status, response).await),
        }
    }

    fn bad(&self, reason: impl Into<String>) -> RegistryError {
        self.subject.bad_response(&self.endpoint.host, reason)
    }
}

/// A request body streaming `path`, counting the bytes read into `sent`. A file that cannot be
/// opened makes a body that fails, so the request fails with the reason.
fn file_body(path: &Path, sent: Arc<AtomicU64>) -> reqwest::Body {
    let path = path.to_path_buf();
    let stream = async_stream::stream! {
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) => {
                yield Err(std::io::Error::new(e.kind(), format!("{}: {e}", path.display())));
                return;
            }
        };
        let mut chunks = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
        while let Some(chunk) = chunks.next().await {
            if let Ok(chunk) = &chunk {
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            yield chunk;
        }
    };
    reqwest::Body::wrap_stream(stream)
}

/// The error for an unexpected answer, with the registry's own error message when it sent one.
async fn refused(
    subject: &Subject,
    host: &str,
    status: StatusCode,
    response: reqwest::Response,
) -> RegistryError {
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return subject.unauthorized(host, format!("push refused ({status})"));
    }
    let body = response.text().await.unwrap_or_default();
    let message = registry_message(&body);
    match message {
        Some(message) => subject.bad_response(host, format!("HTTP {status}: {message}")),
        None => subject.status(host, status.as_u16()),
    }
}

/// `code: message` of the first entry of a distribution error body.
fn registry_message(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let first = value.get("errors")?.get(0)?;
    let code = first.get("code").and_then(|c| c.as_str()).unwrap_or("");
    let message = first.get("message").and_then(|m| m.as_str()).unwrap_or("");
    Some(format!("{code}: {message}").chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_bodies_are_summarised() {
        let body = r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"x"}]}"#;
        assert_eq!(
            registry_message(body).unwrap(),
            "MANIFEST_BLOB_UNKNOWN: blob unknown to registry"
        );
        assert_eq!(registry_message("<html>"), None);
    }
}

/// The upload URL a registry's `Location` header names, relative to `base`. It must stay on the
/// registry's host and port, and on its scheme: the upload carries the registry's
/// authorization, which must never go to another host or in plain text after TLS.
pub(crate) fn upload_location(base: &Url, text: &str) -> Result<Url, String> {
    let url = base
        .join(text)
        .map_err(|e| format!("Location {text:?}: {e}"))?;
    let same_host = url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default();
    if !same_host {
        return Err(format!(
            "upload Location {} is on another host; berth uploads only to the registry itself",
            url.origin().ascii_serialization()
        ));
    }
    if url.scheme() != base.scheme() {
        return Err(format!(
            "upload Location {} switches from {} to {}; berth never downgrades an upload",
            url.origin().ascii_serialization(),
            base.scheme(),
            url.scheme()
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod location_tests {
    use super::*;

    #[test]
    fn an_http_location_after_an_https_start_is_refused() {
        let base = Url::parse("https://reg.example:5000/v2/app/blobs/uploads/").unwrap();
        let err =
            upload_location(&base, "http://reg.example:5000/v2/app/blobs/uploads/u1").unwrap_err();
        assert!(err.contains("never downgrades"), "{err}");
        for elsewhere in ["https://evil.example:5000/u", "https://reg.example:5001/u"] {
            let err = upload_location(&base, elsewhere).unwrap_err();
            assert!(err.contains("another host"), "{err}");
        }
        let ok = upload_location(&base, "/v2/app/blobs/uploads/u1?state=x").unwrap();
        assert_eq!(ok.scheme(), "https");
        assert_eq!(ok.port(), Some(5000));
    }
}
