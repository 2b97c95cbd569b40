//! Push against a fake registry that keeps blobs per repository and records every upload.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures::future::BoxFuture;

use super::*;
use crate::image::registry::RegistryError;

/// What the fake registry holds and what was done to it.
#[derive(Default)]
struct Fake {
    /// (registry/repository, digest) of every blob present.
    blobs: Mutex<HashSet<(String, Digest)>>,
    manifests: Mutex<HashMap<(String, String), Vec<u8>>>,
    uploads: Mutex<Vec<Digest>>,
    mounts: Mutex<Vec<(Digest, String)>>,
}

impl RegistryPush for Fake {
    fn push_blob<'a>(
        &'a self,
        image: &'a ImageRef,
        blob: &'a BlobUpload,
        _creds: Option<&'a Credentials>,
        sent: Arc<AtomicU64>,
    ) -> BoxFuture<'a, Result<BlobPushed, RegistryError>> {
        Box::pin(async move {
            let repo = image.name();
            let mut blobs = self.blobs.lock().unwrap();
            if blobs.contains(&(repo.clone(), blob.digest.clone())) {
                return Ok(BlobPushed::Exists);
            }
            if let Some(from) = &blob.mount_from
                && blobs.contains(&(format!("{}/{from}", image.registry()), blob.digest.clone()))
            {
                self.mounts
                    .lock()
                    .unwrap()
                    .push((blob.digest.clone(), from.clone()));
                blobs.insert((repo, blob.digest.clone()));
                return Ok(BlobPushed::Mounted);
            }
            let bytes = std::fs::read(&blob.path).unwrap();
            assert_eq!(Digest::of(&bytes), blob.digest, "uploaded bytes match");
            sent.store(bytes.len() as u64, Ordering::Relaxed);
            self.uploads.lock().unwrap().push(blob.digest.clone());
            blobs.insert((repo, blob.digest.clone()));
            Ok(BlobPushed::Uploaded)
        })
    }

    fn put_manifest<'a>(
        &'a self,
        image: &'a ImageRef,
        reference: &'a str,
        _media_type: &'a str,
        bytes: bytes::Bytes,
        _creds: Option<&'a Credentials>,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let repo = image.name();
            let manifest = Manifest::parse(&Digest::of(&bytes), &bytes).unwrap();
            let blobs = self.blobs.lock().unwrap();
            for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
                assert!(
                    blobs.contains(&(repo.clone(), d.digest.clone())),
                    "manifest put before its blob {}",
                    d.digest
                );
            }
            self.manifests
                .lock()
                .unwrap()
                .insert((repo, reference.to_string()), bytes.to_vec());
            Ok(())
        })
    }
}

fn images(dir: &std::path::Path) -> Arc<ImageStore> {
    Arc::new(ImageStore::open_for_tests(dir))
}

/// Stores a config, two layers and a manifest; returns the record (not added to the db).
fn stored_image(images: &ImageStore, name: &str) -> ImageRecord {
    let put = |bytes: &[u8]| {
        let d = Digest::of(bytes);
        images.content.put(&d, bytes).unwrap();
        d
    };
    let config = put(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#);
    let layers = [put(b"layer one"), put(b"layer two")];
    let desc = |d: &Digest, size: usize, mt: &str| {
        format!(r#"{{"mediaType":"{mt}","digest":"{d}","size":{size}}}"#)
    };
    let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{},"layers":[{},{}]}}"#,
        desc(&config, 42, "application/vnd.oci.image.config.v1+json"),
        desc(&layers[0], 9, gzip),
        desc(&layers[1], 9, gzip),
    );
    let manifest = put(manifest.as_bytes());
    ImageRecord {
        id: config,
        repo_tags: vec![name.to_string()],
        repo_digests: vec![],
        manifest,
        index: None,
        layers: layers.to_vec(),
        chain_ids: vec![],
        size: 60,
        user: String::new(),
        pinned: false,
    }
}

fn dest(s: &str) -> ImageRef {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_second_push_uploads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    let record = stored_image(&images, "r.io/team/app:v1");
    let fake = Arc::new(Fake::default());
    let pusher = Pusher {
        registry: fake.clone(),
        images,
    };
    let to = dest("r.io/team/app:v1");
    let plan = pusher.plan(&record).unwrap();
    assert_eq!(plan.len(), 3, "config and two layers");
    let first = pusher.push(&record, &to, None, &plan).await.unwrap();
    assert_eq!(first.uploaded, 3);
    assert_eq!(first.digest, record.manifest);
    assert!(plan.iter().all(|b| b.state() == BlobState::Pushed));
    let plan = pusher.plan(&record).unwrap();
    let second = pusher.push(&record, &to, None, &plan).await.unwrap();
    assert_eq!(second.uploaded, 0);
    assert!(plan.iter().all(|b| b.state() == BlobState::Exists));
    assert_eq!(fake.uploads.lock().unwrap().len(), 3, "no blob sent twice");
    let manifests = fake.manifests.lock().unwrap();
    let stored = &manifests[&("r.io/team/app".to_string(), "v1".to_string())];
    assert_eq!(
        Digest::of(stored),
        record.manifest,
        "manifest bytes unchanged"
    );
}

#[tokio::test]
async fn blobs_are_mounted_from_the_source_repository_of_the_same_registry() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    let record = stored_image(&images, "r.io/team/app:v1");
    let fake = Arc::new(Fake::default());
    let pusher = Pusher {
        registry: fake.clone(),
        images,
    };
    let plan = pusher.plan(&record).unwrap();
    pusher
        .push(&record, &dest("r.io/team/app:v1"), None, &plan)
        .await
        .unwrap();
    let plan = pusher.plan(&record).unwrap();
    let pushed = pusher
        .push(&record, &dest("r.io/other/copy:v2"), None, &plan)
        .await
        .unwrap();
    assert_eq!(pushed.uploaded, 0);
    assert_eq!(fake.mounts.lock().unwrap().len(), 3);
    assert!(
        fake.mounts
            .lock()
            .unwrap()
            .iter()
            .all(|(_, from)| from == "team/app")
    );
    // Another registry gets the bytes: nothing to mount from there.
    let plan = pusher.plan(&record).unwrap();
    let elsewhere = pusher
        .push(&record, &dest("q.io/team/app:v1"), None, &plan)
        .await
        .unwrap();
    assert_eq!(elsewhere.uploaded, 3);
}

#[tokio::test]
async fn a_discarded_layer_or_a_digest_destination_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    let record = stored_image(&images, "r.io/team/app:v1");
    images.content.delete(&record.layers[1]).unwrap();
    let pusher = Pusher {
        registry: Arc::new(Fake::default()),
        images,
    };
    let plan = pusher.plan(&record).unwrap();
    let err = pusher
        .push(&record, &dest("r.io/team/app:v1"), None, &plan)
        .await
        .unwrap_err();
    assert!(matches!(err, PushError::BlobMissing { .. }), "{err}");
    assert_eq!(err.kind(), Kind::FailedPrecondition);
    let pinned = format!("r.io/team/app@{}", record.manifest);
    let err = pusher
        .push(&record, &dest(&pinned), None, &plan)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidArgument, "{err}");
}
