//! Terminal ioctls that `nix` does not wrap.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

/// Makes the terminal open on `fd` the controlling terminal of the calling process
/// (`ioctl(TIOCSCTTY, 0)`). The caller must be a session leader without a controlling terminal.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal the terminal from another
    // session) and reads no memory; `fd` is a valid borrowed descriptor for the whole call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(rc).map(drop)
}
