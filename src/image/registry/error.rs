//! Why a registry request failed, named by image and object, and which [`Kind`] each failure is.

use std::fmt;
use std::time::Duration;

use crate::error::{Classify, Kind};
use crate::image::digest::{Digest, DigestError};

/// What a request was after: messages say `manifest <reference>` or `blob <digest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Manifest(String),
    Blob(Digest),
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Manifest(reference) => write!(f, "manifest {reference}"),
            Object::Blob(digest) => write!(f, "blob {digest}"),
        }
    }
}

/// The last transient failure seen before a request gave up.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// Shown with its whole chain of causes, where the useful part (refused connection,
    /// certificate error) usually is.
    #[error("{}", chain(.0))]
    Http(reqwest::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("no byte received for {0:?}")]
    Stalled(Duration),
    #[error("{bytes} bytes received in {window:?}, slower than image.min_download_rate")]
    TooSlow { bytes: u64, window: Duration },
    #[error("connecting (TCP connect and TLS handshake) took longer than {0:?}")]
    ConnectTimeout(Duration),
    #[error("request sent, no answer within {0:?}")]
    NoAnswer(Duration),
    #[error("body ended after {delivered} of {size} bytes")]
    Truncated { delivered: u64, size: u64 },
    #[error("range request from byte {offset} answered with Content-Range {content_range:?}")]
    BadRange { offset: u64, content_range: String },
}

/// `error: cause: cause ...`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        // Some layers repeat their cause's text in their own; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

/// A failed registry request. Every message names the image (`registry/repository`) and the
/// manifest reference or blob digest it was about.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registries.{key}: {reason}")]
    Config { key: String, reason: String },
    #[error("registry {host}: building the HTTP client: {source}")]
    Client {
        host: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{name}: {reference:?} is not a valid manifest digest: {source}")]
    BadReference {
        name: String,
        reference: String,
        #[source]
        source: DigestError,
    },
    #[error("{name}: manifest {reference}: not found")]
    ManifestUnknown { name: String, reference: String },
    #[error("{name}: blob {digest}: not found")]
    BlobUnknown { name: String, digest: Digest },
    #[error("{name}: {object}: registry {host} refused access: {reason}")]
    Unauthorized {
        name: String,
        object: Object,
        host: String,
        reason: String,
    },
    #[error("{name}: {object}: registry {host} unavailable after {attempts} attempt(s): {cause}")]
    Unavailable {
        name: String,
        object: Object,
        host: String,
        attempts: u32,
        #[source]
        cause: Cause,
    },
    #[error("{name}: {object}: registry {host} answered HTTP {status}")]
    Status {
        name: String,
        object: Object,
        host: String,
        status: u16,
    },
    #[error("{name}: {object}: bad answer from {host}: {reason}")]
    BadResponse {
        name: String,
        object: Object,
        host: String,
        reason: String,
    },
    #[error(
        "{name}: manifest {reference}: schema 1 manifests ({media_type}) are not supported; \
         push the image again with a current client"
    )]
    Schema1 {
        name: String,
        reference: String,
        media_type: String,
    },
    #[error("{name}: manifest {reference}: unsupported media type {media_type:?}")]
    MediaType {
        name: String,
        reference: String,
        media_type: String,
    },
    #[error("{name}: manifest {reference}: larger than the {limit} byte limit")]
    ManifestTooLarge {
        name: String,
        reference: String,
        limit: usize,
    },
    #[error("{name}: {object}: digest mismatch, expected {expected}, got {actual}")]
    DigestMismatch {
        name: String,
        object: Object,
        expected: Digest,
        actual: Digest,
    },
    #[error("{name}: blob {digest}: registry sent more than the {size} bytes the descriptor says")]
    BlobTooLarge {
        name: String,
        digest: Digest,
        size: u64,
    },
    /// The registry itself failed after every mirror had failed too: its error decides the kind,
    /// the mirrors' errors say why they were not used.
    #[error("{source} (after its mirrors failed: {mirrors})")]
    AfterMirrors {
        #[source]
        source: Box<RegistryError>,
        mirrors: String,
    },
}

impl RegistryError {
    /// This error (the registry's own), with what went wrong at each mirror tried before it.
    pub(crate) fn after_mirrors(self, mirror_errors: &[(String, RegistryError)]) -> RegistryError {
        if mirror_errors.is_empty() {
            return self;
        }
        let mirrors = mirror_errors
            .iter()
            .map(|(host, e)| format!("mirror {host}: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        RegistryError::AfterMirrors {
            source: Box::new(self),
            mirrors,
        }
    }
}

impl Classify for RegistryError {
    /// Not found (404) is NotFound; refused credentials PermissionDenied; anything that may work
    /// on a retry (exhausted retries, stalls, connection failures, 5xx) Unavailable; a manifest
    /// berth does not accept InvalidArgument; a manifest over the size cap ResourceExhausted;
    /// content that does not match what was asked for, or an answer that makes no sense, Internal.
    fn kind(&self) -> Kind {
        match self {
            RegistryError::Config { .. } | RegistryError::BadReference { .. } => {
                Kind::InvalidArgument
            }
            RegistryError::Client { .. } => Kind::Internal,
            RegistryError::ManifestUnknown { .. } | RegistryError::BlobUnknown { .. } => {
                Kind::NotFound
            }
            RegistryError::Unauthorized { .. } => Kind::PermissionDenied,
            RegistryError::Unavailable { .. } => Kind::Unavailable,
            RegistryError::Status { status, .. } => match status {
                401 | 403 => Kind::PermissionDenied,
                404 => Kind::NotFound,
                s if *s >= 500 => Kind::Unavailable,
                _ => Kind::Internal,
            },
            RegistryError::Schema1 { .. } | RegistryError::MediaType { .. } => {
                Kind::InvalidArgument
            }
            RegistryError::ManifestTooLarge { .. } => Kind::ResourceExhausted,
            RegistryError::AfterMirrors { source, .. } => source.kind(),
            RegistryError::BadResponse { .. }
            | RegistryError::DigestMismatch { .. }
            | RegistryError::BlobTooLarge { .. } => Kind::Internal,
        }
    }
}

/// What every error needs to name: the image and the object.
#[derive(Debug, Clone)]
pub(super) struct Subject {
    pub name: String,
    pub object: Object,
}

impl Subject {
    pub fn unauthorized(&self, host: &str, reason: impl Into<String>) -> RegistryError {
        RegistryError::Unauthorized {
            name: self.name.clone(),
            object: self.object.clone(),
            host: host.to_string(),
            reason: reason.into(),
        }
    }

    pub fn unavailable(&self, host: &str, attempts: u32, cause: Cause) -> RegistryError {
        RegistryError::Unavailable {
            name: self.name.clone(),
            object: self.object.clone(),
            host: host.to_string(),
            attempts,
            cause,
        }
    }

    pub fn status(&self, host: &str, status: u16) -> RegistryError {
        RegistryError::Status {
            name: self.name.clone(),
            object: self.object.clone(),
            host: host.to_string(),
            status,
        }
    }

    pub fn bad_response(&self, host: &str, reason: impl Into<String>) -> RegistryError {
        RegistryError::BadResponse {
            name: self.name.clone(),
            object: self.object.clone(),
            host: host.to_string(),
            reason: reason.into(),
        }
    }
}
