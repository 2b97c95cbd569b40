//! Pulling one image: resolve the reference to a platform manifest, fetch the config, then
//! stream every missing layer through hash + decompress + untar into a fresh snapshot while it
//! downloads, layers in parallel, and commit each only once its digests check out. The image
//! record is written last, so a failed pull leaves no half-image visible.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use tracing::Instrument as _;

pub use super::progress::{LayerProgress, LayerState, Progress};

use super::content::ContentError;
use super::digest::Digest;
use super::layer_stream::{Streamed, Unpacking, stream_layer};
use super::manifest::{
    Compression, DOCKER_LIST, DOCKER_MANIFEST, Descriptor, ImageConfig, Index, Manifest,
    ManifestError, OCI_INDEX, OCI_MANIFEST, Platform,
};
use super::reference::ImageRef;
use super::registry::{BlobStream, Credentials, FetchedManifest, Registry, RegistryError};
use super::retain::{Claim, Retainer};
use super::store::{ImageRecord, ImageStore, ImageStoreError};
use super::unpack::{self, UnpackError};
use crate::error::{Classify, Kind};
use crate::snapshot::{SnapshotError, chain_ids};

/// Largest image config accepted, in bytes.
const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("manifest {digest}: unsupported media type {media_type:?}")]
    MediaType { digest: Digest, media_type: String },
    #[error("config {digest}: {size} bytes is larger than the {MAX_CONFIG_BYTES}-byte limit")]
    ConfigTooLarge { digest: Digest, size: u64 },
    #[error("layer {layer}: {source}")]
    Unpack { layer: Digest, source: UnpackError },
    #[error("layer {layer}: {what} mismatch, expected {expected}, got {actual}")]
    Mismatch {
        layer: Digest,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("layer {layer}: decompress: {source}")]
    Decompress { layer: Digest, source: io::Error },
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Images(#[from] ImageStoreError),
    #[error("layer {layer}: unpacker stopped: {message}")]
    Worker { layer: Digest, message: String },
    #[error("cancelled")]
    Cancelled,
}

impl Classify for PullError {
    fn kind(&self) -> Kind {
        match self {
            PullError::Registry(e) => e.kind(),
            PullError::Manifest(ManifestError::NoPlatform { .. }) => Kind::NotFound,
            PullError::Manifest(_) | PullError::MediaType { .. } => Kind::InvalidArgument,
            PullError::ConfigTooLarge { .. } => Kind::ResourceExhausted,
            PullError::Unpack { source, .. } => source.kind(),
            // Bytes that do not match their digest: the registry or the network is at fault.
            PullError::Mismatch { .. } | PullError::Decompress { .. } => Kind::Unavailable,
            PullError::Content(e) => e.kind(),
            PullError::Snapshot(e) => e.kind(),
            PullError::Images(e) => e.kind(),
            PullError::Worker { .. } => Kind::Internal,
            PullError::Cancelled => Kind::Unavailable,
        }
    }
}

/// Settings of the pull pipeline, from `ImageConfig`.
#[derive(Debug, Clone)]
pub struct PullSettings {
    pub platform: Platform,
    pub max_concurrent_downloads: usize,
    pub max_layer_bytes: u64,
    pub discard_compressed_layers: bool,
    /// How long the verified layers of a failed pull are kept for a retry.
    pub failed_pull_grace: std::time::Duration,
    /// Free space unpacking leaves on the data filesystem.
    pub disk_reserve: unpack::DiskReserve,
}

/// Everything one pull needs; cheap to clone into tasks.
#[derive(Clone)]
pub struct Puller {
    pub registry: Arc<dyn Registry>,
    pub images: Arc<ImageStore>,
    pub settings: Arc<PullSettings>,
    /// What garbage collection must keep for running and failed pulls.
    pub retainer: Arc<Retainer>,
}

/// The image's manifest after platform resolution, with the documents to store on success.
struct Resolved {
    manifest: Manifest,
    manifest_doc: FetchedManifest,
    index_doc: Option<FetchedManifest>,
}

impl Puller {
    /// Pulls `image` and returns its record. Only missing content is transferred.
    pub async fn pull(
        &self,
        image: &ImageRef,
        creds: Option<&Credentials>,
        progress: &Progress,
    ) -> Result<ImageRecord, PullError> {
        // Everything this pull stores or finds stored is claimed first, so no sweep deletes it
        // before the image record references it; a failure keeps only the completed layers.
        let claim = self.retainer.claim(self.settings.failed_pull_grace);
        // The image record's durable commit below also makes the snapshot records durable, with
        // their marks in the `unflushed` table; the caller then asks for a flush (`flush`).
        let fetched = self
            .fetch_with(image, creds, progress, &claim, false)
            .await?;
        // Docker reports the digest the tag resolved to: the index's for a multi-platform image.
        let repo_digest = fetched.index.as_ref().unwrap_or(&fetched.manifest).clone();
        let record = fetched.record(
            image.repo_tag().into_iter().collect(),
            vec![image.repo_digest(&repo_digest)],
        );
        let record = self.images.add(record)?;
        claim.succeeded();
        Ok(record)
    }

    /// Stores everything `image` needs (manifest, index, config, layer blobs and snapshots)
    /// without recording the image: the caller names it, then ends `claim` as succeeded.
    pub async fn fetch(
        &self,
        image: &ImageRef,
        creds: Option<&Credentials>,
        progress: &Progress,
        claim: &Claim,
    ) -> Result<Fetched, PullError> {
        self.fetch_with(image, creds, progress, claim, true).await
    }

    /// [`Puller::fetch`]. Blobs and snapshots are stored without flushing them, each marked in
    /// the `unflushed` table first (`flush`); if `persist_records`, one durable commit then makes
    /// their snapshot records and marks durable and a background flush is requested (else the
    /// caller's next durable commit, the image record, does that, and the caller requests the
    /// flush). Nothing waits for the data to reach the disk: a crash before the durable commit
    /// leaves only what nothing durable names, which startup deletes
    /// (`ImageService::sweep_leftovers`); a machine crash after it but before the flush leaves
    /// marks of an earlier boot, and startup deletes the marked content and the images using it
    /// (`flush::recover`).
    async fn fetch_with(
        &self,
        image: &ImageRef,
        creds: Option<&Credentials>,
        progress: &Progress,
        claim: &Claim,
        persist_records: bool,
    ) -> Result<Fetched, PullError> {
        let resolved = self
            .resolve(image, creds)
            .instrument(tracing::info_span!("pull.resolve", image = %image))
            .await?;
        let manifest = &resolved.manifest;
        let config_desc = &manifest.config;
        claim.add(
            [&resolved.manifest_doc.digest, &config_desc.digest]
                .into_iter()
                .chain(resolved.index_doc.as_ref().map(|i| &i.digest))
                .chain(manifest.layers.iter().map(|l| &l.digest)),
        );
        // The first layers' downloads start together with the config's: on a cold pull that
        // saves a round trip to the registry. A download the config then shows to be unneeded
        // (its layer is unpacked already) is dropped unread.
        let early = self.early_layers(&resolved);
        let (config_bytes, opened) = futures::join!(
            self.config(image, config_desc, creds)
                .instrument(tracing::info_span!("pull.config", digest = %config_desc.digest)),
            futures::future::join_all(early.iter().map(|&i| {
                let layer = &manifest.layers[i];
                self.registry
                    .fetch_blob(image, &layer.digest, layer.size, creds)
            }))
        );
        let config_bytes = config_bytes?;
        // One that failed to open is opened again in its turn, which reports the error.
        let mut opened: HashMap<usize, BlobStream> = early
            .into_iter()
            .zip(opened)
            .filter_map(|(i, download)| Some((i, download.ok()?)))
            .collect();
        let config = ImageConfig::parse(&config_desc.digest, &config_bytes)?;
        config.check_layers(manifest, &resolved.manifest_doc.digest)?;
        let chains = chain_ids(&config.rootfs.diff_ids);
        claim.add(&chains);

        let present: Vec<bool> = chains
            .iter()
            .map(|c| matches!(self.images.snapshots.get(c), Ok(Some(_))))
            .collect();
        progress.set_layers(
            manifest
                .layers
                .iter()
                .zip(&present)
                .map(|(l, &present)| LayerProgress {
                    digest: l.digest.clone(),
                    size: l.size,
                    done: 0,
                    state: if present {
                        LayerState::Exists
                    } else {
                        LayerState::Waiting
                    },
                })
                .collect(),
        );
        let missing: Vec<usize> = (0..present.len()).filter(|&i| !present[i]).collect();
        // Only the first downloads to run keep their early start: the rest would sit unread.
        let first = &missing[..missing.len().min(self.settings.max_concurrent_downloads)];
        opened.retain(|i, _| first.contains(i));
        // The largest layer is the one the pull waits for: it decompresses on a thread of its own.
        let largest = missing
            .iter()
            .copied()
            .max_by_key(|&i| manifest.layers[i].size);
        tracing::debug!(
            layers = manifest.layers.len(),
            missing = missing.len(),
            "resolved {image} to {}",
            resolved.manifest_doc.digest
        );
        futures::stream::iter(missing.into_iter().map(|i| {
            let layer = LayerJob {
                index: i,
                download: opened.remove(&i),
                beside: Some(i) == largest,
                desc: manifest.layers[i].clone(),
                diff_id: config.rootfs.diff_ids[i].clone(),
                chain_id: chains[i].clone(),
                parent: i.checked_sub(1).map(|p| chains[p].clone()),
            };
            let span = tracing::info_span!("pull.layer", digest = %layer.desc.digest);
            self.fetch_layer(image, creds, layer, progress, claim)
                .instrument(span)
        }))
        .buffer_unordered(self.settings.max_concurrent_downloads)
        .try_collect::<Vec<()>>()
        .await?;

        let images = &self.images;
        images.put_unflushed(&resolved.manifest_doc.digest, &resolved.manifest_doc.bytes)?;
        if let Some(index) = &resolved.index_doc {
            images.put_unflushed(&index.digest, &index.bytes)?;
        }
        if persist_records {
            images.db.persist().map_err(ImageStoreError::from)?;
            images.request_flush();
        }
        Ok(Fetched {
            id: config_desc.digest.clone(),
            manifest: resolved.manifest_doc.digest.clone(),
            index: resolved.index_doc.as_ref().map(|i| i.digest.clone()),
            layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
            chain_ids: chains,
            size: config_desc.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
            user: config.config.user.clone(),
        })
    }

    /// Fetches the top-level manifest and, for an index, the platform's manifest.
    async fn resolve(
        &self,
        image: &ImageRef,
        creds: Option<&Credentials>,
    ) -> Result<Resolved, PullError> {
        let top = self
            .registry
            .fetch_manifest(image, &image.manifest_reference(), creds)
            .await?;
        let (manifest_doc, index_doc) = match top.media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => {
                let index = Index::parse(&top.digest, &top.bytes)?;
                let chosen = index.select(&top.digest, &self.settings.platform)?;
                let doc = self
                    .registry
                    .fetch_manifest(image, chosen.digest.as_str(), creds)
                    .await?;
                (doc, Some(top))
            }
            _ => (top, None),
        };
        if !matches!(
            manifest_doc.media_type.as_str(),
            OCI_MANIFEST | DOCKER_MANIFEST
        ) {
            return Err(PullError::MediaType {
                digest: manifest_doc.digest,
                media_type: manifest_doc.media_type,
            });
        }
        let manifest = Manifest::parse(&manifest_doc.digest, &manifest_doc.bytes)?;
        Ok(Resolved {
            manifest,
            manifest_doc,
            index_doc,
        })
    }

    /// The layers whose download starts before the config is read: the first ones (as many as
    /// download at once) whose blob is not stored, of an image whose manifest is not stored. A
    /// stored manifest means the image, or most of it, is here already.
    fn early_layers(&self, resolved: &Resolved) -> Vec<usize> {
        let content = &self.images.content;
        if self.settings.discard_compressed_layers
            || content.contains(&resolved.manifest_doc.digest)
        {
            return Vec::new();
        }
        let layers = resolved.manifest.layers.iter().enumerate();
        layers
            .filter(|(_, layer)| !content.contains(&layer.digest))
            .map(|(i, _)| i)
            .take(self.settings.max_concurrent_downloads)
            .collect()
    }

    /// The config blob, from the store or the registry (verified and stored).
    async fn config(
        &self,
        image: &ImageRef,
        desc: &Descriptor,
        creds: Option<&Credentials>,
    ) -> Result<Vec<u8>, PullError> {
        let content = &self.images.content;
        if content.contains(&desc.digest) {
            return Ok(content.read(&desc.digest)?);
        }
        if desc.size > MAX_CONFIG_BYTES {
            return Err(PullError::ConfigTooLarge {
                digest: desc.digest.clone(),
                size: desc.size,
            });
        }
        let mut stream = self
            .registry
            .fetch_blob(image, &desc.digest, desc.size, creds)
            .await?;
        let mut bytes = Vec::with_capacity(desc.size as usize);
        while let Some(chunk) = stream.try_next().await? {
            bytes.extend_from_slice(&chunk);
        }
        self.images.put_unflushed(&desc.digest, &bytes)?;
        Ok(bytes)
    }

    /// Downloads one layer and unpacks it while it arrives, then commits its snapshot.
    async fn fetch_layer(
        &self,
        image: &ImageRef,
        creds: Option<&Credentials>,
        mut job: LayerJob,
        progress: &Progress,
        claim: &Claim,
    ) -> Result<(), PullError> {
        let compression = Compression::of_layer(&job.desc.media_type)
            .expect("Manifest::parse accepts only known layer media types");
        let staging = self.images.snapshots.staging()?;
        let blob = if self.settings.discard_compressed_layers {
            None
        } else {
            Some(self.images.content.writer()?)
        };
        let download = match job.download.take() {
            Some(opened) => opened,
            None => {
                self.registry
                    .fetch_blob(image, &job.desc.digest, job.desc.size, creds)
                    .await?
            }
        };
        let how = Unpacking {
            compression,
            limits: unpack::Limits {
                max_bytes: self.settings.max_layer_bytes,
                disk_reserve: self.settings.disk_reserve,
            },
            beside: job.beside,
        };
        progress.update(job.index, |l| l.state = LayerState::Downloading);
        let on_bytes = |n| progress.update(job.index, |l| l.done += n);
        let (streamed, staging) =
            stream_layer(download, blob, how, staging, &job.desc.digest, on_bytes).await?;
        job.verify(&streamed)?;
        let stored = streamed.blob.is_some();
        if let Some(blob) = streamed.blob {
            self.images
                .commit_unflushed(blob, &job.desc.digest, job.desc.size)?;
        }
        let layer = crate::snapshot::Layer {
            chain_id: &job.chain_id,
            parent: job.parent.as_ref(),
            diff_id: &job.diff_id,
            size: streamed.unpacked.bytes,
            inodes: streamed.unpacked.inodes,
        };
        self.images.snapshots.commit_unsynced(staging, &layer)?;
        claim.completed(std::iter::once(&job.chain_id).chain(stored.then_some(&job.desc.digest)));
        progress.update(job.index, |l| l.state = LayerState::Done);
        Ok(())
    }
}

/// An image whose content is stored, not yet recorded under any name.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub id: Digest,
    pub manifest: Digest,
    pub index: Option<Digest>,
    pub layers: Vec<Digest>,
    pub chain_ids: Vec<Digest>,
    pub size: u64,
    pub user: String,
}

impl Fetched {
    /// The image record under these names.
    pub fn record(self, repo_tags: Vec<String>, repo_digests: Vec<String>) -> ImageRecord {
        ImageRecord {
            id: self.id,
            repo_tags,
            repo_digests,
            manifest: self.manifest,
            index: self.index,
            layers: self.layers,
            chain_ids: self.chain_ids,
            size: self.size,
            user: self.user,
            pinned: false,
        }
    }
}

/// One layer to fetch, with what its bytes must hash to.
struct LayerJob {
    index: usize,
    /// Its download, when it started before the config was read.
    download: Option<BlobStream>,
    /// The layer the pull waits for: decompressed on a thread of its own.
    beside: bool,
    desc: Descriptor,
    diff_id: Digest,
    chain_id: Digest,
    parent: Option<Digest>,
}

impl LayerJob {
    fn verify(&self, s: &Streamed) -> Result<(), PullError> {
        let mismatch = |what, expected: String, actual: String| {
            Err(PullError::Mismatch {
                layer: self.desc.digest.clone(),
                what,
                expected,
                actual,
            })
        };
        if s.compressed_size != self.desc.size {
            return mismatch(
                "size",
                self.desc.size.to_string(),
                s.compressed_size.to_string(),
            );
        }
        if s.digest != self.desc.digest {
            return mismatch("digest", self.desc.digest.to_string(), s.digest.to_string());
        }
        if s.diff_id != self.diff_id {
            return mismatch("diff id", self.diff_id.to_string(), s.diff_id.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "pull_tests.rs"]
mod tests;
