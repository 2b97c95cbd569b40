//! Descriptor-table operations over ranges of descriptors, which cannot be expressed with
//! `OwnedFd`/`BorrowedFd` because the descriptors are not known individually.

use nix::errno::Errno;

/// Sets close-on-exec on every descriptor numbered `first` or higher (`close_range` with
/// `CLOSE_RANGE_CLOEXEC`, Linux 5.11+), so that nothing but stdio leaks through the next `execve`.
pub fn set_cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing; it only flags descriptors, so
    // no OwnedFd anywhere in the process is invalidated. It takes plain integers and no pointers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(rc).map(drop)
}

/// Closes every descriptor from `first` to `last` inclusive (`close_range`, Linux 5.9+). For a
/// process that is about to hold only what it opens afterwards (the pause process): the caller
/// must own nothing in the range that is still in use as an `OwnedFd`.
pub fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: plain integers, no pointers. Closing descriptors that Rust objects own would make
    // those objects refer to freed numbers; the callers close only inherited descriptors no
    // object owns (and stdio, whose std handles tolerate EBADF).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    Errno::result(rc).map(drop)
}
