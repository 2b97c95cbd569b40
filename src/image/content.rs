//! The content store: blobs (manifests, configs, compressed layers) addressed by digest.
//!
//! Layout: `<root>/blobs/sha256/<hex>` for committed blobs, `<root>/ingest/<random>` while
//! writing. A blob becomes visible only by an atomic rename after its size and digest were
//! verified, so nothing unverified is ever found under `blobs/` while berthd runs. Its data is
//! fsynced before the rename, except in a pull, which syncs the whole filesystem once before any
//! durable record names its blobs; what a crash leaves that no durable record names is deleted at
//! startup.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::digest::{Digest, Hasher};
use crate::error::{Classify, Kind};

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("blob {expected}: digest mismatch, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest}: size mismatch, expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("content store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl Classify for ContentError {
    fn kind(&self) -> Kind {
        match self {
            // The registry served the wrong bytes: the pull can be retried, the data is bad.
            ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. } => {
                Kind::Unavailable
            }
            ContentError::Io { .. } => Kind::Internal,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ContentError + '_ {
    move |source| ContentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The content store rooted at one directory.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<ContentStore, ContentError> {
        for dir in [root.join("blobs/sha256"), root.join("ingest")] {
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(ContentStore {
            root: root.to_path_buf(),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a committed blob lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Reads a whole committed blob (manifests and configs: small).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let path = self.path(digest);
        fs::read(&path).map_err(io_err(&path))
    }

    /// Size of a committed blob, if present.
    pub fn size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.path(digest)).ok().map(|m| m.len())
    }

    /// Verifies and stores a blob held in memory.
    pub fn put(&self, digest: &Digest, bytes: &[u8]) -> Result<(), ContentError> {
        if self.contains(digest) {
            return Ok(());
        }
        let mut writer = self.writer()?;
        writer.write(bytes)?;
        writer.commit(digest, bytes.len() as u64)
    }

    /// [`ContentStore::put`] without the fsyncs: see [`BlobWriter::commit_unsynced`].
    pub fn put_unsynced(&self, digest: &Digest, bytes: &[u8]) -> Result<(), ContentError> {
        if self.contains(digest) {
            return Ok(());
        }
        let mut writer = self.writer()?;
        writer.write(bytes)?;
        writer.commit_unsynced(digest, bytes.len() as u64)
    }

    /// Flushes the whole filesystem the store is on (`syncfs`): what was committed unsynced is
    /// durable once this returns.
    pub fn sync_filesystem(&self) -> Result<(), ContentError> {
        let root = &self.root;
        let dir = File::open(root).map_err(io_err(root))?;
        nix::unistd::syncfs(&dir).map_err(|e| io_err(root)(e.into()))
    }

    /// Starts writing a blob into the ingest area.
    pub fn writer(&self) -> Result<BlobWriter, ContentError> {
        let name = format!("{:016x}", rand::random::<u64>());
        let path = self.root.join("ingest").join(name);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Some(io::BufWriter::with_capacity(256 * 1024, file)),
            path,
            hasher: Hasher::default(),
            written: 0,
        })
    }

    /// A file for temporary data in the ingest area, removed when dropped (or, after a crash,
    /// with the other ingest leftovers at startup).
    pub fn scratch(&self) -> Result<Scratch, ContentError> {
        let name = format!("{:016x}", rand::random::<u64>());
        let path = self.root.join("ingest").join(name);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(Scratch { path, file })
    }

    /// Deletes a committed blob; a missing blob is not an error.
    pub fn delete(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Every committed blob's digest (for garbage collection).
    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            if let Ok(digest) = format!("sha256:{}", entry.file_name().to_string_lossy()).parse() {
                out.push(digest);
            }
        }
        Ok(out)
    }

    /// Removes every leftover of interrupted writes. Only safe when no write is in flight.
    pub fn clear_ingest(&self) -> Result<usize, ContentError> {
        let dir = self.root.join("ingest");
        let mut removed = 0;
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let path = entry.map_err(io_err(&dir))?.path();
            fs::remove_file(&path).map_err(io_err(&path))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Total bytes of committed blobs.
    pub fn used_bytes(&self) -> u64 {
        self.list()
            .unwrap_or_default()
            .iter()
            .filter_map(|d| self.size(d))
            .sum()
    }
}

/// A temporary file in the ingest area; deleted when dropped.
#[derive(Debug)]
pub struct Scratch {
    pub path: PathBuf,
    pub file: File,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A blob being written. Dropped without [`BlobWriter::commit`], it deletes its temp file.
pub struct BlobWriter {
    store: ContentStore,
    file: Option<io::BufWriter<File>>,
    path: PathBuf,
    hasher: Hasher,
    written: u64,
}

impl BlobWriter {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), ContentError> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        let file = self.file.as_mut().expect("writer is open until commit");
        file.write_all(bytes).map_err(io_err(&self.path))
    }

    /// The digest of everything written so far.
    pub fn digest(&self) -> Digest {
        self.hasher.clone().finish()
    }

    /// Verifies size and digest, fsyncs, and atomically moves the blob into place.
    pub fn commit(self, expected: &Digest, size: u64) -> Result<(), ContentError> {
        self.finish(expected, size, true)
    }

    /// Verifies and moves the blob into place like [`BlobWriter::commit`], but flushes nothing:
    /// a crash may leave it incomplete under its name. For a pull, which marks the blob
    /// unflushed in the transaction that holds the database while it is moved into place
    /// (`image::flush`): a blob no durable record names is deleted at startup
    /// (`ImageService::sweep_leftovers`), and so is a marked one after a machine crash.
    pub fn commit_unsynced(self, expected: &Digest, size: u64) -> Result<(), ContentError> {
        self.finish(expected, size, false)
    }

    fn finish(mut self, expected: &Digest, size: u64, sync: bool) -> Result<(), ContentError> {
        let actual = std::mem::take(&mut self.hasher).finish();
        if self.written != size {
            return Err(ContentError::SizeMismatch {
                digest: expected.clone(),
                expected: size,
                actual: self.written,
            });
        }
        if &actual != expected {
            return Err(ContentError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let file = self.file.take().expect("writer is open until commit");
        let file = file
            .into_inner()
            .map_err(|e| io_err(&self.path)(e.into_error()))?;
        if sync {
            file.sync_all().map_err(io_err(&self.path))?;
        }
        drop(file);
        let target = self.store.path(expected);
        fs::rename(&self.path, &target).map_err(io_err(&target))?;
        let dir = target.parent().expect("blob path has a parent");
        if sync {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(dir))?;
        }
        self.path = PathBuf::new(); // committed: nothing to clean up
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_blob_is_committed_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let digest = Digest::of(b"hello");
        store.put(&digest, b"hello").unwrap();
        assert_eq!(store.read(&digest).unwrap(), b"hello");
        assert_eq!(store.list().unwrap(), vec![digest.clone()]);
        assert_eq!(store.used_bytes(), 5);
        store.delete(&digest).unwrap();
        store.delete(&digest).unwrap();
        assert!(!store.contains(&digest));
    }

    #[test]
    fn wrong_digest_or_size_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let claimed = Digest::of(b"other");
        let err = store.put(&claimed, b"hello").unwrap_err();
        assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
        let mut w = store.writer().unwrap();
        w.write(b"abc").unwrap();
        let err = w.commit(&Digest::of(b"abc"), 4).unwrap_err();
        assert!(matches!(err, ContentError::SizeMismatch { .. }), "{err}");
        assert!(store.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn abandoned_writer_removes_its_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let mut w = store.writer().unwrap();
        w.write(b"partial").unwrap();
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 1);
        drop(w);
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
    }
}
