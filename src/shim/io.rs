//! A container's stdio as the shim holds it: stdout/stderr pipes (or a pty whose master the shim
//! keeps), an optional stdin pipe held open, and one task per output stream that turns the bytes
//! into CRI log records. The tasks are the shim's own, so logging goes on while berthd is down.

use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::OFlag;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;

use super::logs::{LogSink, Splitter, Stream};
use crate::exec::Stdio;

/// How much one read of a container's output takes at most.
const READ_CHUNK: usize = 8 * 1024;

/// One output stream of a process, readable without blocking the runtime: a pipe's read end
/// or a pty master.
pub(crate) struct Source {
    rx: pipe::Receiver,
    tty: bool,
}

impl Source {
    /// A pipe's read end.
    pub fn pipe(fd: OwnedFd) -> std::io::Result<Source> {
        Ok(Source {
            rx: pipe::Receiver::from_owned_fd(fd)?,
            tty: false,
        })
    }

    /// A pty master (a duplicate of the one the shim keeps; both become non-blocking). Read
    /// like a pipe: the same `read` and readiness, only the end looks different.
    fn pty(master: OwnedFd) -> std::io::Result<Source> {
        let flags = nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        Ok(Source {
            rx: pipe::Receiver::from_owned_fd_unchecked(master)?,
            tty: true,
        })
    }

    /// Reads some bytes; `Ok(0)` at the end (all writers gone, or the pty's slave closed, which
    /// a pty master reports as EIO).
    pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.rx.read(buf).await {
            Err(e) if self.tty && e.raw_os_error() == Some(libc::EIO) => Ok(0),
            result => result,
        }
    }
}

/// The stdio of a container that is about to be created: the executor's ends and ours.
pub(crate) struct PendingIo {
    log: Arc<LogSink>,
    stdin: Option<OwnedFd>,
    pty_master: Option<OwnedFd>,
    outputs: Vec<(Stream, OwnedFd, bool)>,
}

/// The stdio of a created container.
pub(crate) struct ContainerIo {
    pub log: Arc<LogSink>,
    /// The write end of the container's stdin pipe, held so the container does not see EOF.
    _stdin: Option<OwnedFd>,
    /// The terminal's master side.
    _pty_master: Option<OwnedFd>,
    forwarders: Vec<JoinHandle<()>>,
}

/// Makes the pipes (or the pty) and opens the log. Returns what the executor hands to the
/// container process and what the shim keeps.
pub(crate) fn prepare(
    log_path: Option<&Path>,
    stdin: bool,
    tty: bool,
) -> std::io::Result<(Stdio, PendingIo)> {
    let log = Arc::new(LogSink::open(log_path)?);
    if tty {
        let (master, slave) = open_pty()?;
        let pending = PendingIo {
            log,
            stdin: None,
            outputs: vec![(Stream::Stdout, master.try_clone()?, true)],
            pty_master: Some(master),
        };
        let stdio = Stdio::tty(slave).map_err(std::io::Error::other)?;
        return Ok((stdio, pending));
    }
    let (in_r, in_w) = match stdin {
        true => {
            let (r, w) = std::io::pipe()?;
            (Some(OwnedFd::from(r)), Some(OwnedFd::from(w)))
        }
        false => (None, None),
    };
    let (out_r, out_w) = std::io::pipe()?;
    let (err_r, err_w) = std::io::pipe()?;
    let pending = PendingIo {
        log,
        stdin: in_w,
        pty_master: None,
        outputs: vec![
            (Stream::Stdout, out_r.into(), false),
            (Stream::Stderr, err_r.into(), false),
        ],
    };
    Ok((Stdio::pipes(in_r, out_w.into(), err_w.into()), pending))
}

impl PendingIo {
    /// Reads and keeps `master` instead of the shim's own pty: the terminal an external runtime
    /// made inside the container (`--console-socket`).
    pub fn use_terminal(&mut self, master: OwnedFd) -> std::io::Result<()> {
        self.outputs = vec![(Stream::Stdout, master.try_clone()?, true)];
        self.pty_master = Some(master);
        Ok(())
    }

    /// Starts the log tasks of container `id`.
    pub fn start(self, id: &str) -> std::io::Result<ContainerIo> {
        let mut forwarders = Vec::new();
        for (stream, fd, tty) in self.outputs {
            let source = if tty {
                Source::pty(fd)?
            } else {
                Source::pipe(fd)?
            };
            let task = forward(id.to_string(), stream, source, self.log.clone(), tty);
            forwarders.push(tokio::spawn(task));
        }
        Ok(ContainerIo {
            log: self.log,
            _stdin: self.stdin,
            _pty_master: self.pty_master,
            forwarders,
        })
    }
}

impl ContainerIo {
    /// Waits up to `grace` for the log tasks to reach the end of their streams (output still in
    /// the pipes is logged), then stops them (a process that kept the pipes open is ignored).
    pub async fn close(self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for mut task in self.forwarders {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}

/// A pty pair, both ends close-on-exec, the slave without becoming our controlling terminal.
fn open_pty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname_r(&master)?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(name)?;
    Ok((master.into(), slave.into()))
}

/// Copies one output stream into the log until its end.
async fn forward(id: String, stream: Stream, mut source: Source, log: Arc<LogSink>, tty: bool) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut splitter = Splitter::default();
    let mut emit = |text: &[u8], partial: bool| {
        // A terminal ends lines with "\r\n"; the record keeps the text only.
        let text = match (tty, partial) {
            (true, false) => text.strip_suffix(b"\r").unwrap_or(text),
            _ => text,
        };
        log.write(&id, stream, text, partial);
    };
    loop {
        match source.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => splitter.push(&buf[..n], &mut emit),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Logged once: the stream is given up after it.
                tracing::warn!(container_id = id, ?stream, "read container output: {e}");
                break;
            }
        }
    }
    splitter.finish(&mut emit);
}
