//! `fork(2)` for a process that is known to be single-threaded, so the child may keep running
//! ordinary Rust code (allocate, lock, format) after the fork.

use std::marker::PhantomData;

use nix::errno::Errno;
use nix::unistd::{ForkResult, Pid};

/// Why [`SingleThreaded::check`] refused or [`SingleThreaded::fork`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    /// The process has more than one thread: forking it and continuing in Rust is unsound.
    #[error("refusing to fork: the process has {0} threads, fork is only safe with one")]
    MultiThreaded(usize),
    /// `/proc/self/task` could not be read to count the threads.
    #[error("count threads in /proc/self/task: {0}")]
    CountThreads(std::io::Error),
    /// The `fork` system call failed.
    #[error("fork: {0}")]
    Fork(Errno),
}

/// Which side of the fork the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The original process; holds the child's pid.
    Parent(Pid),
    /// The new process.
    Child,
}

/// Proof that the process had one thread when it was checked. The token cannot leave the
/// thread that made it; the holder promises not to start threads before calling [`fork`].
///
/// The check is separate from the fork because `/proc/self` may stop describing this process
/// (after joining another container's mount namespace) by the time it forks.
///
/// [`fork`]: SingleThreaded::fork
#[derive(Debug)]
pub struct SingleThreaded {
    _not_send: PhantomData<*const ()>,
}

impl SingleThreaded {
    /// Counts the threads in `/proc/self/task`; succeeds when there is exactly one.
    pub fn check() -> Result<SingleThreaded, ForkError> {
        let threads = std::fs::read_dir("/proc/self/task")
            .map_err(ForkError::CountThreads)?
            .count();
        if threads != 1 {
            return Err(ForkError::MultiThreaded(threads));
        }
        Ok(SingleThreaded {
            _not_send: PhantomData,
        })
    }

    /// Forks the process.
    pub fn fork(self) -> Result<Forked, ForkError> {
        // SAFETY: `self` proves the process was single-threaded when checked, and its holder
        // starts no thread before this call (the token is neither Send nor Sync, so it is used
        // on the checking thread). No other thread can therefore hold a lock (allocator, stdio)
        // that the child would inherit in a locked state, so the child may run any Rust code.
        match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Parent { child }) => Ok(Forked::Parent(child)),
            Ok(ForkResult::Child) => Ok(Forked::Child),
            Err(errno) => Err(ForkError::Fork(errno)),
        }
    }
}
