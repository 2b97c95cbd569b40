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

/// What a committed snapshot records of its layer ([`Snapshotter::commit_unsynced`]).
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    pub chain_id: &'a Digest,
    /// The chain id of the snapshot below, if any.
    pub parent: Option<&'a Digest>,
    pub diff_id: &'a Digest,
    /// Bytes and inodes unpacked.
    pub size: u64,
    pub inodes: u64,
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
        spread_subdirs(root);
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

    /// Makes a staged layer the snapshot for `chain_id`, durably: the filesystem is synced
    /// before the record is written. If another pull committed the same chain meanwhile, the
    /// staged copy is discarded and the existing record returned.
    pub fn commit(
        &self,
        staging: Staging,
        chain_id: &Digest,
        parent: Option<&Digest>,
        diff_id: &Digest,
        size: u64,
        inodes: u64,
    ) -> Result<SnapshotRecord, SnapshotError> {
        let layer = Layer {
            chain_id,
            parent,
            diff_id,
            size,
            inodes,
        };
        self.commit_with(staging, &layer, true)
    }

    /// Like [`Snapshotter::commit`], but neither the files nor the record are flushed: for a
    /// pull. The record is written volatile with a mark in the `unflushed` table (in the same
    /// transaction), which the image flusher clears after a `syncfs` (`image::flush`). A crash
    /// before the next durable commit loses both, and startup deletes the directory
    /// ([`Snapshotter::sweep_orphans`]); a machine crash after it but before the flush leaves the
    /// mark, and startup deletes the snapshot (`image::flush::recover`).
    pub fn commit_unsynced(
        &self,
        staging: Staging,
        layer: &Layer<'_>,
    ) -> Result<SnapshotRecord, SnapshotError> {
        self.commit_with(staging, layer, false)
    }

    /// Flushes the filesystem the snapshots are on (`syncfs`).
    pub fn sync_filesystem(&self) -> Result<(), SnapshotError> {
        let dir = fs::File::open(&self.root).map_err(io_err(&self.root))?;
        nix::unistd::syncfs(&dir).map_err(|e| io_err(&self.root)(e.into()))
    }

    fn commit_with(
        &self,
        staging: Staging,
        layer: &Layer<'_>,
        durable: bool,
    ) -> Result<SnapshotRecord, SnapshotError> {
        let Layer {
            chain_id,
            parent,
            diff_id,
            size,
            inodes,
        } = *layer;
        if let Some(existing) = self.get(chain_id)? {
            return Ok(existing);
        }
        // The counter need not be durable: should a crash lose it, the directory it named has
        // no record either, and startup deletes it before anything takes the number again.
        let id = self.store.write_volatile(|w| w.next_counter("snapshot"))?;
        let target = self.root.join(id.to_string());
        fs::rename(&staging.path, &target).map_err(io_err(&target))?;
        std::mem::forget(staging);
        // Unpacked files are not fsynced one by one; one syncfs makes them durable before the
        // record that points at them is.
        if durable && let Ok(dir) = fs::File::open(&target) {
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
        let put = |w: &mut crate::store::Writer| {
            if let Some(existing) = w.get::<SnapshotRecord>(Table::Snapshots, chain_id.as_str())? {
                return Ok(Some(existing));
            }
            w.put(Table::Snapshots, chain_id.as_str(), &record)?;
            if !durable {
                crate::image::flush::mark(w, &crate::image::flush::snapshot_key(chain_id))?;
            }
            Ok(None)
        };
        let raced = match durable {
            true => self.store.write(put)?,
            false => self.store.write_volatile(put)?,
        };
        match raced {
            Some(existing) => {
                let _ = fs::remove_dir_all(&target);
                Ok(existing)
            }
            None => Ok(record),
        }
    }

    /// Deletes a snapshot's record (and its `unflushed` mark, if any: a later snapshot of the
    /// chain committed durably, by a build, must not be taken for unflushed content after a
    /// machine crash), then moves its directory to the trash, where a background thread
    /// deletes it.
    pub fn remove(&self, chain_id: &Digest) -> Result<(), SnapshotError> {
        let record: Option<SnapshotRecord> = self.store.write(|w| {
            let record = w.get(Table::Snapshots, chain_id.as_str())?;
            w.delete(Table::Snapshots, chain_id.as_str())?;
            w.delete(
                Table::Unflushed,
                &crate::image::flush::snapshot_key(chain_id),
            )?;
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

/// Asks ext2/3/4 to place each directory made in `root` (a snapshot) in a block group of its
/// own choosing, as it does for directories in a filesystem's root (`chattr +T`, the Orlov
/// allocator), instead of beside `root`. A snapshot's files then get their inodes from that
/// group, not from the group that held the snapshots removed last: on ext4 without a journal,
/// the inode allocator steps over every inode freed in the last minutes one by one, and that
/// scan cost more than the unpacking itself (docs/benchmarks.md). Other filesystems have no such
/// flag; failing to set it changes nothing else.
fn spread_subdirs(root: &Path) {
    use rustix::fs::{IFlags, Mode, OFlags, ioctl_getflags, ioctl_setflags};
    let set = || -> rustix::io::Result<()> {
        let dir = rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let flags = ioctl_getflags(&dir)?;
        if !flags.contains(IFlags::TOPDIR) {
            ioctl_setflags(&dir, flags | IFlags::TOPDIR)?;
        }
        Ok(())
    };
    if let Err(e) = set() {
        tracing::debug!(root = %root.display(), error = %e, "snapshot dirs are not spread over block groups");
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

impl AsRef<Path> for Staging {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests;
