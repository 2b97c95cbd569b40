//! Path resolution inside the container's root filesystem before `pivot_root`: every lookup is
//! an `openat2(RESOLVE_IN_ROOT)` relative to the rootfs, so a symlink in the image (absolute or
//! with `..`) can never lead a mount, a device node or a directory outside the rootfs.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{Mode, mkdirat};

use super::error::{Context, StepError};

/// How many symlinks [`Root::mkdir_all`] follows before giving up (like the kernel's limit).
const MAX_LINKS: usize = 40;

/// The container's root directory, held open.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// `/proc/self/fd/N` for `fd`: a path that `mount(2)` and friends resolve to exactly the object
/// the descriptor refers to, without walking any path again.
pub(crate) fn proc_fd_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// `dest` made relative (leading `/` removed), for resolution under the root.
fn relative(dest: &Path) -> PathBuf {
    dest.components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect()
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

impl Root {
    /// Opens the root directory at `path` (already mounted).
    pub fn open(path: &Path) -> Result<Root, StepError> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open rootfs {}", path.display()))?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The root directory's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Where the root is on the host, for messages.
    pub fn display(&self, dest: &Path) -> String {
        self.path.join(relative(dest)).display().to_string()
    }

    /// Opens `dest` (absolute in the container) as an `O_PATH` descriptor, symlinks resolved
    /// inside the root.
    pub fn open_path(&self, dest: &Path) -> Result<OwnedFd, Errno> {
        let rel = relative(dest);
        let rel = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel
        };
        openat2(self.fd.as_fd(), &rel, how(OFlag::O_PATH))
    }

    /// Creates directory `dest` and its missing parents (mode 0755), returning it open. A
    /// dangling symlink on the way is followed inside the root and its target created.
    pub fn mkdir_all(&self, dest: &Path) -> Result<OwnedFd, StepError> {
        self.mkdir_all_within(dest, 0)
    }

    fn mkdir_all_within(&self, dest: &Path, depth: usize) -> Result<OwnedFd, StepError> {
        let open_err = |p: &Path, e| StepError::new(format!("open {}", self.display(p)), e);
        if depth > MAX_LINKS {
            return Err(open_err(dest, Errno::ELOOP));
        }
        let mut prefix = PathBuf::new();
        let mut current = self.open_path(&prefix).ctx(|| "open rootfs")?;
        for component in relative(dest).components() {
            let parent = prefix.clone();
            prefix.push(component);
            current = match self.open_path(&prefix) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    let name = component.as_os_str();
                    match mkdirat(current.as_fd(), name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) => self.open_path(&prefix).map_err(|e| open_err(&prefix, e))?,
                        Err(Errno::EEXIST) => {
                            // A dangling symlink: create its target, resolved inside the root.
                            let target = readlinkat(current.as_fd(), name)
                                .map_err(|e| open_err(&prefix, e))?;
                            let target = Path::new("/").join(&parent).join(target);
                            self.mkdir_all_within(&target, depth + 1)?;
                            self.open_path(&prefix).map_err(|e| open_err(&prefix, e))?
                        }
                        Err(e) => {
                            let what = format!("mkdir {}", self.display(&prefix));
                            return Err(StepError::new(what, e));
                        }
                    }
                }
                Err(e) => return Err(open_err(&prefix, e)),
            };
        }
        Ok(current)
    }

    /// Splits `dest` into its (created) parent directory and final name.
    pub fn parent_of(&self, dest: &Path) -> Result<(OwnedFd, PathBuf), StepError> {
        let rel = relative(dest);
        let name = rel
            .file_name()
            .ok_or_else(|| StepError::new(format!("resolve {}", dest.display()), "no file name"))?;
        let parent = self.mkdir_all(rel.parent().unwrap_or(Path::new("")))?;
        Ok((parent, PathBuf::from(name)))
    }

    /// Makes sure `dest` exists, as a directory when `dir`, else as a file (created empty), and
    /// returns it open. An existing object of either kind is kept.
    pub fn ensure(&self, dest: &Path, dir: bool) -> Result<OwnedFd, StepError> {
        if dir {
            return self.mkdir_all(dest);
        }
        match self.open_path(dest) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(StepError::new(format!("open {}", self.display(dest)), e)),
        }
        let (parent, name) = self.parent_of(dest)?;
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(
            parent.as_fd(),
            &name,
            flags | OFlag::O_WRONLY,
            Mode::from_bits_truncate(0o644),
        ) {
            Ok(_) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(StepError::new(format!("create {}", self.display(dest)), e)),
        }
        self.open_path(dest)
            .ctx(|| format!("open {}", self.display(dest)))
    }
}
