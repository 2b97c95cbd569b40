//! Image archives: OCI image layouts and docker-archive (`docker save`) tarballs, imported into
//! and exported from the image store.
//!
//! An archive to import is hostile. Nothing in it is ever extracted: berth indexes the tarball's
//! regular files (path -> offset and size, [`Entries`]), rejects unsafe or duplicate paths and
//! entries that run past the end of the file, and then pulls each image out of it through the
//! ordinary pull pipeline ([`registry::ArchiveRegistry`] stands in for a registry), so every
//! manifest, config and layer is verified by digest and every layer unpacked by the same
//! hardened unpacker as a registry pull. Symlinks, hard links and device entries are never
//! followed: a file the archive's index names must be a regular file.

pub mod export;
pub mod import;
pub mod plan;
pub mod registry;

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use super::digest::Digest;
use super::manifest::ManifestError;
use super::pull::PullError;
use super::reference::ReferenceError;
use super::unpack::UnpackError;
use crate::error::{Classify, Kind};

/// Most entries an archive may have: far more than any image, few enough to index in memory.
const MAX_ENTRIES: usize = 100_000;
/// Most header bytes (ustar blocks, GNU long names, PAX records, sparse maps) read in front of
/// one entry: the `tar` crate holds them in memory, and real archives use a few KiB.
const HEADER_WINDOW: u64 = 1 << 20;
/// Largest JSON document (index.json, manifest.json, a config) read from an archive.
pub const MAX_JSON_BYTES: u64 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive: not a tar file or corrupt: {0}")]
    Tar(io::Error),
    #[error("archive: entry {path:?}: unsafe path (absolute, or with \"..\")")]
    UnsafePath { path: String },
    #[error("archive: entry {path:?} appears twice")]
    Duplicate { path: String },
    #[error("archive: more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("archive: the headers of one entry are larger than the limit of {HEADER_WINDOW} bytes")]
    HeadersTooLarge,
    #[error("archive: entry {path:?}: {size} bytes run past the end of the archive")]
    Truncated { path: String, size: u64 },
    #[error("archive: {path:?} is missing or not a regular file")]
    Missing { path: String },
    #[error("archive: {path:?}: {size} bytes is larger than the {limit}-byte limit")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("archive: {path:?}: malformed JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error(
        "archive: neither an OCI image layout (index.json) nor a docker archive (manifest.json)"
    )]
    UnknownFormat,
    #[error("archive: {0}")]
    Invalid(String),
    #[error("archive: image name {name:?}: {source}")]
    Name {
        name: String,
        source: ReferenceError,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("archive: image {image}: {source}")]
    Pull {
        image: String,
        source: Box<PullError>,
    },
    #[error("archive file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// Spooling the upload failed on the node.
    #[error("import: spooling the upload: {0}")]
    Spool(io::Error),
    /// The upload is larger than `image.max_import_bytes`.
    #[error(
        "import: the upload is larger than the limit of {limit} bytes (image.max_import_bytes)"
    )]
    SpoolTooLarge { limit: u64 },
    /// Spooling on would take the data filesystem below `image.disk_reserve`.
    #[error("import: spooling the upload: {0}")]
    DiskReserve(String),
    /// A worker task of the import stopped (panicked or was cancelled).
    #[error("import: {0}")]
    Worker(String),
}

impl Classify for ArchiveError {
    /// Everything wrong with the archive is the caller's bad input; failing to store what it
    /// holds is the node's problem.
    fn kind(&self) -> Kind {
        match self {
            ArchiveError::Pull { source, .. } => match source.as_ref() {
                PullError::Content(_)
                | PullError::Snapshot(_)
                | PullError::Images(_)
                | PullError::Worker { .. } => source.kind(),
                PullError::Unpack {
                    source:
                        e @ (UnpackError::Io { .. }
                        | UnpackError::TooLarge { .. }
                        | UnpackError::DiskReserve(_)),
                    ..
                } => e.kind(),
                PullError::Cancelled => Kind::Cancelled,
                _ => Kind::InvalidArgument,
            },
            ArchiveError::Io { .. } | ArchiveError::Spool(_) | ArchiveError::Worker(_) => {
                Kind::Internal
            }
            ArchiveError::SpoolTooLarge { .. } | ArchiveError::DiskReserve(_) => {
                Kind::ResourceExhausted
            }
            _ => Kind::InvalidArgument,
        }
    }
}

/// Where one regular file's bytes are inside the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entry {
    pub offset: u64,
    pub size: u64,
}

/// The regular files of an archive by normalised path (`blobs/sha256/<hex>`, no `./`).
#[derive(Debug)]
pub struct Entries {
    pub path: PathBuf,
    files: HashMap<String, Entry>,
}

impl Entries {
    /// Indexes the tarball at `path` without extracting anything.
    pub fn index(path: &Path) -> Result<Entries, ArchiveError> {
        let file = File::open(path).map_err(|source| ArchiveError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| ArchiveError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        let window = Rc::new(Cell::new(HEADER_WINDOW));
        let mut archive = tar::Archive::new(Windowed {
            file,
            left: window.clone(),
        });
        let mut files = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        let mut entries = archive.entries_with_seek().map_err(ArchiveError::Tar)?;
        loop {
            // Entry data is skipped by seeking: what is read is the next entry's headers.
            window.set(HEADER_WINDOW);
            let Some(entry) = entries.next() else { break };
            let entry = entry.map_err(|e| match window.get() {
                0 => ArchiveError::HeadersTooLarge,
                _ => ArchiveError::Tar(e),
            })?;
            if seen.len() >= MAX_ENTRIES {
                return Err(ArchiveError::TooManyEntries);
            }
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = normalise(&raw)?;
            if name.is_empty() {
                continue; // the archive's root directory
            }
            if !seen.insert(name.clone()) {
                return Err(ArchiveError::Duplicate { path: raw });
            }
            let kind = entry.header().entry_type();
            if !(kind.is_file() || kind.is_contiguous()) {
                continue; // directories, links, devices: never used
            }
            let size = entry.size();
            let offset = entry.raw_file_position();
            if offset.checked_add(size).is_none_or(|end| end > len) {
                return Err(ArchiveError::Truncated { path: raw, size });
            }
            files.insert(name, Entry { offset, size });
        }
        if seen.is_empty() {
            return Err(ArchiveError::Tar(io::Error::new(
                io::ErrorKind::InvalidData,
                "no entries",
            )));
        }
        Ok(Entries {
            path: path.to_path_buf(),
            files,
        })
    }

    /// The regular file at `name` (a path as an archive's JSON names it).
    pub fn get(&self, name: &str) -> Result<Entry, ArchiveError> {
        let missing = || ArchiveError::Missing {
            path: name.to_string(),
        };
        let key = normalise(name).map_err(|_| missing())?;
        self.files.get(&key).copied().ok_or_else(missing)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_ok()
    }

    /// Where a blob of an OCI layout lives.
    pub fn blob(&self, digest: &Digest) -> Result<Entry, ArchiveError> {
        self.get(&blob_path(digest))
    }

    /// Reads a whole small file (JSON documents), refusing anything over `limit` bytes.
    pub fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>, ArchiveError> {
        let entry = self.get(name)?;
        if entry.size > limit {
            return Err(ArchiveError::TooLarge {
                path: name.to_string(),
                size: entry.size,
                limit,
            });
        }
        let mut bytes = Vec::with_capacity(entry.size as usize);
        self.open(entry)?
            .read_to_end(&mut bytes)
            .map_err(|source| self.io(source))?;
        Ok(bytes)
    }

    /// Reads and parses a JSON document.
    pub fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, ArchiveError> {
        let bytes = self.read(name, MAX_JSON_BYTES)?;
        serde_json::from_slice(&bytes).map_err(|source| ArchiveError::Json {
            path: name.to_string(),
            source,
        })
    }

    /// A reader over exactly one entry's bytes.
    pub fn open(&self, entry: Entry) -> Result<io::Take<File>, ArchiveError> {
        let mut file = File::open(&self.path).map_err(|source| self.io(source))?;
        file.seek(SeekFrom::Start(entry.offset))
            .map_err(|source| self.io(source))?;
        Ok(file.take(entry.size))
    }

    fn io(&self, source: io::Error) -> ArchiveError {
        ArchiveError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// The archive file as the index reads it: at most the window's bytes between two refills, so
/// hostile headers cannot make the `tar` crate hold more than [`HEADER_WINDOW`] in memory.
struct Windowed {
    file: File,
    left: Rc<Cell<u64>>,
}

impl Read for Windowed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left.get();
        if left == 0 && !buf.is_empty() {
            return Err(io::Error::other("entry headers over the limit"));
        }
        let len = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..len])?;
        self.left.set(left - n as u64);
        Ok(n)
    }
}

impl Seek for Windowed {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

/// `blobs/sha256/<hex>`, where an OCI layout keeps a blob.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// A relative path without `.` components; absolute paths and `..` are refused.
fn normalise(path: &str) -> Result<String, ArchiveError> {
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::UnsafePath {
                    path: path.to_string(),
                });
            }
        }
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests;
