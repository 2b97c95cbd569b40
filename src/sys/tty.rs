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

/// Sets the window size of the terminal open on `fd` (`ioctl(TIOCSWINSZ)`); the foreground
/// process group gets SIGWINCH.
pub fn set_window_size(fd: BorrowedFd<'_>, cols: u16, rows: u16) -> Result<(), Errno> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, which points at a live local
    // for the whole call; `fd` is a valid borrowed descriptor.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    Errno::result(rc).map(drop)
}

/// Unlocks the pty master `master` (`ioctl(TIOCSPTLCK, 0)`), so its slave may be opened.
pub fn unlock_pty(master: BorrowedFd<'_>) -> Result<(), Errno> {
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, which points at a live local for the
    // whole call; `master` is a valid borrowed descriptor.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    Errno::result(rc).map(drop)
}

/// Opens the slave of pty master `master` without a path lookup (`ioctl(TIOCGPTPEER)`), read-write,
/// close-on-exec, not becoming the caller's controlling terminal.
pub fn open_pty_peer(master: BorrowedFd<'_>) -> Result<std::os::fd::OwnedFd, Errno> {
    use std::os::fd::FromRawFd;
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags as an integer argument and reads no memory;
    // `master` is a valid borrowed descriptor.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    let fd = Errno::result(fd)?;
    // SAFETY: on success the ioctl returned a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// The window size (columns, rows) of the terminal open on `fd` (`ioctl(TIOCGWINSZ)`).
pub fn window_size(fd: BorrowedFd<'_>) -> Result<(u16, u16), Errno> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points at a live local
    // for the whole call; `fd` is a valid borrowed descriptor.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    Errno::result(rc).map(|_| (size.ws_col, size.ws_row))
}
