//! Extracts one image layer (an already decompressed tar stream) into an empty directory that
//! becomes an overlayfs lower dir, converting Docker/OCI whiteouts to overlayfs form.
//!
//! The stream is read once, front to back, to its very end (the caller hashes it for the diffID),
//! and never buffered whole: file data goes straight to disk. A layer is untrusted input, so:
//! every write happens beneath `dest` through directory fds and `*at` calls that never follow a
//! symlink (module `tree`); an entry below a symlink is refused, even one pointing inside the
//! layer, and so is any name with `..` (a leading `/` is dropped, as Docker does); symlink
//! targets are stored verbatim and never followed; hard links must name an earlier entry; the
//! bytes read and written are capped by [`Limits`]; the headers in front of one entry are capped
//! too, because the `tar` crate holds them in memory; and `trusted.overlay.*` attributes in the
//! layer are dropped, since only whiteouts may steer overlayfs.
//!
//! Whiteouts: `dir/.wh.NAME` becomes the character device 0:0 `dir/NAME`, and `dir/.wh..wh..opq`
//! sets `trusted.overlay.opaque=y` on `dir`. Other `.wh..wh.*` names are skipped.

mod meta;
mod meter;
pub(crate) mod path;
mod space;
pub(crate) mod tree;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod overlay_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testtar;

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FileType, XattrFlags};
use tar::EntryType;

use crate::error::{Classify, Kind};
use meta::{Meta, MetaError};
use meter::{HEADER_WINDOW, Meter, Trip};
use path::{Name, RelPath};
use tree::{Tree, TreeError};

pub use space::DiskReserve;
use space::{ENTRY_COST, Free, Space};

/// Bounds on what one layer may cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Most bytes of (decompressed) tar read from the stream, and most bytes of file content
    /// written; past either the unpack fails with [`UnpackError::TooLarge`].
    pub max_bytes: u64,
    /// Free space the unpack leaves on the destination's filesystem; past it the unpack fails
    /// with [`UnpackError::DiskReserve`].
    pub disk_reserve: DiskReserve,
}

impl Limits {
    /// At most `max_bytes`, and no disk reserve.
    pub fn bytes(max_bytes: u64) -> Limits {
        Limits {
            max_bytes,
            disk_reserve: DiskReserve::NONE,
        }
    }
}

/// What an unpack produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    /// Sum of the sizes of the regular files written.
    pub bytes: u64,
    /// Filesystem entries created: files, directories (also those made for an entry's missing
    /// parents), symlinks, hard links, devices, FIFOs and whiteouts.
    pub inodes: u64,
}

/// Why a layer could not be unpacked. The caller removes the half-filled directory.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer tries something no honest layer does (climb out with `..`, write through a
    /// symlink, link to something outside, ...). Nothing was written outside the directory.
    #[error("layer entry {path:?}: refused: {reason}")]
    Hostile { path: PathBuf, reason: String },
    /// The layer is bigger than [`Limits::max_bytes`].
    #[error("layer is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Writing on would take the filesystem's free space below the disk reserve.
    #[error("unpacking stopped: {0}")]
    DiskReserve(String),
    /// The headers in front of one entry are bigger than any honest layer needs.
    #[error("layer entry headers are larger than the limit of {limit} bytes")]
    HeadersTooLarge { limit: u64 },
    /// The host failed while creating an entry.
    #[error("layer entry {path:?}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The stream failed or is not a valid tar.
    #[error("reading layer tar: {0}")]
    Tar(#[source] io::Error),
}

impl Classify for UnpackError {
    fn kind(&self) -> Kind {
        match self {
            UnpackError::Hostile { .. } | UnpackError::HeadersTooLarge { .. } => {
                Kind::InvalidArgument
            }
            UnpackError::TooLarge { .. } | UnpackError::DiskReserve(_) => Kind::ResourceExhausted,
            UnpackError::Io { .. } | UnpackError::Tar(_) => Kind::Internal,
        }
    }
}

/// Unpacks the decompressed layer `tar` into the empty directory `dest`, reading the stream to
/// its end. Runs on a blocking thread; never seeks and never holds a whole file in memory.
pub fn unpack_layer<R: Read>(
    tar: R,
    dest: &Path,
    limits: &Limits,
) -> Result<Unpacked, UnpackError> {
    let meter = Meter::new(limits.max_bytes);
    let io_at_dest = |source| UnpackError::Io {
        path: dest.to_path_buf(),
        source,
    };
    let tree = Tree::open(dest).map_err(io_at_dest)?;
    let dest_owned = dest.to_path_buf();
    let query: FreeQuery = Box::new(move || space::statvfs(&dest_owned));
    let space = Space::new(query, limits.disk_reserve).map_err(io_at_dest)?;
    let mut x = Extractor {
        tree,
        space,
        meter: &meter,
        limit: limits.max_bytes,
        bytes: 0,
        buf: vec![0; 128 * 1024],
    };
    let mut archive = tar::Archive::new(meter.reader(tar));
    let mut entries = archive.entries().map_err(|e| x.read_error(e))?;
    while let Some(entry) = meter.headers(|| entries.next()) {
        let mut entry = entry.map_err(|e| x.read_error(e))?;
        x.entry(&mut entry)?;
        // Whatever the entry carried and was not used (data on a directory, say) is read now,
        // so that the next search for headers reads headers only.
        io::copy(&mut entry, &mut io::sink()).map_err(|e| x.read_error(e))?;
    }
    x.tree
        .finish()
        .map_err(|(path, e)| tree_error(&display_path(path.as_bytes()), e))?;
    // The end-of-archive blocks and any padding after them are part of the hashed stream.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|e| x.read_error(e))?;
    Ok(Unpacked {
        bytes: x.bytes,
        inodes: x.tree.created(),
    })
}

type FreeQuery = Box<dyn FnMut() -> io::Result<Free>>;

/// The state of one unpack between entries.
struct Extractor<'m> {
    tree: Tree,
    space: Space<FreeQuery>,
    meter: &'m Meter,
    limit: u64,
    /// File content written so far.
    bytes: u64,
    buf: Vec<u8>,
}

impl Extractor<'_> {
    /// Creates what one entry describes.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let at = display_path(&raw);
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            // Global PAX records carry nothing berth applies (no per-file metadata).
            return Ok(());
        }
        let path = RelPath::parse(&raw).map_err(|reason| hostile(&at, reason))?;
        self.take_space(ENTRY_COST)?;
        if self.whiteout(&path, &at)? {
            return Ok(());
        }
        let meta = Meta::read(entry).map_err(|e| match e {
            MetaError::Hostile(reason) => hostile(&at, reason),
            MetaError::Read(e) => UnpackError::Tar(e),
        })?;
        match kind {
            // Old (v7) archives mark directories with a trailing slash only.
            EntryType::Regular if raw.ends_with(b"/") => self.dir(&path, &meta, &at),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, &path, &meta, &at)
            }
            EntryType::Directory => self.dir(&path, &meta, &at),
            EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                self.symlink(&path, &target, &meta, &at)
            }
            EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default();
                let target = RelPath::parse(&target).map_err(|reason| {
                    let target = display_path(&target);
                    hostile(&at, format!("hard link target {target:?}: {reason}"))
                })?;
                self.tree
                    .hardlink(&target, &path)
                    .map_err(|e| tree_error(&at, e))
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (file_type, dev) = match kind {
                    EntryType::Char => (FileType::CharacterDevice, device(entry)?),
                    EntryType::Block => (FileType::BlockDevice, device(entry)?),
                    _ => (FileType::Fifo, 0),
                };
                self.tree
                    .mknod(&path, file_type, dev)
                    .and_then(|()| self.tree.node(&path))
                    .map_err(|e| tree_error(&at, e))
                    .and_then(|node| meta.apply_node(&node, false).map_err(io_error(&at)))
            }
            other => {
                let byte = char::from(other.as_byte());
                Err(hostile(&at, format!("unsupported entry type {byte:?}")))
            }
        }
    }

    /// Handles a whiteout name; true when the entry was one (and is done with).
    fn whiteout(&mut self, path: &RelPath, at: &Path) -> Result<bool, UnpackError> {
        let Some((parent, last)) = path.split_last() else {
            return Ok(false);
        };
        match Name::classify(last).map_err(|reason| hostile(at, reason))? {
            Name::Plain => Ok(false),
            Name::Reserved => Ok(true),
            Name::Opaque => {
                let dir = self
                    .tree
                    .dir(&parent, true)
                    .map_err(|e| tree_error(at, e))?;
                rfs::fsetxattr(&*dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(|e| io_error(at)(e.into()))?;
                Ok(true)
            }
            Name::Whiteout(name) => {
                let dev = rfs::makedev(0, 0);
                self.tree
                    .mknod(&parent.join(name), FileType::CharacterDevice, dev)
                    .map_err(|e| tree_error(at, e))?;
                Ok(true)
            }
        }
    }

    /// Makes or updates a directory; its times are set at the end.
    fn dir(&mut self, path: &RelPath, meta: &Meta, at: &Path) -> Result<(), UnpackError> {
        let fd = self.tree.mkdir(path).map_err(|e| tree_error(at, e))?;
        meta.apply_fd(&fd, false).map_err(io_error(at))?;
        self.tree.defer_times(path, meta.times.clone());
        Ok(())
    }

    /// Makes a symlink pointing at `target` verbatim (it is never followed) and sets its owner,
    /// times and extended attributes.
    fn symlink(
        &mut self,
        path: &RelPath,
        target: &[u8],
        meta: &Meta,
        at: &Path,
    ) -> Result<(), UnpackError> {
        if target.is_empty() || target.contains(&0) {
            return Err(hostile(at, "symlink target is empty or contains NUL"));
        }
        self.tree
            .symlink(path, target)
            .map_err(|e| tree_error(at, e))?;
        let (dir, name) = self.tree.parent(path).map_err(|e| tree_error(at, e))?;
        if meta.apply_symlink_at(&dir, name).map_err(io_error(at))? {
            return Ok(());
        }
        let node = self.tree.node(path).map_err(|e| tree_error(at, e))?;
        meta.apply_node(&node, true).map_err(io_error(at))
    }

    /// Writes a regular file, streaming its content and counting it against the limit as it goes
    /// (a sparse entry can expand far beyond the bytes it occupies in the stream).
    fn file(
        &mut self,
        entry: &mut impl Read,
        path: &RelPath,
        meta: &Meta,
        at: &Path,
    ) -> Result<(), UnpackError> {
        let mut file = self.tree.create_file(path).map_err(|e| tree_error(at, e))?;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error(e)),
            };
            self.bytes += n as u64;
            if self.bytes > self.limit {
                return Err(UnpackError::TooLarge { limit: self.limit });
            }
            self.take_space(n as u64)?;
            file.write_all(&self.buf[..n]).map_err(io_error(at))?;
        }
        meta.apply_fd(&file.into(), true).map_err(io_error(at))
    }

    fn take_space(&mut self, n: u64) -> Result<(), UnpackError> {
        self.space
            .take(n)
            .map_err(|e| UnpackError::DiskReserve(e.message))
    }

    /// Names a failure to read the stream: a limit the meter enforced, or a broken stream.
    fn read_error(&self, e: io::Error) -> UnpackError {
        match self.meter.tripped() {
            Some(Trip::Layer) => UnpackError::TooLarge { limit: self.limit },
            Some(Trip::Headers) => UnpackError::HeadersTooLarge {
                limit: HEADER_WINDOW,
            },
            None => UnpackError::Tar(e),
        }
    }
}

/// The attribute that makes an overlayfs directory hide the same directory in lower layers.
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// The device number of a char or block entry.
fn device<R: Read>(entry: &tar::Entry<'_, R>) -> Result<rfs::Dev, UnpackError> {
    let h = entry.header();
    let major = h.device_major().map_err(UnpackError::Tar)?.unwrap_or(0);
    let minor = h.device_minor().map_err(UnpackError::Tar)?.unwrap_or(0);
    Ok(rfs::makedev(major, minor))
}

fn hostile(at: &Path, reason: impl Into<String>) -> UnpackError {
    UnpackError::Hostile {
        path: at.to_path_buf(),
        reason: reason.into(),
    }
}

fn io_error(at: &Path) -> impl Fn(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: at.to_path_buf(),
        source,
    }
}

fn tree_error(at: &Path, e: TreeError) -> UnpackError {
    let reason = match e {
        TreeError::ThroughSymlink => "a parent directory is a symlink",
        TreeError::ThroughNonDir => "a parent directory is not a directory",
        TreeError::IsRoot => "it would replace the layer root",
        TreeError::NoTarget => "hard link target does not exist in the layer",
        TreeError::TargetIsDir => "hard link target is a directory",
        TreeError::SelfLink => "hard link to itself",
        TreeError::Io(source) => return io_error(at)(source),
    };
    hostile(at, reason)
}

/// An archive name as errors show it: the raw bytes, whatever they are.
fn display_path(raw: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(raw.to_vec()))
}
