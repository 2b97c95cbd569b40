//! The layer directory as a tree of paths that can only be reached from beneath it: every
//! operation starts at a directory fd opened on `dest`, walks one component at a time with
//! `O_NOFOLLOW`, and creates or replaces the last component with an `*at` call that never follows
//! a symlink. Nothing a layer contains, nor a symlink planted or swapped in meanwhile, can send a
//! write outside `dest`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{self as rfs, AtFlags, Dev, FileType, Mode, OFlags, Timestamps};
use rustix::io::Errno;

use super::path::RelPath;

/// Why an operation on the tree was refused or failed.
#[derive(Debug)]
pub(crate) enum TreeError {
    /// A parent directory of the path is a symlink.
    ThroughSymlink,
    /// A parent directory of the path is not a directory.
    ThroughNonDir,
    /// The operation would replace the layer root with a non-directory.
    IsRoot,
    /// A hard link's target does not exist in the layer.
    NoTarget,
    /// A hard link's target is a directory.
    TargetIsDir,
    /// A hard link names itself as its target.
    SelfLink,
    /// The host refused or failed.
    Io(io::Error),
}

impl From<Errno> for TreeError {
    fn from(e: Errno) -> Self {
        TreeError::Io(e.into())
    }
}

impl From<io::Error> for TreeError {
    fn from(e: io::Error) -> Self {
        TreeError::Io(e)
    }
}

/// Directories made on the way to an entry get this mode; a later entry for the directory sets
/// its own.
const IMPLICIT_DIR_MODE: u32 = 0o755;

/// The layer directory being filled.
pub(crate) struct Tree {
    root: Rc<OwnedFd>,
    /// The directory used last, reused by the next entry in it or below it. Dropped whenever
    /// anything is removed, so it never names a directory that has been replaced.
    cache: Option<(RelPath, Rc<OwnedFd>)>,
    /// Directory times to set once nothing more is created inside them.
    deferred: BTreeMap<RelPath, Timestamps>,
    created: u64,
}

impl Tree {
    /// Opens the layer directory (empty), or a build step's upper dir (see `build::copy`).
    pub(crate) fn open(dest: &Path) -> io::Result<Self> {
        let root = rfs::open(
            dest,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            root: Rc::new(root),
            cache: None,
            deferred: BTreeMap::new(),
            created: 0,
        })
    }

    /// Filesystem entries created so far: files, directories (also those made implicitly),
    /// links, nodes and whiteouts.
    pub(super) fn created(&self) -> u64 {
        self.created
    }

    /// The directory at `path`, made (mode 0755, owned by the caller) where missing when `create`.
    pub(crate) fn dir(&mut self, path: &RelPath, create: bool) -> Result<Rc<OwnedFd>, TreeError> {
        if path.is_root() {
            return Ok(self.root.clone());
        }
        let (mut cur, skip) = match &self.cache {
            Some((cached, fd)) if cached == path => return Ok(fd.clone()),
            Some((cached, fd)) if cached.contains(path) => {
                (fd.clone(), cached.components().count())
            }
            _ => (self.root.clone(), 0),
        };
        for comp in path.components().skip(skip) {
            cur = Rc::new(self.step(&cur, comp, create)?);
        }
        self.cache = Some((path.clone(), cur.clone()));
        Ok(cur)
    }

    /// Opens the directory `name` inside `dir` without following a symlink.
    fn step(&mut self, dir: &OwnedFd, name: &[u8], create: bool) -> Result<OwnedFd, TreeError> {
        match open_dir(dir, name) {
            Err(Errno::NOENT) if create => {
                let made = match rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) => true,
                    Err(Errno::EXIST) => false,
                    Err(e) => return Err(e.into()),
                };
                let fd = open_dir(dir, name).map_err(|e| walk_error(dir, name, e))?;
                if made {
                    self.created += 1;
                    rfs::fchmod(&fd, Mode::from_raw_mode(IMPLICIT_DIR_MODE))?;
                }
                Ok(fd)
            }
            Err(e) => Err(walk_error(dir, name, e)),
            Ok(fd) => Ok(fd),
        }
    }

    /// The parent directory of a non-root path (made where missing) and the last component: also
    /// where an entry just created is reached by name to set its metadata.
    pub(super) fn parent<'p>(
        &mut self,
        path: &'p RelPath,
    ) -> Result<(Rc<OwnedFd>, &'p [u8]), TreeError> {
        let (parent, name) = path.split_last().ok_or(TreeError::IsRoot)?;
        Ok((self.dir(&parent, true)?, name))
    }

    /// Runs `make` to create the last component of `path`; if something is already there it is
    /// removed (a directory with all it holds) and `make` runs once more.
    fn create<T>(
        &mut self,
        path: &RelPath,
        make: impl Fn(&OwnedFd, &[u8]) -> Result<T, Errno>,
    ) -> Result<T, TreeError> {
        let (dir, name) = self.parent(path)?;
        let made = match make(&dir, name) {
            Err(Errno::EXIST) => {
                self.remove(&dir, name, path)?;
                make(&dir, name)?
            }
            other => other?,
        };
        self.created += 1;
        Ok(made)
    }

    /// Removes `name` (known as `path`) from `dir`, descending into it if it is a directory.
    fn remove(&mut self, dir: &OwnedFd, name: &[u8], path: &RelPath) -> Result<(), TreeError> {
        self.cache = None;
        self.deferred.retain(|dir, _| !path.contains(dir));
        remove_all(dir, name)?;
        Ok(())
    }

    /// Makes the directory `path`, or keeps the directory already there, and opens it. Anything
    /// else at `path` is replaced. The root is opened as it is.
    pub(crate) fn mkdir(&mut self, path: &RelPath) -> Result<OwnedFd, TreeError> {
        if path.is_root() {
            return Ok(self.root.try_clone()?);
        }
        let (dir, name) = self.parent(path)?;
        match rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => self.created += 1,
            Err(Errno::EXIST) => {
                let st = rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
                if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                    self.remove(&dir, name, path)?;
                    rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o700))?;
                    self.created += 1;
                }
            }
            Err(e) => return Err(e.into()),
        }
        Ok(open_dir(&dir, name)?)
    }

    /// Creates the regular file `path` (mode 0600 until the caller sets it), replacing anything.
    pub(crate) fn create_file(&mut self, path: &RelPath) -> Result<File, TreeError> {
        let fd = self.create(path, |dir, name| {
            rfs::openat(
                dir,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        })?;
        Ok(File::from(fd))
    }

    /// Creates the symlink `path` pointing at `target`, verbatim; it is never followed.
    pub(crate) fn symlink(&mut self, path: &RelPath, target: &[u8]) -> Result<(), TreeError> {
        self.create(path, |dir, name| rfs::symlinkat(target, dir, name))
    }

    /// Creates a device node or FIFO (mode 0600 until the caller sets it).
    pub(super) fn mknod(
        &mut self,
        path: &RelPath,
        kind: FileType,
        dev: Dev,
    ) -> Result<(), TreeError> {
        self.create(path, |dir, name| {
            rfs::mknodat(dir, name, kind, Mode::from_raw_mode(0o600), dev)
        })
    }

    /// Makes `path` a second name of the existing non-directory `target`. A symlink target is
    /// linked itself, never followed.
    pub(super) fn hardlink(&mut self, target: &RelPath, path: &RelPath) -> Result<(), TreeError> {
        if target == path {
            return Err(TreeError::SelfLink);
        }
        let (tparent, tname) = target.split_last().ok_or(TreeError::TargetIsDir)?;
        let tdir = match self.dir(&tparent, false) {
            Err(TreeError::Io(e)) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                return Err(TreeError::NoTarget);
            }
            other => other?,
        };
        let st = match rfs::statat(&*tdir, tname, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return Err(TreeError::NoTarget),
            other => other?,
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Err(TreeError::TargetIsDir);
        }
        match self.create(path, |dir, name| {
            rfs::linkat(&*tdir, tname, dir, name, AtFlags::empty())
        }) {
            // Replacing `path` removed the target (it lay inside `path`).
            Err(TreeError::Io(e)) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                Err(TreeError::NoTarget)
            }
            other => other,
        }
    }

    /// Opens `path` itself with `O_PATH`, whatever it is, to set its metadata.
    pub(crate) fn node(&mut self, path: &RelPath) -> Result<OwnedFd, TreeError> {
        let (dir, name) = self.parent(path)?;
        Ok(rfs::openat(
            &*dir,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }

    /// Remembers the times of directory `path`, set by [`Tree::finish`].
    pub(super) fn defer_times(&mut self, path: &RelPath, times: Timestamps) {
        self.deferred.insert(path.clone(), times);
    }

    /// Sets the deferred directory times, deepest first (a path sorts before those below it).
    pub(super) fn finish(&mut self) -> Result<(), (RelPath, TreeError)> {
        let deferred = std::mem::take(&mut self.deferred);
        for (path, times) in deferred.iter().rev() {
            let fd = self.dir(path, false).map_err(|e| (path.clone(), e))?;
            rfs::futimens(&*fd, times).map_err(|e| (path.clone(), e.into()))?;
        }
        Ok(())
    }
}

fn open_dir(dir: &OwnedFd, name: &[u8]) -> Result<OwnedFd, Errno> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Tells why `name` in `dir` could not be walked through.
fn walk_error(dir: &OwnedFd, name: &[u8], e: Errno) -> TreeError {
    match e {
        Errno::LOOP => TreeError::ThroughSymlink,
        Errno::NOTDIR => match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                TreeError::ThroughSymlink
            }
            _ => TreeError::ThroughNonDir,
        },
        e => e.into(),
    }
}

/// Removes `name` from `dir`; a directory is emptied first, without following any symlink.
fn remove_all(dir: &OwnedFd, name: &[u8]) -> Result<(), Errno> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Err(Errno::ISDIR) => {}
        other => return other,
    }
    let sub = open_dir(dir, name)?;
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(&sub)? {
        let entry = entry?;
        let child = entry.file_name().to_bytes();
        if child != b"." && child != b".." {
            names.push(child.to_vec());
        }
    }
    for child in names {
        remove_all(&sub, &child)?;
    }
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// The `/proc/self/fd` path of an fd: following it reaches exactly the inode the fd holds, even
/// a symlink or device opened with `O_PATH`, which the `f*` calls refuse.
pub(super) fn proc_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}
