//! Tests of `flush`: marks, the background flush, and recovery after a crash.

use std::sync::Arc;

use super::*;
use crate::image::store::ImageRecord;
use crate::snapshot::Layer;

fn images(dir: &std::path::Path) -> Arc<ImageStore> {
    Arc::new(ImageStore::open_for_tests(dir))
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

/// Every mark re-made as an earlier boot's: the machine went down before the flush.
fn as_if_in_an_earlier_boot(images: &ImageStore) {
    images
        .db
        .write(|w| {
            for key in w
                .list::<Unflushed>(Table::Unflushed)?
                .into_iter()
                .map(|(k, _)| k)
            {
                mark_in_boot(w, &key, "an-earlier-boot")?;
            }
            Ok(())
        })
        .unwrap();
}

fn marks(images: &ImageStore) -> Vec<(String, Unflushed)> {
    images.db.read(|r| r.list(Table::Unflushed)).unwrap()
}

/// A layer blob as a pull streams it: written to the ingest area, not yet in place.
fn streamed(images: &ImageStore, bytes: &[u8]) -> (crate::image::content::BlobWriter, Digest) {
    let mut writer = images.content.writer().unwrap();
    writer.write(bytes).unwrap();
    (writer, Digest::of(bytes))
}

#[test]
fn a_blob_is_in_place_before_a_flush_can_see_its_mark() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    let (writer, digest) = streamed(&images, b"layer");
    let stored = images
        .store_blob(&digest, || {
            // What a flush running now reads: no mark yet, so it cannot clear one before the
            // blob's last bytes and its rename are written.
            assert!(
                unflushed(&images).is_empty(),
                "marked before it is in place"
            );
            writer.commit_unsynced(&digest, 5)
        })
        .unwrap();
    assert!(stored);
    assert!(images.content.contains(&digest));
    assert_eq!(unflushed(&images), vec![blob_key(&digest)]);
    // A blob that fails to go into place leaves no mark either.
    let (writer, _) = streamed(&images, b"other");
    let wrong = Digest::of(b"not other");
    images.commit_unflushed(writer, &wrong, 5).unwrap_err();
    assert_eq!(unflushed(&images), vec![blob_key(&digest)]);
}

#[test]
fn a_pull_of_layers_already_flushed_marks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    let image = pulled(&images, "a");
    assert_eq!(images.flush_marked().unwrap(), 3);
    let blob = images.content.path(&image.layers[0]);
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&blob).unwrap());
    // A second image with the same layer: its blob streamed again, its snapshot unpacked again.
    let (writer, digest) = streamed(&images, b"layer of a");
    assert_eq!(digest, image.layers[0]);
    images.commit_unflushed(writer, &digest, 10).unwrap();
    let chain = &image.chain_ids[0];
    let layer = Layer {
        chain_id: chain,
        parent: None,
        diff_id: chain,
        size: 1,
        inodes: 1,
    };
    let staging = images.snapshots.staging().unwrap();
    images.snapshots.commit_unsynced(staging, &layer).unwrap();
    assert!(unflushed(&images).is_empty(), "nothing marked again");
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&blob).unwrap()),
        inode,
        "the flushed blob is kept, not replaced by an unflushed copy"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("content/ingest"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn a_pull_reusing_a_marked_layer_leaves_its_mark_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    let image = pulled(&images, "a");
    // A flush begins: it read these marks and runs its syncfs.
    let read = marks(&images);
    let (writer, digest) = streamed(&images, b"layer of a");
    images.commit_unflushed(writer, &digest, 10).unwrap();
    images.put_unflushed(&image.id, b"config of a").unwrap();
    assert_eq!(
        marks(&images),
        read,
        "the reuse neither clears nor renews a mark"
    );
    // The flush that covered them clears them; only a flush does.
    assert_eq!(images.clear(&read).unwrap(), 3);
    assert!(unflushed(&images).is_empty());
}

#[test]
fn removing_an_image_while_its_marks_are_flushed_neither_fails_nor_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    let image = pulled(&images, "a");
    let chain = image.chain_ids[0].clone();
    let snapshot_dir = images
        .snapshots
        .dir(&images.snapshots.get(&chain).unwrap().unwrap());
    let read = marks(&images); // a flush began
    images.remove(&image.id).unwrap();
    let swept = images.collect_garbage(&HashSet::new()).unwrap();
    assert_eq!((swept.blobs, swept.snapshots), (2, 1));
    assert!(unflushed(&images).is_empty(), "removal drops the marks");
    assert_eq!(images.clear(&read).unwrap(), 0); // the flush ends
    assert!(images.list().unwrap().is_empty());
    assert!(images.snapshots.get(&chain).unwrap().is_none());
    assert!(!snapshot_dir.exists());
    assert!(images.content.list().unwrap().is_empty());
    // Removed and pulled again while a flush that read the old marks still runs: the new
    // marks stay.
    pulled(&images, "a");
    let read = marks(&images);
    images.remove(&image.id).unwrap();
    images.collect_garbage(&HashSet::new()).unwrap();
    pulled(&images, "a");
    assert_eq!(images.clear(&read).unwrap(), 0);
    assert_eq!(unflushed(&images).len(), 3);
    // And with the real flush thread racing removals and pulls.
    for _ in 0..20 {
        images.request_flush();
        images.remove(&image.id).unwrap();
        images.collect_garbage(&HashSet::new()).unwrap();
        pulled(&images, "a");
    }
    images.remove(&image.id).unwrap();
    images.collect_garbage(&HashSet::new()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while *images.flusher.state.lock().unwrap() != (false, false) {
        assert!(
            std::time::Instant::now() < deadline,
            "the flush never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(images.list().unwrap().is_empty());
    assert!(images.snapshots.list().unwrap().is_empty());
    assert!(images.content.list().unwrap().is_empty());
    assert!(unflushed(&images).is_empty());
}

#[test]
fn recovery_keeps_what_a_build_stored_durably_after_a_lost_pull_was_removed() {
    let dir = tempfile::tempdir().unwrap();
    let images = images(dir.path());
    let lost = pulled(&images, "a");
    as_if_in_an_earlier_boot(&images);
    // Still in that boot: the image is removed, then a build makes the same layer, durably.
    images.remove(&lost.id).unwrap();
    images.collect_garbage(&HashSet::new()).unwrap();
    let chain = &lost.chain_ids[0];
    let staging = images.snapshots.staging().unwrap();
    std::fs::write(staging.path().join("file"), "a").unwrap();
    images
        .snapshots
        .commit(staging, chain, None, chain, 1, 1)
        .unwrap();
    images.content.put(&lost.layers[0], b"layer of a").unwrap();
    images.content.put(&lost.id, b"config of a").unwrap();
    let built = images
        .add(ImageRecord {
            repo_tags: vec!["r.io/built:1".into()],
            ..lost.clone()
        })
        .unwrap();
    drop(images);
    let images = self::images(dir.path()); // the machine went down, and came back
    assert_eq!(recover(&images).unwrap(), Recovered::default());
    assert_eq!(images.list().unwrap(), vec![built]);
    assert!(images.snapshots.get(chain).unwrap().is_some());
    assert!(images.content.contains(&lost.layers[0]));
}
