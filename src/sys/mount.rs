//! `mount_setattr(2)`: changes mount attributes of a whole mount tree at once.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

/// `MOUNT_ATTR_RDONLY`.
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
/// `MOUNT_ATTR_NOSUID`.
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
/// `MOUNT_ATTR_NODEV`.
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
/// `MOUNT_ATTR_NOEXEC`.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;

/// The kernel's `struct mount_attr` (version 0, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets `set` and clears `clear` (`MOUNT_ATTR_*` bits) on the mount at `mount_fd` and, recursively,
/// on every mount below it (`AT_RECURSIVE | AT_EMPTY_PATH`). Needs Linux 5.12; older kernels
/// answer `ENOSYS`.
pub fn set_attr_recursive(mount_fd: BorrowedFd<'_>, set: u64, clear: u64) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a valid NUL-terminated empty string and `attr` is a live, correctly laid
    // out `struct mount_attr` whose size is passed; the kernel only reads both during the call.
    // `mount_fd` is a valid borrowed descriptor.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount_fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}

/// `MOUNT_ATTR_IDMAP`.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// Makes the detached mount `mount_fd` (from `open_tree(OPEN_TREE_CLONE)`) an id-mapped mount
/// with the mappings of the user namespace `userns_fd`: that one mount, or with `recursive` every
/// mount of the detached tree. Needs Linux 5.12 and a filesystem that supports id-mapped mounts
/// (`EINVAL` otherwise).
pub fn set_idmap(
    mount_fd: BorrowedFd<'_>,
    userns_fd: BorrowedFd<'_>,
    recursive: bool,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: u64::try_from(userns_fd.as_raw_fd()).map_err(|_| Errno::EBADF)?,
    };
    // SAFETY: as in `set_attr_recursive`: a valid empty C string, a live `struct mount_attr` of
    // the given size that the kernel only reads during the call, and two valid borrowed
    // descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount_fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 },
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(rc).map(drop)
}
