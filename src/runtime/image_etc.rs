//! Reading the image's `/etc/passwd` and `/etc/group` from a container's rootfs without trusting
//! them: resolved inside the rootfs (no symlink or `..` leaves it), regular files only (a FIFO
//! would block, a device could stream forever or act on open), at most [`MAX_ETC_FILE`] bytes,
//! and on a blocking thread rather than an async worker.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags, fstat, openat2};

use super::{Result, RuntimeError};

/// The largest `/etc/passwd` or `/etc/group` read: far above any real image's.
pub const MAX_ETC_FILE: u64 = 1024 * 1024;

/// The rootfs's `/etc/passwd` and `/etc/group`, each empty when the image has none.
pub async fn passwd_and_group(rootfs: &Path) -> Result<(String, String)> {
    let rootfs: PathBuf = rootfs.to_path_buf();
    tokio::task::spawn_blocking(move || {
        Ok((
            read_in_root(&rootfs, "etc/passwd")?,
            read_in_root(&rootfs, "etc/group")?,
        ))
    })
    .await
    .map_err(|e| RuntimeError::Task(format!("read the image's /etc/passwd: {e}")))?
}

/// Reads `path` (relative) of `rootfs` as text, resolving every symlink inside `rootfs`. A
/// missing file (or a missing rootfs) reads as empty; anything but a regular file of at most
/// [`MAX_ETC_FILE`] bytes is `FailedPrecondition` naming it.
pub fn read_in_root(rootfs: &Path, path: &str) -> Result<String> {
    let refuse = |why: String| RuntimeError::ImageFile {
        path: path.to_string(),
        why,
    };
    let Ok(root) = std::fs::File::open(rootfs) else {
        return Ok(String::new());
    };
    // O_PATH opens nothing: a FIFO does not block and a device's driver is not called.
    let located = match openat2(
        &root,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(String::new()),
        Err(e) => return Err(refuse(format!("cannot resolve it: {e}"))),
    };
    let stat = fstat(&located).map_err(|e| refuse(format!("stat: {e}")))?;
    let kind = FileType::from_raw_mode(stat.st_mode);
    if kind != FileType::RegularFile {
        return Err(refuse(format!(
            "is a {}, not a regular file",
            describe(kind)
        )));
    }
    let size = stat.st_size as u64;
    if size > MAX_ETC_FILE {
        return Err(refuse(format!(
            "{size} bytes is larger than the {MAX_ETC_FILE}-byte limit"
        )));
    }
    // Reopen the very inode found for reading; it is known to be a regular file.
    let reopened = rustix::fs::open(
        format!("/proc/self/fd/{}", located.as_raw_fd()),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| refuse(format!("open: {e}")))?;
    let mut bytes = Vec::with_capacity(size as usize);
    std::fs::File::from(reopened)
        .take(MAX_ETC_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("read: {e}")))?;
    if bytes.len() as u64 > MAX_ETC_FILE {
        return Err(refuse(format!(
            "grew past the {MAX_ETC_FILE}-byte limit while read"
        )));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn describe(kind: FileType) -> &'static str {
    match kind {
        FileType::Fifo => "FIFO",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Socket => "socket",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        _ => "special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        (dir, root)
    }

    #[test]
    fn symlinks_resolve_inside_the_rootfs() {
        let (dir, root) = root();
        std::fs::write(dir.path().join("secret"), "host").unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("etc/passwd")).unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
        assert_eq!(read_in_root(&root, "etc/passwd").unwrap(), "");
        std::os::unix::fs::symlink("/etc/group", root.join("etc/group2")).unwrap();
        assert_eq!(read_in_root(&root, "etc/group2").unwrap(), "root:x:0:\n");
        assert_eq!(read_in_root(&root, "etc/missing").unwrap(), "");
        assert_eq!(
            read_in_root(&dir.path().join("nope"), "etc/passwd").unwrap(),
            ""
        );
    }

    #[test]
    fn special_and_oversized_files_are_refused() {
        let (_dir, root) = root();
        nix::unistd::mkfifo(&root.join("etc/passwd"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = read_in_root(&root, "etc/passwd").unwrap_err().to_string();
        assert_eq!(err, "image file /etc/passwd: is a FIFO, not a regular file");
        std::fs::create_dir(root.join("etc/group")).unwrap();
        let err = read_in_root(&root, "etc/group").unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let big = std::fs::File::create(root.join("etc/big")).unwrap();
        big.set_len(MAX_ETC_FILE + 1).unwrap();
        let err = read_in_root(&root, "etc/big").unwrap_err().to_string();
        assert!(err.contains("larger than the 1048576-byte limit"), "{err}");
    }
}
