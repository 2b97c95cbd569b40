//! CRI Exec through the shim: a process in a running container whose stdio is streamed to and
//! from the daemon — pipes, or a terminal whose master the shim keeps (and resizes on request) —
//! with its exit code as the last message. A caller that goes away takes the process with it.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use nix::sys::wait::WaitStatus;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};

use super::error::ContainerError;
use super::exec_sync::{kill_if_pending, spawn_exec};
use super::io::{Source, open_pty, open_pty_in, writer};
use super::supervisor::Supervisor;
use crate::exec::Stdio;
use crate::shimapi::{StreamInput, StreamOutput, StreamStart, TermSize};

/// How long output is still read after the process exited (a child it left behind may hold
/// the pipes or the terminal open).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);
/// The largest output chunk sent at once.
const CHUNK: usize = 32 * 1024;

/// An exec'd process and the shim's ends of its stdio.
pub(crate) struct Running {
    pid: i32,
    status: oneshot::Receiver<WaitStatus>,
    outputs: Vec<(bool, Source)>,
    stdin: Option<pipe::Sender>,
    /// The terminal's master, kept for resizes.
    master: Option<OwnedFd>,
}

/// Starts `start.args` in the container with the streams `start` asks for.
pub(crate) async fn start(
    sup: &Arc<Supervisor>,
    start: StreamStart,
) -> Result<Running, ContainerError> {
    let io_err = |action: &str| {
        let id = start.id.clone();
        let action = action.to_string();
        move |source| ContainerError::Io { id, action, source }
    };
    if start.tty {
        // The container's own devpts when it has one (the process can name its terminal),
        // else the shim's.
        let pid = sup.table().get(&start.id)?.pid;
        let (master, slave) = open_pty_in(pid)
            .or_else(|_| open_pty())
            .map_err(io_err("open a terminal for exec"))?;
        if let Some(size) = start.size {
            resize(&master, size);
        }
        let stdio = Stdio::tty(slave).map_err(|source| ContainerError::Exec {
            id: start.id.clone(),
            source,
        })?;
        let (pid, status, runtime_terminal) =
            spawn_exec(sup, &start.id, start.args.clone(), stdio).await?;
        // An external runtime made the process's terminal itself: talk through that one.
        let master = match runtime_terminal {
            Some(theirs) => {
                if let Some(size) = start.size {
                    resize(&theirs, size);
                }
                theirs
            }
            None => master,
        };
        let dup = |m: &OwnedFd| m.try_clone();
        let reader = dup(&master).and_then(Source::pty);
        let writer = dup(&master).and_then(writer);
        let (reader, writer) = match (reader, writer) {
            (Ok(r), Ok(w)) => (r, w),
            (Err(e), _) | (_, Err(e)) => {
                kill_if_pending(sup, pid);
                return Err(io_err("read the exec terminal")(e));
            }
        };
        return Ok(Running {
            pid,
            status,
            outputs: if start.stdout {
                vec![(false, reader)]
            } else {
                vec![]
            },
            stdin: start.stdin.then_some(writer),
            master: Some(master),
        });
    }
    let pipes = || -> std::io::Result<_> {
        let stdin = match start.stdin {
            true => Some(std::io::pipe()?),
            false => None,
        };
        Ok((stdin, output(start.stdout)?, output(start.stderr)?))
    };
    let (stdin, (out_r, out_w), (err_r, err_w)) = pipes().map_err(io_err("create exec pipes"))?;
    let (stdin_r, stdin_w) = stdin.map(|(r, w)| (r.into(), w.into())).unzip();
    let stdio = Stdio::pipes(stdin_r, out_w, err_w);
    let (pid, status, _) = spawn_exec(sup, &start.id, start.args.clone(), stdio).await?;
    let mut outputs = Vec::new();
    for (is_err, fd) in [(false, out_r), (true, err_r)] {
        if let Some(fd) = fd {
            match Source::pipe(fd) {
                Ok(source) => outputs.push((is_err, source)),
                Err(e) => {
                    kill_if_pending(sup, pid);
                    return Err(io_err("read exec output")(e));
                }
            }
        }
    }
    let stdin = stdin_w.map(pipe::Sender::from_owned_fd).transpose();
    let stdin = stdin.map_err(io_err("write exec stdin"))?;
    Ok(Running {
        pid,
        status,
        outputs,
        stdin,
        master: None,
    })
}

/// A pipe for an output the client wants, or `/dev/null` (and nothing to read) when it does not.
fn output(wanted: bool) -> std::io::Result<(Option<OwnedFd>, OwnedFd)> {
    if wanted {
        let (r, w) = std::io::pipe()?;
        return Ok((Some(r.into()), w.into()));
    }
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    Ok((None, null.into()))
}

impl Running {
    /// Forwards `inputs` and the outputs until the process exits, then sends its exit code.
    /// Kills the process when `out` is closed (the caller went away) before that.
    pub async fn run(
        self,
        sup: Arc<Supervisor>,
        inputs: impl Stream<Item = StreamInput> + Send + Unpin + 'static,
        out: mpsc::Sender<StreamOutput>,
    ) {
        let Running {
            pid,
            status,
            outputs,
            stdin,
            master,
        } = self;
        let readers: Vec<_> = outputs
            .into_iter()
            .map(|(is_err, source)| tokio::spawn(pump(source, is_err, out.clone())))
            .collect();
        let feeder = tokio::spawn(feed(inputs, stdin, master));
        let status = tokio::select! {
            status = status => status.ok(),
            () = out.closed() => {
                kill_if_pending(&sup, pid);
                None
            }
        };
        let deadline = tokio::time::Instant::now() + OUTPUT_GRACE;
        for mut reader in readers {
            if tokio::time::timeout_at(deadline, &mut reader)
                .await
                .is_err()
            {
                reader.abort();
            }
        }
        feeder.abort();
        let code = match status {
            Some(WaitStatus::Exited(_, code)) => code,
            Some(WaitStatus::Signaled(_, signal, _)) => 128 + signal as i32,
            _ => return,
        };
        let _ = out.send(StreamOutput::Exit(code)).await;
    }
}

/// Copies one output of the process to the caller until its end.
async fn pump(mut source: Source, is_err: bool, out: mpsc::Sender<StreamOutput>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match source.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                let chunk = Bytes::copy_from_slice(&buf[..n]);
                let msg = match is_err {
                    true => StreamOutput::Stderr(chunk),
                    false => StreamOutput::Stdout(chunk),
                };
                if out.send(msg).await.is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// Writes the caller's stdin to the process and applies resizes. Stdin EOF closes the pipe
/// (a terminal stays open: its master is the output too).
pub(crate) async fn feed(
    mut inputs: impl Stream<Item = StreamInput> + Unpin,
    mut stdin: Option<pipe::Sender>,
    master: Option<OwnedFd>,
) {
    while let Some(input) = inputs.next().await {
        match input {
            StreamInput::Stdin(data) => {
                if let Some(w) = &mut stdin
                    && w.write_all(&data).await.is_err()
                {
                    stdin = None;
                }
            }
            StreamInput::StdinEof => stdin = None,
            StreamInput::Resize(size) => {
                if let Some(master) = &master {
                    resize(master, size);
                }
            }
        }
    }
}

/// Sets the terminal's size; a failure only leaves the old size.
pub(crate) fn resize(master: &OwnedFd, size: TermSize) {
    let _ = crate::sys::tty::set_window_size(master.as_fd(), size.width, size.height);
}
