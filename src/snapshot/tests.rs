//! Snapshot store: commits (synced and unsynced), sweeps, removal, chain ids.

use super::*;

fn d(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

#[test]
fn chain_ids_follow_the_oci_definition() {
    let ids = chain_ids(&[d("a"), d("b")]);
    assert_eq!(ids[0], d("a"));
    assert_eq!(
        ids[1],
        Digest::of(format!("{} {}", d("a"), d("b")).as_bytes())
    );
    assert!(chain_ids(&[]).is_empty());
}

#[test]
fn commit_renames_staging_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("meta.redb")).unwrap());
    let snaps = Snapshotter::open(&dir.path().join("snapshots"), store).unwrap();
    let staging = snaps.staging().unwrap();
    fs::write(staging.path().join("file"), b"x").unwrap();
    let rec = snaps
        .commit(staging, &d("c1"), None, &d("c1"), 1, 1)
        .unwrap();
    assert_eq!(fs::read(snaps.dir(&rec).join("file")).unwrap(), b"x");
    assert_eq!(snaps.get(&d("c1")).unwrap(), Some(rec.clone()));

    // a second commit of the same chain keeps the first and discards the copy
    let staging = snaps.staging().unwrap();
    let again = snaps
        .commit(staging, &d("c1"), None, &d("c1"), 1, 1)
        .unwrap();
    assert_eq!(again, rec);

    // leftovers are swept, committed snapshots are not
    let _leftover = fs::create_dir(snaps.root().join("tmp-dead"));
    fs::create_dir(snaps.root().join("999")).unwrap();
    assert_eq!(snaps.sweep_orphans().unwrap(), 2);
    assert!(snaps.dir(&rec).exists());
    snaps.remove(&d("c1")).unwrap();
    assert!(!snaps.dir(&rec).exists());
    assert_eq!(fs::read_dir(snaps.root()).unwrap().count(), 0);
}

#[test]
fn an_unsynced_commit_is_visible_at_once_and_durable_after_persist() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meta.redb");
    let store = Arc::new(Store::open(&db).unwrap());
    let snaps = Snapshotter::open(&dir.path().join("snapshots"), store.clone()).unwrap();
    let staging = snaps.staging().unwrap();
    fs::write(staging.path().join("file"), b"x").unwrap();
    let layer = Layer {
        chain_id: &d("c1"),
        parent: None,
        diff_id: &d("c1"),
        size: 1,
        inodes: 1,
    };
    let rec = snaps.commit_unsynced(staging, &layer).unwrap();
    assert_eq!(snaps.get(&d("c1")).unwrap(), Some(rec.clone()));
    snaps.sync_filesystem().unwrap();
    store.persist().unwrap();
    drop((snaps, store));
    let store = Arc::new(Store::open(&db).unwrap());
    let snaps = Snapshotter::open(&dir.path().join("snapshots"), store).unwrap();
    assert_eq!(snaps.get(&d("c1")).unwrap(), Some(rec.clone()));
    assert_eq!(fs::read(snaps.dir(&rec).join("file")).unwrap(), b"x");
}

#[test]
fn a_directory_left_by_a_lost_counter_is_swept_before_its_number_is_reused() {
    // A crash can lose the volatile counter but keep the directory it named: the number is
    // handed out again, and only the startup sweep makes room for it.
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("meta.redb")).unwrap());
    let snaps = Snapshotter::open(&dir.path().join("snapshots"), store.clone()).unwrap();
    let next = store
        .read(|r| r.get::<u64>(Table::Counters, "snapshot"))
        .unwrap()
        .unwrap_or(1);
    let taken = snaps.root().join(next.to_string());
    fs::create_dir(&taken).unwrap();
    fs::write(taken.join("half-written"), b"?").unwrap();
    let layer = Layer {
        chain_id: &d("c1"),
        parent: None,
        diff_id: &d("c1"),
        size: 1,
        inodes: 1,
    };
    assert!(
        snaps
            .commit_unsynced(snaps.staging().unwrap(), &layer)
            .is_err()
    );
    // What a restart finds: the counter back at the lost number, the directory unrecorded.
    store
        .write(|w| w.put(Table::Counters, "snapshot", &next))
        .unwrap();
    assert_eq!(snaps.sweep_orphans().unwrap(), 1);
    let staging = snaps.staging().unwrap();
    fs::write(staging.path().join("file"), b"x").unwrap();
    let rec = snaps.commit_unsynced(staging, &layer).unwrap();
    assert_eq!(rec.id, next);
    assert_eq!(fs::read(snaps.dir(&rec).join("file")).unwrap(), b"x");
}

/// Waits until `dir` is empty; the trash thread deletes asynchronously.
fn wait_empty(dir: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs::read_dir(dir).unwrap().count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} not emptied",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn removed_snapshots_go_through_the_trash_and_leftovers_are_emptied_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("meta.redb")).unwrap());
    let trash = dir.path().join("trash");
    fs::create_dir_all(trash.join("7-dead/deep/er")).unwrap();
    fs::write(trash.join("7-dead/deep/er/file"), b"x").unwrap();
    let snaps = Snapshotter::open(&dir.path().join("snapshots"), store).unwrap();
    wait_empty(&trash);

    let staging = snaps.staging().unwrap();
    for i in 0..200 {
        fs::write(staging.path().join(i.to_string()), b"x").unwrap();
    }
    let rec = snaps
        .commit(staging, &d("c1"), None, &d("c1"), 1, 1)
        .unwrap();
    snaps.remove(&d("c1")).unwrap();
    assert!(!snaps.dir(&rec).exists(), "gone from the store at once");
    assert_eq!(snaps.get(&d("c1")).unwrap(), None);
    wait_empty(&trash);
    snaps.remove(&d("c1")).unwrap();
}

#[test]
fn dropped_staging_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("meta.redb")).unwrap());
    let snaps = Snapshotter::open(&dir.path().join("snapshots"), store).unwrap();
    let staging = snaps.staging().unwrap();
    let path = staging.path().to_path_buf();
    drop(staging);
    assert!(!path.exists());
}

#[test]
fn the_snapshot_root_spreads_its_directories_over_block_groups_on_ext4() {
    let dir = tempfile::tempdir().unwrap();
    let fs_type = rustix::fs::statfs(dir.path()).unwrap().f_type;
    // EXT4_SUPER_MAGIC (ext2 and ext3 share it): the filesystems that have the flag.
    assert_eq!(
        fs_type,
        0xEF53,
        "this test needs the temp dir on ext4 ({:?} is not)",
        dir.path()
    );
    let store = Arc::new(Store::open(&dir.path().join("meta.redb")).unwrap());
    let snaps = Snapshotter::open(&dir.path().join("snapshots"), store).unwrap();
    let root = fs::File::open(snaps.root()).unwrap();
    let flags = rustix::fs::ioctl_getflags(&root).unwrap();
    assert!(flags.contains(rustix::fs::IFlags::TOPDIR), "{flags:?}");
}
