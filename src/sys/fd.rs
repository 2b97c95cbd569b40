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
