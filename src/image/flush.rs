//! Making pulled content durable off the pull's path. A pull stores its blobs and snapshot
//! directories without flushing them and marks each in the `unflushed` table with the kernel's
//! boot id: a blob's mark is committed before the blob is renamed into place, a snapshot's in the
//! same transaction as its record, so nothing a record or another pull can see lacks a mark. The
//! image record is then committed durably, which makes the marks durable too, and the pull ends.
//! A background flusher runs `syncfs` of the data filesystem(s) and then clears the marks it
//! covered. At startup, marks of the running boot need only that flush (the page cache still
//! holds the data: only berthd stopped); marks of an earlier boot mean the machine went down
//! before the flush, so the marked blobs and snapshots, and every image using one of them, are
//! deleted ([`recover`]), and kubelet pulls them again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use super::content::{BlobWriter, ContentError};
use super::digest::Digest;
use super::store::{ImageStore, ImageStoreError};
use crate::store::{StoreError, Table, Writer};

/// One mark: the boot the content was written in, and a token telling this mark from a later
/// one under the same key (a snapshot removed and pulled again while a flush ran).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unflushed {
    pub boot: String,
    pub token: u64,
}

/// The kernel's id of the running boot (`/proc/sys/kernel/random/boot_id`), read once; None
/// where it cannot be read, and then every mark counts as an earlier boot's at startup.
pub fn boot_id() -> Option<&'static str> {
    static BOOT: OnceLock<Option<String>> = OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

const SNAPSHOT: &str = "snapshot/";
const BLOB: &str = "blob/";

pub fn snapshot_key(chain_id: &Digest) -> String {
    format!("{SNAPSHOT}{chain_id}")
}

pub fn blob_key(digest: &Digest) -> String {
    format!("{BLOB}{digest}")
}

/// Marks `key` unflushed in the running boot, inside the caller's transaction.
pub fn mark(w: &mut Writer, key: &str) -> Result<(), StoreError> {
    mark_in_boot(w, key, boot_id().unwrap_or_default())
}

pub(crate) fn mark_in_boot(w: &mut Writer, key: &str, boot: &str) -> Result<(), StoreError> {
    let mark = Unflushed {
        boot: boot.to_string(),
        token: rand::random(),
    };
    w.put(Table::Unflushed, key, &mark)
}

/// Whether a flush thread runs, and whether another round was asked for meanwhile.
#[derive(Debug, Default)]
pub struct Flusher {
    state: Mutex<(bool, bool)>,
}

impl ImageStore {
    /// Moves a blob into place with `store` inside the transaction that marks it, unless it is
    /// stored already (then `store` is not called and nothing is marked: the copy in place is
    /// flushed, or marked by whoever stored it). Returns whether it stored the blob. The mark
    /// becomes visible only once the blob is in place, so a flush that reads it began after
    /// everything `store` wrote (the last buffered bytes, the rename); and the database's write
    /// lock, held from before the blob appears until its mark is committed, keeps every durable
    /// commit (another pull's image record naming the blob) from falling between the two.
    fn store_blob(
        &self,
        digest: &Digest,
        store: impl FnOnce() -> Result<(), ContentError>,
    ) -> Result<bool, ImageStoreError> {
        self.db.write_volatile_as(|w| {
            if self.content.contains(digest) {
                return Ok(false);
            }
            mark(w, &blob_key(digest))?;
            store()?;
            Ok(true)
        })
    }

    /// Stores a small blob held in memory (manifest, index, config) without flushing it, marked.
    pub fn put_unflushed(&self, digest: &Digest, bytes: &[u8]) -> Result<(), ImageStoreError> {
        if self.content.contains(digest) {
            return Ok(());
        }
        self.store_blob(digest, || self.content.put_unsynced(digest, bytes))?;
        Ok(())
    }

    /// Moves a pulled layer's verified blob into place without flushing it, marked; if the
    /// blob is stored already, `blob` is discarded and the stored copy kept as it is.
    pub fn commit_unflushed(
        &self,
        blob: BlobWriter,
        digest: &Digest,
        size: u64,
    ) -> Result<(), ImageStoreError> {
        self.store_blob(digest, || blob.commit_unsynced(digest, size))?;
        Ok(())
    }

    /// Drops the marks of deleted blobs: a later copy stored durably (a build's layer) must not
    /// be taken for unflushed content after a machine crash.
    pub(super) fn unmark_blobs(&self, digests: &[Digest]) -> Result<(), StoreError> {
        if digests.is_empty() {
            return Ok(());
        }
        self.db.write_volatile(|w| {
            for digest in digests {
                w.delete(Table::Unflushed, &blob_key(digest))?;
            }
            Ok(())
        })
    }

    /// Starts a flush on a thread of its own, or asks the running one for another round (so
    /// what was stored after its `syncfs` began is covered too).
    pub fn request_flush(self: &Arc<Self>) {
        {
            let mut state = self.flusher.state.lock().expect("flusher lock");
            if state.0 {
                state.1 = true;
                return;
            }
            *state = (true, false);
        }
        let images = self.clone();
        let spawned = std::thread::Builder::new()
            .name("image-flush".into())
            .spawn(move || {
                loop {
                    if let Err(e) = images.flush_marked() {
                        tracing::warn!(error = %e, "flush pulled content");
                    }
                    let mut state = images.flusher.state.lock().expect("flusher lock");
                    if !state.1 {
                        state.0 = false;
                        break;
                    }
                    state.1 = false;
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "start the image flush thread");
            *self.flusher.state.lock().expect("flusher lock") = (false, false);
        }
    }

    /// Flushes the data filesystem(s), then durably clears the marks read before the flush.
    /// Returns how many were cleared.
    pub fn flush_marked(&self) -> Result<usize, ImageStoreError> {
        let marked: Vec<(String, Unflushed)> = self.db.read(|r| r.list(Table::Unflushed))?;
        if marked.is_empty() {
            return Ok(0);
        }
        self.sync_filesystems()?;
        Ok(self.clear(&marked)?)
    }

    /// `syncfs` of the content store's filesystem and, if it is another one, of the snapshots'.
    fn sync_filesystems(&self) -> Result<(), ImageStoreError> {
        use std::os::unix::fs::MetadataExt;
        self.content.sync_filesystem()?;
        let device = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.dev()).ok();
        let content_dev = device(self.content.root());
        if content_dev.is_none() || content_dev != device(self.snapshots.root()) {
            self.snapshots.sync_filesystem()?;
        }
        Ok(())
    }

    /// Deletes the marks that are still as read (a key marked again meanwhile stays).
    fn clear(&self, marked: &[(String, Unflushed)]) -> Result<usize, StoreError> {
        self.db.write(|w| {
            let mut cleared = 0;
            for (key, mark) in marked {
                if w.get::<Unflushed>(Table::Unflushed, key)?.as_ref() == Some(mark) {
                    w.delete(Table::Unflushed, key)?;
                    cleared += 1;
                }
            }
            Ok(cleared)
        })
    }
}

/// What [`recover`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Marks of the running boot, flushed now.
    pub flushed: usize,
    /// Images deleted because content they use was never flushed before the machine went down.
    pub images: usize,
    pub snapshots: usize,
    pub blobs: usize,
}

/// At startup, before any pull: flushes what the running boot left unflushed, and deletes what
/// an earlier boot did (and the images using it). Garbage collection then removes whatever
/// else only those images used.
pub fn recover(images: &ImageStore) -> Result<Recovered, ImageStoreError> {
    let marked: Vec<(String, Unflushed)> = images.db.read(|r| r.list(Table::Unflushed))?;
    let mut found = Recovered::default();
    if marked.is_empty() {
        return Ok(found);
    }
    let boot = boot_id();
    let (current, stale): (Vec<_>, Vec<_>) = marked
        .iter()
        .partition(|(_, m)| boot.is_some_and(|b| b == m.boot));
    if !current.is_empty() {
        images.sync_filesystems()?;
        found.flushed = current.len();
    }
    let mut lost_chains = HashSet::new();
    let mut lost_blobs = HashSet::new();
    for (key, _) in stale {
        if let Some(chain) = key.strip_prefix(SNAPSHOT).and_then(|d| d.parse().ok()) {
            images.snapshots.remove(&chain)?;
            lost_chains.insert(chain);
        } else if let Some(digest) = key.strip_prefix(BLOB).and_then(|d| d.parse().ok()) {
            images.content.delete(&digest)?;
            lost_blobs.insert(digest);
        }
    }
    found.snapshots = lost_chains.len();
    found.blobs = lost_blobs.len();
    for image in images.list()? {
        let lost = image.chain_ids.iter().any(|c| lost_chains.contains(c))
            || image.blobs().any(|b| lost_blobs.contains(b));
        if lost {
            images.remove(&image.id)?;
            found.images += 1;
        }
    }
    images.clear(&marked)?;
    Ok(found)
}

#[cfg(test)]
#[path = "flush_tests.rs"]
mod tests;
