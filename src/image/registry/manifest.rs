//! Fetching one manifest: the media types berth accepts, the 4 MiB cap, and the digest checks
//! (a digest reference must match the bytes; a tag's `Docker-Content-Digest` must too).

use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue};
use reqwest::StatusCode;

use super::endpoint::Endpoint;
use super::error::{Object, RegistryError, Subject};
use super::transport::Transport;
use super::{Credentials, FetchedManifest};
use crate::image::digest::Digest;

/// Manifests larger than this are refused (containerd uses the same cap).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The manifest media types berth pulls, in the order it asks for them.
pub const ACCEPTED_MEDIA_TYPES: [&str; 4] = [
    OCI_INDEX,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];

/// [`ACCEPTED_MEDIA_TYPES`] as one `Accept` header value.
const ACCEPT_HEADER: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

const SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/// The digest a manifest reference pins, or None for a tag. Tags cannot contain ':', so any
/// reference with one must be a valid digest.
pub(super) fn pinned_digest(name: &str, reference: &str) -> Result<Option<Digest>, RegistryError> {
    if !reference.contains(':') {
        return Ok(None);
    }
    reference
        .parse()
        .map(Some)
        .map_err(|source| RegistryError::BadReference {
            name: name.to_string(),
            reference: reference.to_string(),
            source,
        })
}

/// Fetches `reference` (a tag or a digest) of `repository` from one endpoint.
pub(super) async fn fetch(
    transport: &Transport,
    endpoint: &Endpoint,
    name: &str,
    repository: &str,
    reference: &str,
    credentials: Option<&Credentials>,
) -> Result<FetchedManifest, RegistryError> {
    let pinned = pinned_digest(name, reference)?;
    let subject = Subject {
        name: name.to_string(),
        object: Object::Manifest(reference.to_string()),
    };
    let host = endpoint.host.as_str();
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_HEADER));
    let path = format!("{repository}/manifests/{reference}");
    let mut attempt = 0;
    let (response_headers, bytes) = loop {
        attempt += 1;
        let response = transport
            .get(endpoint, repository, credentials, &subject, &path, &headers)
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::ManifestUnknown {
                    name: name.to_string(),
                    reference: reference.to_string(),
                });
            }
            status => return Err(subject.status(host, status.as_u16())),
        }
        let response_headers = response.headers().clone();
        match transport.read_capped(response, MAX_MANIFEST_BYTES).await {
            Ok(Some(bytes)) => break (response_headers, bytes),
            Ok(None) => {
                return Err(RegistryError::ManifestTooLarge {
                    name: name.to_string(),
                    reference: reference.to_string(),
                    limit: MAX_MANIFEST_BYTES,
                });
            }
            Err(cause) if attempt >= transport.max_attempts() => {
                return Err(subject.unavailable(host, attempt, cause));
            }
            Err(cause) => {
                tracing::debug!(%host, %reference, error = %cause, "manifest body broken, retrying");
                tokio::time::sleep(super::transport::backoff(attempt)).await;
            }
        }
    };
    let media_type = media_type(name, reference, &response_headers, &bytes)?;
    let digest = Digest::of(&bytes);
    let expected = match pinned {
        Some(pinned) => Some(pinned),
        None => advertised_digest(&subject, host, &response_headers)?,
    };
    if let Some(expected) = expected
        && expected != digest
    {
        return Err(RegistryError::DigestMismatch {
            name: name.to_string(),
            object: Object::Manifest(reference.to_string()),
            expected,
            actual: digest,
        });
    }
    Ok(FetchedManifest {
        media_type,
        digest,
        bytes: bytes.into(),
    })
}

/// The `Docker-Content-Digest` header, when the registry sent one.
fn advertised_digest(
    subject: &Subject,
    host: &str,
    headers: &HeaderMap,
) -> Result<Option<Digest>, RegistryError> {
    let Some(value) = headers.get("docker-content-digest") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    text.parse()
        .map(Some)
        .map_err(|e| subject.bad_response(host, format!("Docker-Content-Digest {text:?}: {e}")))
}

/// The manifest's media type: the `Content-Type` when it is a manifest type, else the
/// `mediaType` field of the JSON (some registries answer `application/json`). Schema 1 and
/// anything not in [`ACCEPTED_MEDIA_TYPES`] is refused.
fn media_type(
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<String, RegistryError> {
    let declared = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let generic = matches!(
        declared.as_str(),
        "" | "application/json" | "text/plain" | "application/octet-stream"
    );
    let media_type = if generic {
        embedded_media_type(bytes).unwrap_or(declared)
    } else {
        declared
    };
    let (name, reference) = (name.to_string(), reference.to_string());
    if SCHEMA1.contains(&media_type.as_str()) {
        return Err(RegistryError::Schema1 {
            name,
            reference,
            media_type,
        });
    }
    if !ACCEPTED_MEDIA_TYPES.contains(&media_type.as_str()) {
        return Err(RegistryError::MediaType {
            name,
            reference,
            media_type,
        });
    }
    Ok(media_type)
}

/// `mediaType` from the manifest JSON; a `schemaVersion: 1` document counts as schema 1.
fn embedded_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        schema_version: Option<u64>,
        media_type: Option<String>,
    }
    let head: Head = serde_json::from_slice(bytes).ok()?;
    match head {
        Head {
            schema_version: Some(1),
            ..
        } => Some(SCHEMA1[0].to_string()),
        Head { media_type, .. } => media_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, content_type.parse().unwrap());
        h
    }

    #[test]
    fn media_type_from_header_or_body() {
        let oci = format!("{OCI_MANIFEST}; charset=utf-8");
        assert_eq!(
            media_type("r.io/app", "v1", &headers(&oci), b"{}").unwrap(),
            OCI_MANIFEST
        );
        let body = format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}"}}"#);
        assert_eq!(
            media_type(
                "r.io/app",
                "v1",
                &headers("application/json"),
                body.as_bytes()
            )
            .unwrap(),
            DOCKER_MANIFEST_LIST
        );
        let schema1 = media_type(
            "r.io/app",
            "v1",
            &headers("application/json"),
            br#"{"schemaVersion":1,"name":"app"}"#,
        );
        assert!(matches!(schema1, Err(RegistryError::Schema1 { .. })));
        let unknown = media_type("r.io/app", "v1", &headers("text/html"), b"<html>").unwrap_err();
        assert!(unknown.to_string().contains("text/html"), "{unknown}");
    }

    #[test]
    fn accept_header_lists_the_accepted_types() {
        assert_eq!(ACCEPT_HEADER, ACCEPTED_MEDIA_TYPES.join(", "));
    }

    #[test]
    fn tags_and_digests() {
        assert_eq!(pinned_digest("n", "latest").unwrap(), None);
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(pinned_digest("n", &d).unwrap(), Some(d.parse().unwrap()));
        let err = pinned_digest("n", "sha256:short").unwrap_err();
        assert_eq!(
            crate::error::Classify::kind(&err),
            crate::error::Kind::InvalidArgument
        );
    }
}
