//! Images: references, registries, the content store, layer unpacking and image records.
//! Knows nothing of pods or containers.

pub mod archive;
mod collector;
pub(crate) mod content;
mod decode_thread;
pub mod digest;
pub(crate) mod flush;
mod layer_stream;
pub mod manifest;
mod progress;
pub(crate) mod pull;
pub(crate) mod push;
pub mod reference;
pub mod registry;
pub(crate) mod retain;
pub(crate) mod service;
pub(crate) mod store;
pub mod unpack;

pub use digest::Digest;
pub use reference::ImageRef;

use std::sync::Arc;

use crate::config::Config;
use crate::store::Store;

/// Builds the image service from the config: content store and snapshots under the root dir,
/// the registry client, the pull settings.
pub fn open(config: &Config, db: Arc<Store>) -> anyhow::Result<service::ImageService> {
    let content = content::ContentStore::open(&config.root_dir.join("content"))?;
    let snapshots =
        crate::snapshot::Snapshotter::open(&config.root_dir.join("snapshots"), db.clone())?;
    let images = Arc::new(store::ImageStore {
        db,
        content,
        snapshots,
        flusher: flush::Flusher::default(),
    });
    let platform = if config.image.platform.is_empty() {
        manifest::Platform::host()
    } else {
        manifest::Platform::parse(&config.image.platform).ok_or_else(|| {
            anyhow::anyhow!("image.platform {:?} is invalid", config.image.platform)
        })?
    };
    let registry = Arc::new(registry::RegistryClient::new(
        &config.registries,
        &config.image,
    )?);
    let pusher = push::Pusher {
        registry: registry.clone(),
        images: images.clone(),
    };
    let puller = pull::Puller {
        registry,
        images,
        settings: Arc::new(pull::PullSettings {
            platform,
            max_concurrent_downloads: config.image.max_concurrent_downloads,
            max_layer_bytes: config.image.max_layer_bytes,
            discard_compressed_layers: config.image.discard_compressed_layers,
            failed_pull_grace: config.image.failed_pull_grace,
            disk_reserve: unpack::DiskReserve::parse(&config.image.disk_reserve)
                .map_err(|e| anyhow::anyhow!("image.disk_reserve: {e}"))?,
        }),
        retainer: Arc::default(),
    };
    Ok(service::ImageService::new(puller, pusher))
}
