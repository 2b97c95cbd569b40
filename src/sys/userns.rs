//! Starting a program in a new user namespace (whose maps the caller then writes from outside),
//! and the check that such a namespace can bind the host's `/sys` read-only.

use std::ffi::CString;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};
use std::ptr;

use super::mount::{
    MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, set_attr_recursive,
};

/// Spawns `cmd` after `unshare(CLONE_NEWUSER)` in the child: the program runs in a new user
/// namespace without mappings until the caller writes `/proc/<pid>/uid_map` and `gid_map`.
pub fn spawn_in_new_userns(cmd: &mut Command) -> std::io::Result<Child> {
    // SAFETY: the hook runs in the forked child before exec and only calls `unshare(2)`, which is
    // async-signal-safe: it allocates nothing and takes no lock.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd.spawn()
}

/// Spawns `cmd` in a new user namespace with a mount namespace of its own (private, so nothing
/// propagates back), after binding the host's `/sys` recursively onto `target` and making every
/// mount of that tree read-only, nosuid, nodev and noexec: what the executor does for a
/// host-network pod with its own user namespace. An error is the first step that failed.
pub fn spawn_with_host_sys_bound(cmd: &mut Command, target: &Path) -> std::io::Result<Child> {
    let target = CString::new(target.as_os_str().as_bytes())?;
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    // SAFETY: the hook runs in the forked child before exec and only makes system calls
    // (`unshare`, `mount`, `open`, `mount_setattr`) on C strings built before the fork: it
    // allocates nothing and takes no lock, so it is async-signal-safe. The descriptor it opens
    // is close-on-exec and owned by the child alone.
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: libc::c_int| match rc {
                -1 => Err(std::io::Error::last_os_error()),
                _ => Ok(()),
            };
            check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS))?;
            let flags = libc::MS_REC | libc::MS_PRIVATE;
            check(libc::mount(
                ptr::null(),
                c"/".as_ptr(),
                ptr::null(),
                flags,
                ptr::null(),
            ))?;
            let bind = libc::MS_BIND | libc::MS_REC;
            let sys = c"/sys".as_ptr();
            check(libc::mount(
                sys,
                target.as_ptr(),
                ptr::null(),
                bind,
                ptr::null(),
            ))?;
            let fd = libc::open(target.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            check(fd)?;
            set_attr_recursive(BorrowedFd::borrow_raw(fd), attrs, 0).map_err(std::io::Error::from)
        });
    }
    cmd.spawn()
}
