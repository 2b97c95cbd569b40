//! Pushing one stored image to a registry: every blob the registry lacks (asked with HEAD first,
//! mounted from the repository the image came from when that is on the same registry, uploaded
//! otherwise), then the manifest, then the index when every platform of it is stored here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};

use super::content::ContentError;
use super::digest::Digest;
use super::manifest::{Index, Manifest, ManifestError, OCI_MANIFEST};
use super::reference::ImageRef;
use super::registry::{BlobPushed, BlobUpload, Credentials, RegistryError, RegistryPush};
use super::store::{ImageRecord, ImageStore};
use crate::error::{Classify, Kind};

/// Blobs uploaded at once.
const PARALLEL_UPLOADS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{image}: a push needs a tag, not a digest")]
    DigestDestination { image: String },
    #[error(
        "blob {digest} is not in the content store (image.discard_compressed_layers drops \
         compressed layers after unpacking): pull the image again with it off to push it"
    )]
    BlobMissing { digest: Digest },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Content(#[from] ContentError),
}

impl Classify for PushError {
    fn kind(&self) -> Kind {
        match self {
            PushError::DigestDestination { .. } => Kind::InvalidArgument,
            PushError::BlobMissing { .. } => Kind::FailedPrecondition,
            PushError::Registry(e) => e.kind(),
            PushError::Manifest(_) => Kind::Internal,
            PushError::Content(e) => e.kind(),
        }
    }
}

/// What a blob of a running push is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    Waiting,
    Pushing,
    /// The registry had it: nothing sent.
    Exists,
    /// Mounted from another repository: nothing sent.
    Mounted,
    Pushed,
}

impl BlobState {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobState::Waiting => "waiting",
            BlobState::Pushing => "pushing",
            BlobState::Exists => "exists",
            BlobState::Mounted => "mounted",
            BlobState::Pushed => "pushed",
        }
    }
}

/// One blob's progress; `sent` counts the bytes of the current upload.
#[derive(Debug)]
pub struct BlobProgress {
    pub digest: Digest,
    pub size: u64,
    pub sent: Arc<AtomicU64>,
    state: std::sync::Mutex<BlobState>,
}

impl BlobProgress {
    pub fn state(&self) -> BlobState {
        *self.state.lock().expect("state lock")
    }

    fn set(&self, state: BlobState) {
        *self.state.lock().expect("state lock") = state;
    }
}

/// The outcome of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The digest the tag now points at (the index's when one was pushed).
    pub digest: Digest,
    /// Blobs whose bytes went over the wire.
    pub uploaded: usize,
    /// Why the index was not pushed, when the image has one.
    pub note: Option<String>,
}

/// Everything a push needs.
pub struct Pusher {
    pub registry: Arc<dyn RegistryPush>,
    pub images: Arc<ImageStore>,
}

/// A manifest to push, its blobs, and its bytes.
struct ManifestJob {
    digest: Digest,
    media_type: String,
    bytes: Vec<u8>,
    blobs: Vec<(Digest, u64)>,
}

impl Pusher {
    /// The blobs `record` needs at the registry (config first, then layers), for progress.
    pub fn plan(&self, record: &ImageRecord) -> Result<Vec<Arc<BlobProgress>>, PushError> {
        let job = self.manifest_job(&record.manifest)?;
        Ok(job
            .blobs
            .iter()
            .map(|(digest, size)| {
                Arc::new(BlobProgress {
                    digest: digest.clone(),
                    size: *size,
                    sent: Arc::default(),
                    state: std::sync::Mutex::new(BlobState::Waiting),
                })
            })
            .collect())
    }

    /// Pushes `record` as `dest`. `progress` is what [`Pusher::plan`] returned.
    pub async fn push(
        &self,
        record: &ImageRecord,
        dest: &ImageRef,
        creds: Option<&Credentials>,
        progress: &[Arc<BlobProgress>],
    ) -> Result<Pushed, PushError> {
        if dest.digest().is_some() {
            return Err(PushError::DigestDestination {
                image: dest.to_string(),
            });
        }
        let mount_from = mount_source(record, dest);
        let main = self.manifest_job(&record.manifest)?;
        // Boxed, so the future of the whole push is `Send` for every lifetime (spawnable).
        let jobs: Vec<BoxFuture<'_, Result<BlobPushed, PushError>>> = progress
            .iter()
            .map(|blob| Box::pin(self.push_blob(dest, blob, mount_from.clone(), creds)) as _)
            .collect();
        let uploads = futures::stream::iter(jobs)
            .buffer_unordered(PARALLEL_UPLOADS)
            .try_collect::<Vec<BlobPushed>>()
            .await?;
        let mut uploaded = uploads
            .iter()
            .filter(|p| **p == BlobPushed::Uploaded)
            .count();
        let tag = dest.manifest_reference();
        let (index, note) = match &record.index {
            Some(index) => self.index_jobs(index)?,
            None => (None, None),
        };
        let Some((index_doc, children)) = index else {
            self.put(dest, &tag, &main, creds).await?;
            return Ok(Pushed {
                digest: main.digest,
                uploaded,
                note,
            });
        };
        // Every platform's blobs, then its manifest by digest, then the index under the tag.
        for child in &children {
            for (digest, size) in &child.blobs {
                let blob = self.upload_of(digest, *size, mount_from.clone())?;
                let how = self
                    .registry
                    .push_blob(dest, &blob, creds, Arc::default())
                    .await?;
                uploaded += usize::from(how == BlobPushed::Uploaded);
            }
            self.put(dest, child.digest.as_str(), child, creds).await?;
        }
        self.put(dest, &tag, &index_doc, creds).await?;
        Ok(Pushed {
            digest: index_doc.digest,
            uploaded,
            note: None,
        })
    }

    async fn push_blob(
        &self,
        dest: &ImageRef,
        blob: &BlobProgress,
        mount_from: Option<String>,
        creds: Option<&Credentials>,
    ) -> Result<BlobPushed, PushError> {
        let upload = self.upload_of(&blob.digest, blob.size, mount_from)?;
        blob.set(BlobState::Pushing);
        let how = self
            .registry
            .push_blob(dest, &upload, creds, blob.sent.clone())
            .await?;
        blob.set(match how {
            BlobPushed::Exists => BlobState::Exists,
            BlobPushed::Mounted => BlobState::Mounted,
            BlobPushed::Uploaded => {
                blob.sent.store(blob.size, Ordering::Relaxed);
                BlobState::Pushed
            }
        });
        Ok(how)
    }

    fn upload_of(
        &self,
        digest: &Digest,
        size: u64,
        mount_from: Option<String>,
    ) -> Result<BlobUpload, PushError> {
        let content = &self.images.content;
        if !content.contains(digest) {
            return Err(PushError::BlobMissing {
                digest: digest.clone(),
            });
        }
        Ok(BlobUpload {
            digest: digest.clone(),
            size,
            path: content.path(digest),
            mount_from,
        })
    }

    async fn put(
        &self,
        dest: &ImageRef,
        reference: &str,
        job: &ManifestJob,
        creds: Option<&Credentials>,
    ) -> Result<(), PushError> {
        let bytes = bytes::Bytes::from(job.bytes.clone());
        self.registry
            .put_manifest(dest, reference, &job.media_type, bytes, creds)
            .await?;
        Ok(())
    }

    /// A stored manifest with its media type and blobs (config, then layers).
    fn manifest_job(&self, digest: &Digest) -> Result<ManifestJob, PushError> {
        let bytes = self.images.content.read(digest)?;
        let manifest = Manifest::parse(digest, &bytes)?;
        let blobs = std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .map(|d| (d.digest.clone(), d.size))
            .collect();
        Ok(ManifestJob {
            digest: digest.clone(),
            media_type: media_type(&bytes),
            bytes,
            blobs,
        })
    }

    /// The index and each of its platform manifests, when all of them and their blobs are
    /// stored here; otherwise None and why.
    #[allow(clippy::type_complexity)]
    fn index_jobs(
        &self,
        digest: &Digest,
    ) -> Result<(Option<(ManifestJob, Vec<ManifestJob>)>, Option<String>), PushError> {
        let content = &self.images.content;
        let bytes = content.read(digest)?;
        let index = Index::parse(digest, &bytes)?;
        let mut children = Vec::new();
        for entry in &index.manifests {
            let complete = content.contains(&entry.digest)
                && self
                    .manifest_job(&entry.digest)
                    .is_ok_and(|job| job.blobs.iter().all(|(d, _)| content.contains(d)));
            if !complete {
                let note = format!(
                    "index {digest} not pushed: only this node's platform of it is stored; \
                     the tag points at the platform manifest"
                );
                return Ok((None, Some(note)));
            }
            children.push(self.manifest_job(&entry.digest)?);
        }
        let job = ManifestJob {
            digest: digest.clone(),
            media_type: media_type(&bytes),
            bytes,
            blobs: Vec::new(),
        };
        Ok((Some((job, children)), None))
    }
}

/// The `mediaType` a manifest document declares (OCI when it declares none).
fn media_type(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        media_type: Option<String>,
    }
    serde_json::from_slice::<Head>(bytes)
        .ok()
        .and_then(|h| h.media_type)
        .unwrap_or_else(|| OCI_MANIFEST.to_string())
}

/// A repository of `dest`'s registry that `record` came from (other than `dest`'s own), to
/// mount blobs from.
fn mount_source(record: &ImageRecord, dest: &ImageRef) -> Option<String> {
    record
        .repo_tags
        .iter()
        .chain(&record.repo_digests)
        .filter_map(|name| name.parse::<ImageRef>().ok())
        .find(|r| r.registry() == dest.registry() && r.repository() != dest.repository())
        .map(|r| r.repository().to_string())
}

#[cfg(test)]
#[path = "push_tests.rs"]
mod tests;
