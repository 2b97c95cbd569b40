//! Tests of `flush`: marks, the background flush, and recovery after a crash.

use std::sync::Arc;

use super::*;
use crate::image::content::ContentStore;
use crate::image::store::ImageRecord;
use crate::snapshot::{Layer, Snapshotter};
use crate::store::Store;

fn images(dir: &std::path::Path) -> Arc<ImageStore> {
    let db = Arc::new(Store::open(&dir.join("meta.redb")).unwrap());
    Arc::new(ImageStore {
        content: ContentStore::open(&dir.join("content")).unwrap(),
        snapshots: Snapshotter::open(&dir.join("snapshots"), db.clone()).unwrap(),
        db,
        flusher: Flusher::default(),
    })
}

/// What a pull stores for a one-layer image named `name`: config and layer blob, the layer's
/// snapshot (all unflushed, marked in the running boot) and the image record.
fn pulled(images: &ImageStore, name: &str) -> ImageRecord {
    let config = format!("config of {name}");
    let id = Digest::of(config.as_bytes());
    images.put_unflushed(&id, config.as_bytes()).unwrap();
    let layer = format!("layer of {name}");
    let layer_digest = Digest::of(layer.as_bytes());
    images
        .put_unflushed(&layer_digest, layer.as_bytes())
        .unwrap();
    let chain = Digest::of(format!("diff of {name}").as_bytes());
    let staging = images.snapshots.staging().unwrap();
    std::fs::write(staging.path().join("file"), name).unwrap();
    let snapshot = Layer {
        chain_id: &chain,
        parent: None,
        diff_id: &chain,
        size: 1,
        inodes: 1,
    };
    images
        .snapshots
        .commit_unsynced(staging, &snapshot)
        .unwrap();
    images
        .add(ImageRecord {
            id: id.clone(),
            repo_tags: vec![format!("r.io/{name}:1")],
            repo_digests: vec![],
            manifest: id.clone(),
            index: None,
            layers: vec![layer_digest],
            chain_ids: vec![chain],
            size: 1,
            user: String::new(),
            pinned: false,
        })
        .unwrap()
}

/// The keys marked unflushed.
fn unflushed(images: &ImageStore) -> Vec<String> {
    let rows: Vec<(String, Unflushed)> = images.db.read(|r| r.list(Table::Unflushed)).unwrap();
    rows.into_iter().map(|(k, _)| k).collect()
}

fn sorted(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys
}

#[test]
fn a_pull_marks_every_blob_and_snapshot_it_stored() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    let image = pulled(&images, "a");
    let mut want = vec![
        blob_key(&image.id),
        blob_key(&image.layers[0]),
        snapshot_key(&image.chain_ids[0]),
    ];
    want.sort();
    assert_eq!(sorted(unflushed(&images)), want);
    // A blob already stored is not stored, nor marked, again.
    assert_eq!(images.flush_marked().unwrap(), 3);
    images.put_unflushed(&image.id, b"config of a").unwrap();
    assert!(unflushed(&images).is_empty());
}

#[test]
fn the_background_flush_clears_the_marks() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    pulled(&images, "a");
    images.request_flush();
    pulled(&images, "b"); // stored while the first flush may run: a second round covers it
    images.request_flush();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !unflushed(&images).is_empty() {
        assert!(std::time::Instant::now() < deadline, "marks never cleared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(images.list().unwrap().len(), 2);
}

#[test]
fn a_mark_made_again_during_a_flush_stays() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    let key = blob_key(&Digest::of(b"x"));
    images.db.write(|w| mark(w, &key)).unwrap();
    let read: Vec<(String, Unflushed)> = images.db.read(|r| r.list(Table::Unflushed)).unwrap();
    images.db.write(|w| mark(w, &key)).unwrap(); // stored again after the flush read its marks
    assert_eq!(images.clear(&read).unwrap(), 0);
    assert_eq!(unflushed(&images), vec![key]);
}

#[test]
fn recovery_in_the_same_boot_flushes_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    let image = pulled(&images, "a");
    let found = recover(&images).unwrap();
    assert_eq!(
        found,
        Recovered {
            flushed: 3,
            ..Recovered::default()
        }
    );
    assert!(unflushed(&images).is_empty());
    assert_eq!(images.list().unwrap(), vec![image.clone()]);
    assert!(images.snapshots.get(&image.chain_ids[0]).unwrap().is_some());
    assert!(images.content.contains(&image.layers[0]));
}

#[test]
fn recovery_after_the_machine_went_down_deletes_what_was_never_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    let flushed = pulled(&images, "flushed");
    images.flush_marked().unwrap();
    let lost = pulled(&images, "lost");
    // As if written in an earlier boot: the machine went down before the flush.
    let chain = lost.chain_ids[0].clone();
    let snapshot_dir = images
        .snapshots
        .dir(&images.snapshots.get(&chain).unwrap().unwrap());
    images
        .db
        .write(|w| {
            mark_in_boot(w, &snapshot_key(&chain), "an-earlier-boot")?;
            mark_in_boot(w, &blob_key(&lost.layers[0]), "an-earlier-boot")
        })
        .unwrap();
    drop(images);
    let images = self::images(dir.path()); // a restart
    let found = recover(&images).unwrap();
    assert_eq!(
        found,
        Recovered {
            flushed: 1, // the config's mark, of this boot
            images: 1,
            snapshots: 1,
            blobs: 1,
        }
    );
    assert_eq!(images.list().unwrap(), vec![flushed.clone()]);
    assert!(images.lookup("r.io/lost:1").unwrap().is_none());
    assert!(images.snapshots.get(&chain).unwrap().is_none());
    assert!(!snapshot_dir.exists());
    assert!(!images.content.contains(&lost.layers[0]));
    assert!(unflushed(&images).is_empty());
    // What the flushed image uses is untouched.
    assert!(
        images
            .snapshots
            .get(&flushed.chain_ids[0])
            .unwrap()
            .is_some()
    );
    assert!(images.content.contains(&flushed.layers[0]));
}
