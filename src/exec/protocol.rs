//! The sync protocol between the caller, the init helper and the container process: a unix stream
//! socket carrying length-prefixed JSON frames, plus one descriptor-passing message at the start.
//!
//! ```text
//! caller -> init    Fds(stdio) , Request{job, stdio shape, idmapped, cgroup_tasks} , Fds(trees)*
//! init   -> caller  Pid(host pid of the container process)        then init exits
//! caller -> child   Proceed                                       (after the on_pid hook)
//! child             joins its cgroup v1 `tasks` files, if the request names any
//! child  -> caller  Log* , Ready | Failed(msg)
//! caller -> child   Start
//! child  -> caller  Failed(msg)  or end of stream (close-on-exec: exec happened)
//! ```

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxSeccomp, Process, Spec};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ProtocolError;
use crate::sys::scm;

/// Frames larger than this are refused (a spec is a few KiB).
const MAX_FRAME: usize = 16 << 20;
/// The tag of the descriptor-passing message.
const FDS_TAG: u8 = b'F';

/// What the init helper is asked to do.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Job {
    /// Create a container from a spec; `rootfs` is absolute and already mounted.
    Create {
        /// The bundle directory (relative bind sources are resolved against it).
        bundle: PathBuf,
        /// The container's root filesystem.
        rootfs: PathBuf,
        /// The OCI runtime spec.
        spec: Box<Spec>,
    },
    /// Run an extra process in the namespaces of a running container.
    Exec {
        /// Host pid of a process of the container.
        container_pid: i32,
        /// The process to run.
        process: Box<Process>,
        /// The container's seccomp profile, which the process gets too.
        seccomp: Option<Box<LinuxSeccomp>>,
        /// The exact environment, when `process.env` lost bytes that are not UTF-8.
        exact_env: Option<Vec<Vec<u8>>>,
    },
}

/// How the passed descriptors map to the container's stdio.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum StdioShape {
    /// One terminal descriptor for 0, 1 and 2.
    Tty,
    /// Separate descriptors: optional stdin, then stdout and stderr.
    Pipes {
        /// Whether the first descriptor is stdin.
        stdin: bool,
    },
}

/// The first frame the caller sends.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub job: Job,
    pub stdio: StdioShape,
    /// Indexes in `spec.mounts` of the id-mapped trees whose descriptors follow the request,
    /// in batches of at most `scm::MAX_FDS`.
    #[serde(default)]
    pub idmapped: Vec<usize>,
    /// The cgroup v1 `tasks` files the process moves itself through (writing `0`) before it
    /// sets anything up; empty when the caller places it (`on_pid`).
    #[serde(default)]
    pub cgroup_tasks: Vec<PathBuf>,
}

/// Severity of a [`Report::Log`] line.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum Level {
    Debug,
    Info,
    Warn,
}

/// Messages towards the caller.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Report {
    /// The container process exists; its pid in the caller's pid namespace.
    Pid(i32),
    /// A line for the caller's log.
    Log { level: Level, message: String },
    /// Setup is done; waiting for [`Command::Start`].
    Ready,
    /// A step failed; the sender exits.
    Failed(String),
}

/// Messages towards the container process.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Command {
    /// Continue setup (the caller has placed the process, e.g. in its cgroup).
    Proceed,
    /// Execute the program.
    Start,
}

/// One end of the sync socket.
#[derive(Debug)]
pub(crate) struct Channel {
    sock: UnixStream,
}

impl Channel {
    /// A connected pair of channel ends (close-on-exec).
    pub fn pair() -> Result<(Channel, OwnedFd), ProtocolError> {
        let (ours, theirs) = UnixStream::pair()?;
        Ok((Channel { sock: ours }, OwnedFd::from(theirs)))
    }

    /// Wraps a socket received from the parent.
    pub fn from_fd(fd: OwnedFd) -> Channel {
        Channel {
            sock: UnixStream::from(fd),
        }
    }

    /// Sends descriptors; they stay open on this side.
    pub fn send_fds(&self, fds: &[BorrowedFd<'_>]) -> Result<(), ProtocolError> {
        scm::send_fds(self.sock.as_fd(), FDS_TAG, fds).map_err(ProtocolError::Fds)
    }

    /// Receives the descriptors sent by [`Channel::send_fds`].
    pub fn recv_fds(&self) -> Result<Vec<OwnedFd>, ProtocolError> {
        match scm::recv_fds(self.sock.as_fd()).map_err(ProtocolError::Fds)? {
            Some((FDS_TAG, fds)) => Ok(fds),
            Some((tag, _)) => Err(ProtocolError::Unexpected(format!("tag {tag:#x}"))),
            None => Err(ProtocolError::Closed),
        }
    }

    /// Sends one message.
    pub fn send<T: Serialize>(&self, msg: &T) -> Result<(), ProtocolError> {
        let body = serde_json::to_vec(msg)?;
        if body.len() > MAX_FRAME {
            return Err(ProtocolError::TooLarge(body.len()));
        }
        let len = u32::try_from(body.len()).map_err(|_| ProtocolError::TooLarge(body.len()))?;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&body);
        (&self.sock).write_all(&frame)?;
        Ok(())
    }

    /// Receives one message; `None` when the peer closed the channel between messages.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<Option<T>, ProtocolError> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < len.len() {
            match (&self.sock).read(&mut len[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(ProtocolError::Closed),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(ProtocolError::TooLarge(len));
        }
        let mut body = vec![0u8; len];
        (&self.sock).read_exact(&mut body).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ProtocolError::Closed
            } else {
                e.into()
            }
        })?;
        Ok(Some(serde_json::from_slice(&body)?))
    }

    /// Sends a log line, ignoring a broken channel (logging must not fail a step).
    pub fn log(&self, level: Level, message: impl Into<String>) {
        let _ = self.send(&Report::Log {
            level,
            message: message.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_eof_is_none() {
        let (a, b) = Channel::pair().unwrap();
        let b = Channel::from_fd(b);
        a.send(&Report::Pid(42)).unwrap();
        a.send(&Command::Start).unwrap();
        assert!(matches!(b.recv::<Report>().unwrap(), Some(Report::Pid(42))));
        assert!(matches!(b.recv::<Command>().unwrap(), Some(Command::Start)));
        drop(a);
        assert!(b.recv::<Report>().unwrap().is_none());
    }

    #[test]
    fn descriptors_pass_through() {
        let (a, b) = Channel::pair().unwrap();
        let b = Channel::from_fd(b);
        let (r, w) = std::io::pipe().unwrap();
        a.send_fds(&[r.as_fd(), w.as_fd()]).unwrap();
        let fds = b.recv_fds().unwrap();
        assert_eq!(fds.len(), 2);
        let mut w2 = std::fs::File::from(fds[1].try_clone().unwrap());
        w2.write_all(b"x").unwrap();
        drop((w, w2, fds));
        let mut out = String::new();
        std::fs::File::from(OwnedFd::from(r))
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "x");
    }
}
