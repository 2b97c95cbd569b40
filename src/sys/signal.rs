//! Resetting signal dispositions before `execve`: ignored signals stay ignored across exec, and a
//! Rust program ignores SIGPIPE, so a container would inherit that unless it is reset.

use nix::errno::Errno;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("sys::signal knows the kernel sigaction layout of x86_64 and aarch64 only");

/// The kernel's `struct sigaction` on x86_64 and aarch64 (handler, flags, restorer, mask).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// The highest signal number on Linux.
const MAX_SIGNAL: i32 = 64;

/// Sets every signal but SIGKILL and SIGSTOP to its default action with the raw `rt_sigaction`
/// system call (the C library refuses the signals it reserves for itself, which may have been
/// inherited as ignored too). Call it only right before `execve` in a single-threaded process.
pub fn reset_dispositions() -> Result<(), Errno> {
    let default = KernelSigaction {
        handler: 0, // SIG_DFL
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for signal in 1..=MAX_SIGNAL {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `default` is a live, correctly laid out kernel sigaction whose size matches the
        // 8-byte signal set passed; the old-action pointer is null. Setting SIG_DFL installs no
        // code to run, so no Rust invariant depends on the previous handler.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                std::mem::size_of::<u64>(),
            )
        };
        Errno::result(rc)?;
    }
    Ok(())
}
