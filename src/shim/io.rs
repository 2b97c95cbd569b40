//! A container's stdio as the shim holds it: stdout/stderr pipes (or a pty whose master the shim
//! keeps), an optional stdin pipe held open, and one task per output stream that turns the bytes
//! into CRI log records. The tasks are the shim's own, so logging goes on while berthd is down.
//! They also fan the output out to attached clients (CRI Attach), which may write the
//! container's stdin and resize its terminal.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nix::fcntl::OFlag;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::logs::{LogSink, Splitter, Stream};
use crate::exec::Stdio;
use crate::shimapi::StreamOutput;

/// How much one read of a container's output takes at most.
const READ_CHUNK: usize = 8 * 1024;
/// Output chunks buffered per attached client; a client further behind loses the oldest.
const ATTACH_BUFFER: usize = 256;

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
    pub fn pty(master: OwnedFd) -> std::io::Result<Source> {
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
    /// A terminal container created with stdin: its input is the terminal.
    stdin_tty: bool,
    pty_master: Option<OwnedFd>,
    outputs: Vec<(Stream, OwnedFd, bool)>,
}

/// The stdio of a created container.
pub(crate) struct ContainerIo {
    pub log: Arc<LogSink>,
    /// The write end of the container's stdin pipe, held so the container does not see EOF.
    _stdin: Option<OwnedFd>,
    /// The terminal's master side.
    pty_master: Option<OwnedFd>,
    /// Whether the container was created with stdin (attached clients may write it).
    stdin: bool,
    /// CRI `stdin_once`: the container's stdin closes when an attached client closes its own.
    pub stdin_once: bool,
    /// Where the output is fanned out to attached clients; gone once the output has ended.
    attach: broadcast::WeakSender<StreamOutput>,
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
            stdin_tty: stdin,
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
        stdin_tty: false,
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
        let (attach, _) = broadcast::channel(ATTACH_BUFFER);
        let mut forwarders = Vec::new();
        for (stream, fd, tty) in self.outputs {
            let source = if tty {
                Source::pty(fd)?
            } else {
                Source::pipe(fd)?
            };
            let sinks = Sinks {
                log: self.log.clone(),
                attach: attach.clone(),
            };
            let task = forward(id.to_string(), stream, source, sinks, tty);
            forwarders.push(tokio::spawn(task));
        }
        Ok(ContainerIo {
            log: self.log,
            stdin: self.stdin.is_some() || self.stdin_tty,
            stdin_once: false,
            _stdin: self.stdin,
            pty_master: self.pty_master,
            attach: attach.downgrade(),
            forwarders,
        })
    }
}

impl ContainerIo {
    /// Subscribes an attached client to the output; `None` once the output has ended.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<StreamOutput>> {
        self.attach.upgrade().map(|tx| tx.subscribe())
    }

    /// A new descriptor to write the container's stdin through (the pipe, or the terminal),
    /// when it was created with stdin.
    pub fn stdin(&self) -> Option<std::io::Result<OwnedFd>> {
        if !self.stdin {
            return None;
        }
        let fd = self._stdin.as_ref().or(self.pty_master.as_ref())?;
        Some(fd.try_clone())
    }

    /// An attached client closed its stdin: with `stdin_once`, close the container's (its pipe;
    /// a terminal stays open, it is the output too).
    pub fn attached_stdin_closed(&mut self) {
        if self.stdin_once {
            self._stdin = None;
        }
    }

    /// A new descriptor of the terminal's master (to resize it), for a tty container.
    pub fn terminal(&self) -> Option<std::io::Result<OwnedFd>> {
        self.pty_master.as_ref().map(OwnedFd::try_clone)
    }

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

/// A pty pair from the devpts instance of the container whose process is `pid` (its
/// `/dev/pts/ptmx`, resolved inside its root), so the process sees its terminal by name
/// (`/dev/pts/0`) as on runc. Both ends close-on-exec, the slave opened through the master.
pub(crate) fn open_pty_in(pid: i32) -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::fcntl::{OpenHow, ResolveFlag, openat2};
    use nix::sys::stat::{SFlag, fstat, major, minor};
    let root = std::fs::File::open(format!("/proc/{pid}/root"))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let master = openat2(&root, "dev/pts/ptmx", how)?;
    // Whatever the container put at that path, only a pty multiplexer (5:2) will do.
    let st = fstat(&master)?;
    let is_char = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
    if !is_char || major(st.st_rdev) != 5 || minor(st.st_rdev) != 2 {
        let msg = "the container's /dev/pts/ptmx is not a pty multiplexer";
        return Err(std::io::Error::other(msg));
    }
    crate::sys::tty::unlock_pty(master.as_fd())?;
    let slave = crate::sys::tty::open_pty_peer(master.as_fd())?;
    Ok((master, slave))
}

/// A pty pair, both ends close-on-exec, the slave without becoming our controlling terminal.
pub(crate) fn open_pty() -> std::io::Result<(OwnedFd, OwnedFd)> {
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

/// Where a container's output goes: its log, and attached clients.
struct Sinks {
    log: Arc<LogSink>,
    attach: broadcast::Sender<StreamOutput>,
}

/// Copies one output stream into the log (and to attached clients) until its end.
async fn forward(id: String, stream: Stream, mut source: Source, sinks: Sinks, tty: bool) {
    let Sinks { log, attach } = sinks;
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
            Ok(n) => {
                if attach.receiver_count() > 0 {
                    let chunk = Bytes::copy_from_slice(&buf[..n]);
                    let _ = attach.send(match stream {
                        Stream::Stderr => StreamOutput::Stderr(chunk),
                        _ => StreamOutput::Stdout(chunk),
                    });
                }
                splitter.push(&buf[..n], &mut emit)
            }
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

/// A writer over a pipe's write end or a pty master, made non-blocking (on its shared open file).
pub(crate) fn writer(fd: OwnedFd) -> std::io::Result<pipe::Sender> {
    let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    pipe::Sender::from_owned_fd_unchecked(fd)
}
