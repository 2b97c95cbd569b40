//! The built image: its OCI config (with one history entry per instruction), its manifest,
//! both stored as blobs, and its record in the image store.

use super::stage::Built;
use super::{BuildError, Builder};
use crate::image::ImageRef;
use crate::image::digest::Digest;
use crate::image::manifest::OCI_MANIFEST;
use crate::image::store::ImageRecord;
use crate::snapshot::chain_ids;

const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// Stores `built` as an image named `tags`; returns its id.
pub fn commit(builder: &Builder, built: &Built, tags: &[ImageRef]) -> Result<String, BuildError> {
    let store = builder.images.store();
    let bad = |e: &dyn std::fmt::Display| BuildError::Store(e.to_string());
    let mut config = built.config.clone();
    config.rootfs.kind = "layers".into();
    let config_bytes = serde_json::to_vec(&config).map_err(|e| bad(&e))?;
    let config_digest = Digest::of(&config_bytes);
    store
        .content
        .put(&config_digest, &config_bytes)
        .map_err(|e| bad(&e))?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": config_digest,
            "size": config_bytes.len(),
        },
        "layers": built.layers.iter().map(|l| &l.descriptor).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(|e| bad(&e))?;
    let manifest_digest = Digest::of(&manifest_bytes);
    store
        .content
        .put(&manifest_digest, &manifest_bytes)
        .map_err(|e| bad(&e))?;
    let record = ImageRecord {
        id: config_digest.clone(),
        repo_tags: tags.iter().filter_map(ImageRef::repo_tag).collect(),
        repo_digests: Vec::new(),
        manifest: manifest_digest,
        index: None,
        layers: built
            .layers
            .iter()
            .map(|l| l.descriptor.digest.clone())
            .collect(),
        chain_ids: chain_ids(&config.rootfs.diff_ids),
        size: config_bytes.len() as u64
            + built.layers.iter().map(|l| l.descriptor.size).sum::<u64>(),
        user: config.config.user.clone(),
        pinned: false,
    };
    store.add(record).map_err(|e| bad(&e))?;
    Ok(config_digest.to_string())
}
