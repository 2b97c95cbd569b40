//! Starting a program in a new user namespace (whose maps the caller then writes from outside).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

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
