//! CRI Attach through the shim: a client joins a running container's own stdio. It receives
//! the output from now on (fanned out by the log tasks), may write stdin when the container was
//! created with it, resizes a terminal, and gets the container's exit code when it exits.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::net::unix::pipe;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, watch};

use super::error::ContainerError;
use super::exec_stream::feed;
use super::io::writer;
use super::state::Phase;
use super::supervisor::Supervisor;
use crate::shimapi::{Exit, StreamInput, StreamOutput, StreamStart};

/// How long the exit is awaited once the output has ended.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// A client attached to a container.
pub(crate) struct Attached {
    output: broadcast::Receiver<StreamOutput>,
    stdin: Option<pipe::Sender>,
    master: Option<OwnedFd>,
    exited: watch::Receiver<Option<Exit>>,
    stdout: bool,
    stderr: bool,
    sup: Arc<Supervisor>,
    id: String,
}

/// Attaches to running container `start.id` with the streams `start` asks for.
pub(crate) fn start(
    sup: &Arc<Supervisor>,
    start: &StreamStart,
) -> Result<Attached, ContainerError> {
    let table = sup.table();
    let container = table.get(&start.id)?;
    if !matches!(container.phase, Phase::Running) {
        return Err(container.wrong_state("attach to"));
    }
    let io = container.io.as_ref();
    let output = io.and_then(|io| io.subscribe());
    let (Some(io), Some(output)) = (io, output) else {
        return Err(container.wrong_state("attach to (its output has ended)"));
    };
    let io_err = |action: &'static str| {
        let id = start.id.clone();
        move |source| ContainerError::Io {
            id,
            action: action.into(),
            source,
        }
    };
    let stdin = match (start.stdin, io.stdin()) {
        (true, Some(fd)) => Some(fd.and_then(writer).map_err(io_err("write stdin"))?),
        (true, None) => {
            let message = format!("container {} was not created with stdin", start.id);
            return Err(ContainerError::InvalidArgument(message));
        }
        (false, _) => None,
    };
    let master = io
        .terminal()
        .transpose()
        .map_err(io_err("resize terminal"))?;
    Ok(Attached {
        output,
        stdin,
        master,
        exited: container.exit_tx.subscribe(),
        stdout: start.stdout,
        stderr: start.stderr,
        sup: sup.clone(),
        id: start.id.clone(),
    })
}

impl Attached {
    /// Forwards output, stdin and resizes until the container's output ends, then sends its
    /// exit code. Detaches (the container runs on) when `out` is closed.
    pub async fn run(
        self,
        inputs: impl Stream<Item = StreamInput> + Send + Unpin + 'static,
        out: mpsc::Sender<StreamOutput>,
    ) {
        let Attached {
            mut output,
            stdin,
            master,
            mut exited,
            stdout,
            stderr,
            sup,
            id,
        } = self;
        let inputs = inputs.inspect(move |input| {
            if matches!(input, StreamInput::StdinEof)
                && let Ok(container) = sup.table().get_mut(&id)
                && let Some(io) = container.io.as_mut()
            {
                io.attached_stdin_closed();
            }
        });
        let feeder = tokio::spawn(feed(inputs, stdin, master));
        loop {
            let msg = tokio::select! {
                msg = output.recv() => msg,
                () = out.closed() => break,
            };
            let msg = match msg {
                Ok(msg) => msg,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => {
                    let wait = exited.wait_for(Option::is_some);
                    let code = match tokio::time::timeout(EXIT_WAIT, wait).await {
                        Ok(Ok(exit)) => exit.map(|e| e.exit_code),
                        _ => None,
                    };
                    if let Some(code) = code {
                        let _ = out.send(StreamOutput::Exit(code)).await;
                    }
                    break;
                }
            };
            let wanted = match msg {
                StreamOutput::Stdout(_) => stdout,
                StreamOutput::Stderr(_) => stderr,
                StreamOutput::Exit(_) => true,
            };
            if wanted && out.send(msg).await.is_err() {
                break;
            }
        }
        feeder.abort();
    }
}

/// Shared by Exec and Attach: the stream of a call's inputs after its start.
pub(crate) type Inputs = std::pin::Pin<Box<dyn Stream<Item = StreamInput> + Send>>;
