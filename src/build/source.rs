//! COPY/ADD sources opened inside their root (the build context, or another stage's mounted
//! filesystem) with `openat2(RESOLVE_IN_ROOT)` and walked by directory descriptor: what a copy
//! reads is what it resolved, even when someone who can write in the context swaps one of its
//! directories for a symlink to the host while the copy runs.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Dir, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use super::BuildError;

/// Times an `openat2` that a concurrent rename interrupted (`EAGAIN`) is retried.
const RETRIES: usize = 16;

/// A file, directory or symlink of a COPY source, held by an `O_PATH` descriptor: nothing is
/// opened for reading until [`Source::open_file`], so a device node is never opened.
pub struct Source {
    fd: OwnedFd,
    /// Its host path when it was opened: for messages and `.dockerignore`.
    pub path: PathBuf,
    pub stat: Stat,
}

impl Source {
    /// The root-relative `rel` inside `root`, resolved as if `root` were `/` (`..` and absolute
    /// symlinks stay inside); a symlink as the last component is followed, as Docker follows a
    /// named source.
    pub fn open_in(root: &Path, rel: &str) -> Result<Source, BuildError> {
        let err = |e: Errno| BuildError::Source(format!("{rel}: {}", std::io::Error::from(e)));
        let flags = OFlags::PATH | OFlags::CLOEXEC;
        let dir = rfs::open(root, flags | OFlags::DIRECTORY, Mode::empty()).map_err(err)?;
        let inside = match rel.trim_matches('/') {
            "" => ".",
            inside => inside,
        };
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let mut tries = 0;
        let fd = loop {
            match rfs::openat2(&dir, inside, flags, Mode::empty(), resolve) {
                Err(Errno::AGAIN) if tries < RETRIES => tries += 1,
                other => break other.map_err(err)?,
            }
        };
        let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap_or_else(|_| root.join(inside));
        let stat = rfs::fstat(&fd).map_err(err)?;
        Ok(Source { fd, path, stat })
    }

    fn err(&self) -> impl Fn(Errno) -> BuildError + '_ {
        |e| {
            BuildError::Copy(format!(
                "{}: {}",
                self.path.display(),
                std::io::Error::from(e)
            ))
        }
    }

    pub fn kind(&self) -> FileType {
        FileType::from_raw_mode(self.stat.st_mode)
    }

    pub fn is_dir(&self) -> bool {
        self.kind() == FileType::Directory
    }

    /// This directory opened for reading, and its entries' names, sorted.
    pub fn entries(&self) -> Result<(OwnedFd, Vec<Vec<u8>>), BuildError> {
        let dir = rfs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(self.err())?;
        let mut names = Vec::new();
        for entry in Dir::read_from(&dir).map_err(self.err())? {
            let name = entry.map_err(self.err())?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(name);
            }
        }
        names.sort();
        Ok((dir, names))
    }

    /// The entry `name` of this directory (`dir`, from [`Source::entries`]), never followed
    /// if it is a symlink.
    pub fn child(&self, dir: &OwnedFd, name: &[u8]) -> Result<Source, BuildError> {
        let path = self.path.join(OsStr::from_bytes(name));
        let err =
            |e: Errno| BuildError::Copy(format!("{}: {}", path.display(), std::io::Error::from(e)));
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(dir, name, flags, Mode::empty()).map_err(err)?;
        let stat = rfs::fstat(&fd).map_err(err)?;
        Ok(Source { fd, path, stat })
    }

    /// This symlink's target.
    pub fn link_target(&self) -> Result<Vec<u8>, BuildError> {
        let target = rfs::readlinkat(&self.fd, "", Vec::new()).map_err(self.err())?;
        Ok(target.into_bytes())
    }

    /// This regular file opened for reading: the same inode, reopened through its descriptor.
    pub fn open_file(&self) -> Result<File, BuildError> {
        if self.kind() != FileType::RegularFile {
            return Err(BuildError::Copy(format!(
                "{}: only files, directories and symlinks can be copied",
                self.path.display()
            )));
        }
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        let fd = rfs::open(path.as_str(), flags, Mode::empty()).map_err(self.err())?;
        Ok(File::from(fd))
    }
}
