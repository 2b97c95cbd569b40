//! An archive seen as a registry holding one image, so an import runs the pull pipeline (and
//! all of its digest checks) unchanged.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::{Entries, Entry};
use crate::image::digest::Digest;
use crate::image::reference::ImageRef;
use crate::image::registry::{
    ACCEPTED_MEDIA_TYPES, BlobStream, Credentials, FetchedManifest, MAX_MANIFEST_BYTES, Object,
    Registry, RegistryError,
};

/// Bytes read from the archive per blob stream item.
const CHUNK: usize = 64 * 1024;
/// How error messages name the archive where they would name a registry host.
const HOST: &str = "archive";

/// One image of an archive: its top manifest (or index) and every blob by digest.
pub struct ArchiveRegistry {
    pub entries: Arc<Entries>,
    /// The manifest or index the image's name resolves to.
    pub top: Digest,
    /// Documents made up for a docker archive (which has no manifest), by digest.
    pub documents: HashMap<Digest, FetchedManifest>,
    /// Blobs stored somewhere else than `blobs/sha256/<hex>` (docker archives), by digest.
    pub aliases: HashMap<Digest, Entry>,
}

impl ArchiveRegistry {
    /// Where the blob `digest` is; the error names the file the archive lacks.
    fn entry(&self, digest: &Digest) -> Result<Entry, String> {
        match self.aliases.get(digest) {
            Some(entry) => Ok(*entry),
            None => self.entries.blob(digest).map_err(|e| e.to_string()),
        }
    }

    fn manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let name = image.name();
        let digest: Digest = if reference.starts_with("sha256:") {
            reference
                .parse()
                .map_err(|source| RegistryError::BadReference {
                    name: name.clone(),
                    reference: reference.to_string(),
                    source,
                })?
        } else {
            self.top.clone()
        };
        if let Some(document) = self.documents.get(&digest) {
            return Ok(document.clone());
        }
        let bad = |reason: String| RegistryError::BadResponse {
            name: name.clone(),
            object: Object::Manifest(digest.to_string()),
            host: HOST.into(),
            reason,
        };
        let entry = self.entry(&digest).map_err(bad)?;
        if entry.size > MAX_MANIFEST_BYTES as u64 {
            return Err(RegistryError::ManifestTooLarge {
                name,
                reference: digest.to_string(),
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let mut bytes = Vec::new();
        self.entries
            .open(entry)
            .map_err(|e| bad(e.to_string()))?
            .read_to_end(&mut bytes)
            .map_err(|e| bad(e.to_string()))?;
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                name,
                object: Object::Manifest(digest.to_string()),
                expected: digest,
                actual,
            });
        }
        let media_type = media_type(&bytes).map_err(bad)?;
        Ok(FetchedManifest {
            media_type,
            digest,
            bytes: Bytes::from(bytes),
        })
    }
}

/// A manifest's own `mediaType` field, which must be one berth accepts.
fn media_type(bytes: &[u8]) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    let typed: Typed = serde_json::from_slice(bytes).map_err(|e| format!("malformed JSON: {e}"))?;
    let media_type = match typed.media_type.as_str() {
        // The field is optional in OCI documents: an index is what has `manifests`.
        "" if typed.manifests.is_some() => crate::image::registry::OCI_INDEX,
        "" => crate::image::registry::OCI_MANIFEST,
        other => other,
    };
    if !ACCEPTED_MEDIA_TYPES.contains(&media_type) {
        return Err(format!("unsupported media type {media_type:?}"));
    }
    Ok(media_type.to_string())
}

impl Registry for ArchiveRegistry {
    fn fetch_manifest<'a>(
        &'a self,
        image: &'a ImageRef,
        reference: &'a str,
        _creds: Option<&'a Credentials>,
    ) -> BoxFuture<'a, Result<FetchedManifest, RegistryError>> {
        Box::pin(async move { self.manifest(image, reference) })
    }

    /// Streams at most `size + 1` bytes of the entry, so an entry larger than its descriptor
    /// fails the size check without being read to its end.
    fn fetch_blob<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a Digest,
        size: u64,
        _creds: Option<&'a Credentials>,
    ) -> BoxFuture<'a, Result<BlobStream, RegistryError>> {
        Box::pin(async move {
            let name = image.name();
            let entry = self.entry(digest);
            let digest = digest.clone();
            let bad = move |reason: String| RegistryError::BadResponse {
                name: name.clone(),
                object: Object::Blob(digest.clone()),
                host: HOST.into(),
                reason,
            };
            let entry = entry.map_err(&bad)?;
            let entry = Entry {
                offset: entry.offset,
                size: entry.size.min(size.saturating_add(1)),
            };
            let mut reader = self.entries.open(entry).map_err(|e| bad(e.to_string()))?;
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            tokio::task::spawn_blocking(move || {
                loop {
                    let mut chunk = vec![0u8; CHUNK];
                    let item = match reader.read(&mut chunk) {
                        Ok(0) => return,
                        Ok(n) => {
                            chunk.truncate(n);
                            Ok(Bytes::from(chunk))
                        }
                        Err(e) => Err(bad(e.to_string())),
                    };
                    let failed = item.is_err();
                    if tx.blocking_send(item).is_err() || failed {
                        return;
                    }
                }
            });
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
            Ok(Box::pin(stream) as BlobStream)
        })
    }
}
