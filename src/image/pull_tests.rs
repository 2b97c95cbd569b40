//! The pull pipeline against a fake registry that records when each request starts and ends.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

use super::*;
use crate::image::store::ImageStore;
use crate::image::unpack::testtar::{E, tar};

/// Images (manifests by tag) and every blob, served from memory. A config answers only after a
/// delay, so that a layer download started beside it is seen starting first.
#[derive(Default)]
struct Fake {
    manifests: HashMap<String, Bytes>,
    configs: HashSet<Digest>,
    blobs: HashMap<Digest, Bytes>,
    events: Mutex<Vec<String>>,
}

impl Fake {
    /// Adds the image `tag` of `layers` (each a tar), gzip-compressed.
    fn image(mut self, tag: &str, layers: &[Vec<u8>]) -> Fake {
        let blobs = &mut self.blobs;
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for layer in layers {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(layer).unwrap();
            let compressed = gz.finish().unwrap();
            let digest = Digest::of(&compressed);
            descs.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest.as_str(),
                "size": compressed.len(),
            }));
            diff_ids.push(Digest::of(layer).as_str().to_string());
            blobs.insert(digest, Bytes::from(compressed));
        }
        let host = Platform::host();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": host.architecture,
            "os": host.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let config_digest = Digest::of(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.as_str(),
                "size": config.len(),
            },
            "layers": descs,
        }))
        .unwrap();
        blobs.insert(config_digest.clone(), Bytes::from(config));
        self.configs.insert(config_digest);
        self.manifests
            .insert(tag.to_string(), Bytes::from(manifest));
        self
    }

    fn event(&self, what: String) {
        self.events.lock().unwrap().push(what);
    }

    fn events(&self) -> Vec<String> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

impl Registry for Fake {
    fn fetch_manifest<'a>(
        &'a self,
        image: &'a ImageRef,
        reference: &'a str,
        _creds: Option<&'a Credentials>,
    ) -> BoxFuture<'a, Result<FetchedManifest, RegistryError>> {
        Box::pin(async move {
            let bytes = self.manifests.get(reference).cloned().ok_or_else(|| {
                RegistryError::ManifestUnknown {
                    name: image.name(),
                    reference: reference.to_string(),
                }
            })?;
            Ok(FetchedManifest {
                media_type: OCI_MANIFEST.to_string(),
                digest: Digest::of(&bytes),
                bytes,
            })
        })
    }

    fn fetch_blob<'a>(
        &'a self,
        image: &'a ImageRef,
        digest: &'a Digest,
        _size: u64,
        _creds: Option<&'a Credentials>,
    ) -> BoxFuture<'a, Result<BlobStream, RegistryError>> {
        Box::pin(async move {
            let config = self.configs.contains(digest);
            let what = if config { "config" } else { "layer" };
            self.event(format!("{what} requested"));
            if config {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let Some(bytes) = self.blobs.get(digest).cloned() else {
                return Err(RegistryError::BlobUnknown {
                    name: image.name(),
                    digest: digest.clone(),
                });
            };
            self.event(format!("{what} answered"));
            let stream: BlobStream = Box::pin(futures::stream::iter([Ok(bytes)]));
            Ok(stream)
        })
    }
}

/// A puller of `fake`'s image into a store in `dir`.
fn puller(fake: Fake, dir: &std::path::Path) -> (Puller, Arc<Fake>) {
    let fake = Arc::new(fake);
    let puller = Puller {
        registry: fake.clone(),
        images: Arc::new(ImageStore::open_for_tests(dir)),
        settings: Arc::new(PullSettings {
            platform: Platform::host(),
            max_concurrent_downloads: 3,
            max_layer_bytes: 1 << 30,
            discard_compressed_layers: false,
            failed_pull_grace: Duration::ZERO,
            disk_reserve: unpack::DiskReserve::NONE,
        }),
        retainer: Arc::default(),
    };
    (puller, fake)
}

async fn pull(puller: &Puller, name: &str) -> Result<ImageRecord, PullError> {
    let image: ImageRef = name.parse().unwrap();
    puller.pull(&image, None, &Progress::default()).await
}

#[tokio::test]
async fn a_cold_pull_starts_the_layer_downloads_beside_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let layers = [tar(&[E::file("a", b"1")]), tar(&[E::file("b", b"2")])];
    let (puller, fake) = puller(Fake::default().image("1", &layers), dir.path());
    pull(&puller, "example.test/app:1").await.unwrap();
    let events = fake.events();
    let config_answered = events.iter().position(|e| e == "config answered").unwrap();
    let layers_requested = events[..config_answered]
        .iter()
        .filter(|e| *e == "layer requested")
        .count();
    assert_eq!(layers_requested, 2, "{events:?}");
    assert_eq!(events.iter().filter(|e| *e == "layer answered").count(), 2);
}

#[tokio::test]
async fn a_pull_of_what_is_here_starts_no_layer_download() {
    let dir = tempfile::tempdir().unwrap();
    let layers = [tar(&[E::file("a", b"1")])];
    let (puller, fake) = puller(Fake::default().image("1", &layers), dir.path());
    pull(&puller, "example.test/app:1").await.unwrap();
    fake.events();
    // The same image again, and under another name: its manifest and config are stored, so
    // nothing but the manifest is fetched.
    pull(&puller, "example.test/app:1").await.unwrap();
    pull(&puller, "example.test/other:1").await.unwrap();
    assert_eq!(fake.events(), Vec::<String>::new());
}

#[tokio::test]
async fn a_layer_shared_with_a_stored_image_is_not_downloaded() {
    let dir = tempfile::tempdir().unwrap();
    let base = tar(&[E::file("base", b"1")]);
    let top = tar(&[E::file("top", b"2")]);
    let fake = Fake::default()
        .image("base", std::slice::from_ref(&base))
        .image("app", &[base, top]);
    let (puller, fake) = puller(fake, dir.path());
    pull(&puller, "example.test/x:base").await.unwrap();
    fake.events();
    // A new manifest on top of the stored layer: downloads start early, but only for the layer
    // whose blob is not stored.
    pull(&puller, "example.test/x:app").await.unwrap();
    let events = fake.events();
    let requested = events.iter().filter(|e| *e == "layer requested").count();
    assert_eq!(requested, 1, "{events:?}");
}

#[tokio::test]
async fn a_missing_layer_fails_the_pull_as_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut fake = Fake::default().image("1", &[tar(&[E::file("a", b"1")])]);
    let configs = fake.configs.clone();
    fake.blobs.retain(|digest, _| configs.contains(digest));
    let (puller, fake) = puller(fake, dir.path());
    let err = pull(&puller, "example.test/app:1").await.unwrap_err();
    assert!(
        matches!(err, PullError::Registry(RegistryError::BlobUnknown { .. })),
        "{err:?}"
    );
    assert_eq!(err.kind(), Kind::NotFound);
    // Opened early, failed, and asked for again in its turn, which reported the error.
    let events = fake.events();
    let requested = events.iter().filter(|e| *e == "layer requested").count();
    assert_eq!(requested, 2, "{events:?}");
}
