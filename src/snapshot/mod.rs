//! Overlay snapshots of unpacked image layers, keyed by chain id.
//!
//! A layer is unpacked into a staging directory (`<root>/tmp-<random>`), then committed: the
//! directory is renamed to a short numeric name (`<root>/<n>`, short so many lowerdirs fit an
//! overlay mount) and its record is written to the metadata database. A snapshot is shared by
//! every image whose layer stack has the same prefix (same chain id), and unpacked only once.
//! A removed snapshot's directory is renamed into `<root>/../trash` at once and deleted there by a
//! background thread, so removing an image does not wait for thousands of unlinks.

pub mod mount;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Classify, Kind};
use crate::image::digest::{Digest, Hasher};
use crate::store::{Store, StoreError, Table};

/// What the database keeps per snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Directory number under the snapshot root.
    pub id: u64,
    /// Chain id of the snapshot below this one, if any.
    pub parent: Option<Digest>,
    /// The uncompressed digest of the layer this snapshot adds.
    pub diff_id: Digest,
    /// Bytes of regular files and entries unpacked (for ImageFsInfo).
    pub size: u64,
    pub inodes: u64,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Classify for SnapshotError {
    fn kind(&self) -> Kind {
        Kind::Internal
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Chain ids of a layer stack: the first is the first diff id, each next one hashes the
/// previous chain id, a space and the next diff id (the OCI image spec's definition).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(parent) => {
                let mut h = Hasher::default();
                h.update(format!("{parent} {diff_id}").as_bytes());
                h.finish()
            }
        };
        out.push(next);
    }
    out
}

/// The snapshot store.
pub struct Snapshotter {
    root: PathBuf,
    /// Where removed snapshot directories wait for deletion (same filesystem as `root`).
    trash: PathBuf,
    store: Arc<Store>,
}

impl Snapshotter {
    /// Opens the store at `root`; what an earlier run left in the trash is deleted in the
    /// background.
    pub fn open(root: &Path, store: Arc<Store>) -> Result<Snapshotter, SnapshotError> {
        fs::create_dir_all(root).map_err(io_err(root))?;
        let trash = root.with_file_name("trash");
        fs::create_dir_all(&trash).map_err(io_err(&trash))?;
        let leftovers: Vec<PathBuf> = fs::read_dir(&trash)
            .map_err(io_err(&trash))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        delete_in_background(leftovers);
        Ok(Snapshotter {
            root: root.to_path_buf(),
            trash,
            store,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a committed snapshot.
    pub fn dir(&self, record: &SnapshotRecord) -> PathBuf {
        self.root.join(record.id.to_string())
    }

    pub fn get(&self, chain_id: &Digest) -> Result<Option<SnapshotRecord>, SnapshotError> {
        Ok(self
            .store
            .read(|r| r.get(Table::Snapshots, chain_id.as_str()))?)
    }

    /// Every committed snapshot by chain id.
    pub fn list(&self) -> Result<Vec<(Digest, SnapshotRecord)>, SnapshotError> {
        let rows: Vec<(String, SnapshotRecord)> = self.store.read(|r| r.list(Table::Snapshots))?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| k.parse().ok().map(|d| (d, v)))
            .collect())
    }

    /// A fresh, empty staging directory, deleted when dropped uncommitted.
    pub fn staging(&self) -> Result<Staging, SnapshotError> {
        let path = self
            .root
            .join(format!("tmp-{:016x}", rand::random::<u64>()));
        fs::create_dir(&path).map_err(io_err(&path))?;
        Ok(Staging { path })
    }

    /// Makes a staged layer the snapshot for `chain_id`. If another pull committed the same chain
    /// meanwhile, the staged copy is discarded and the existing record returned.
    pub fn commit(
        &self,
        staging: Staging,
        chain_id: &Digest,
        parent: Option<&Digest>,
        diff_id: &Digest,
        size: u64,
        inodes: u64,
    ) -> Result<SnapshotRecord, SnapshotError> {
        if let Some(existing) = self.get(chain_id)? {
            return Ok(existing);
        }
        let id = self.store.write(|w| w.next_counter("snapshot"))?;
        let target = self.root.join(id.to_string());
        fs::rename(&staging.path, &target).map_err(io_err(&target))?;
        std::mem::forget(staging);
        // Unpacked files are not fsynced one by one; one syncfs makes them durable before the
        // record that points at them is.
        if let Ok(dir) = fs::File::open(&target) {
            let _ = nix::unistd::syncfs(&dir);
        }
        let record = SnapshotRecord {
            id,
            parent: parent.cloned(),
            diff_id: diff_id.clone(),
            size,
            inodes,
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let raced = self.store.write(|w| {
            if let Some(existing) = w.get::<SnapshotRecord>(Table::Snapshots, chain_id.as_str())? {
                return Ok(Some(existing));
            }
            w.put(Table::Snapshots, chain_id.as_str(), &record)?;
            Ok(None)
        })?;
        match raced {
            Some(existing) => {
                let _ = fs::remove_dir_all(&target);
                Ok(existing)
            }
            None => Ok(record),
        }
    }

    /// Deletes a snapshot's record, then moves its directory to the trash, where a background
    /// thread deletes it.
    pub fn remove(&self, chain_id: &Digest) -> Result<(), SnapshotError> {
        let record: Option<SnapshotRecord> = self.store.write(|w| {
            let record = w.get(Table::Snapshots, chain_id.as_str())?;
            w.delete(Table::Snapshots, chain_id.as_str())?;
            Ok(record)
        })?;
        if let Some(record) = record {
            let dir = self.dir(&record);
            let trashed = self
                .trash
                .join(format!("{}-{:016x}", record.id, rand::random::<u64>()));
            match fs::rename(&dir, &trashed) {
                Ok(()) => delete_in_background(vec![trashed]),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&dir)(e)),
            }
        }
        Ok(())
    }

    /// Removes staging leftovers and directories with no record (interrupted commits).
    /// Only safe when no pull is in flight.
    pub fn sweep_orphans(&self) -> Result<usize, SnapshotError> {
        let known: std::collections::HashSet<String> = self
            .list()?
            .into_iter()
            .map(|(_, r)| r.id.to_string())
            .collect();
        let mut removed = 0;
        for entry in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let entry = entry.map_err(io_err(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                remove_tree(&entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Bytes and inodes recorded for all snapshots.
    pub fn usage(&self) -> Result<(u64, u64), SnapshotError> {
        Ok(self
            .list()?
            .iter()
            .fold((0, 0), |(b, i), (_, r)| (b + r.size, i + r.inodes)))
    }
}

/// Deletes the given trees on a thread of their own; a failure is logged (the next start retries).
fn delete_in_background(paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("snapshot-trash".into())
        .spawn(move || {
            for path in paths {
                if let Err(e) = remove_tree(&path) {
                    tracing::warn!(error = %e, "delete removed snapshot");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "start the snapshot trash thread");
    }
}

fn remove_tree(path: &Path) -> Result<(), SnapshotError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

/// An uncommitted layer directory; removed on drop.
pub struct Staging {
    path: PathBuf,
}

impl Staging {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
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
}
