//! Exec and Attach over SPDY (kubelet's remotecommand protocols `channel.k8s.io` to
//! `v4.channel.k8s.io`): the client opens one stream per `streamType` (error, stdin, stdout,
//! stderr, resize); once all it asked for are open the session runs through the shim; the exit
//! is reported on the error stream (v4: a JSON metav1.Status; older: a message on failure).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::spdy::{Connection, SpdyStream, StreamWriter};
use super::{Command, Resize, Server};
use crate::shimclient::{StreamInput, StreamOutput, StreamStart, TermSize};

/// How long the client may take to open its streams.
const STREAM_WAIT: Duration = Duration::from_secs(30);
/// How long a terminal session waits for the client's first size before it starts.
const FIRST_SIZE_WAIT: Duration = Duration::from_millis(500);

/// The streams of one session, by type.
#[derive(Default)]
struct Streams {
    error: Option<SpdyStream>,
    stdin: Option<SpdyStream>,
    stdout: Option<SpdyStream>,
    stderr: Option<SpdyStream>,
    resize: Option<SpdyStream>,
}

impl Streams {
    fn complete(&self, cmd: &Command, resize: bool) -> bool {
        self.error.is_some()
            && (!cmd.stdin || self.stdin.is_some())
            && (!cmd.stdout || self.stdout.is_some())
            && (!cmd.stderr || self.stderr.is_some())
            && (!resize || self.resize.is_some())
    }
}

/// Serves one Exec (`attach` false) or Attach session on a SPDY connection.
pub async fn serve(
    server: Arc<Server>,
    attach: bool,
    cmd: Command,
    protocol: &'static str,
    mut conn: Connection,
) {
    let wants_resize = cmd.tty && matches!(protocol, "v3.channel.k8s.io" | "v4.channel.k8s.io");
    let mut streams = Streams::default();
    let collect = async {
        while !streams.complete(&cmd, wants_resize) {
            let Some(stream) = conn.incoming.recv().await else {
                return false;
            };
            let slot = match stream.header("streamtype") {
                Some("error") => &mut streams.error,
                Some("stdin") => &mut streams.stdin,
                Some("stdout") => &mut streams.stdout,
                Some("stderr") => &mut streams.stderr,
                Some("resize") => &mut streams.resize,
                _ => continue,
            };
            *slot = Some(stream);
        }
        true
    };
    if !matches!(tokio::time::timeout(STREAM_WAIT, collect).await, Ok(true)) {
        tracing::debug!(
            container_id = cmd.container_id,
            "streaming: the client's streams did not all arrive"
        );
        conn.close().await;
        return;
    }
    let (tx, rx) = mpsc::channel(16);
    if let Some(stdin) = streams.stdin.take() {
        tokio::spawn(read_stdin(stdin, tx.clone()));
    }
    let size = match streams.resize.take() {
        Some(resize) => resizes(resize.data, tx.clone(), cmd.tty).await,
        None => None,
    };
    drop(tx);
    let start = StreamStart {
        id: cmd.container_id.clone(),
        args: cmd.cmd.clone(),
        tty: cmd.tty,
        stdin: cmd.stdin,
        stdout: cmd.stdout,
        stderr: cmd.stderr,
        size,
    };
    let inputs = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
    let stdout = streams.stdout.as_ref().map(|s| s.writer.clone());
    let stderr = streams.stderr.as_ref().map(|s| s.writer.clone());
    let session = async {
        match server.runtime.stream(attach, start, inputs).await {
            Ok(outputs) => pump(outputs, stdout.as_ref(), stderr.as_ref()).await,
            Err(e) => Err(e.to_string()),
        }
    };
    // A client that goes away ends the session (the shim then kills an exec'd process), even
    // while the process is silent.
    let gone = async { while conn.incoming.recv().await.is_some() {} };
    let result = tokio::select! {
        result = session => result,
        () = gone => return,
    };
    // An attach reports how the streaming went, not how the container ended.
    let result = if attach { result.map(|_| 0) } else { result };
    for w in [&stdout, &stderr].into_iter().flatten() {
        w.close().await;
    }
    if let Some(error) = &streams.error {
        let status = match protocol {
            "v4.channel.k8s.io" => Some(status_json(&cmd, &result)),
            _ => status_text(&cmd, &result),
        };
        if let Some(status) = status {
            let _ = error.writer.write(Bytes::from(status)).await;
        }
        error.writer.close().await;
    }
    conn.close().await;
}

/// Copies the session's outputs to the client; returns the exit code (or why there is none).
pub async fn pump(
    mut outputs: crate::shimclient::StreamOutputs,
    stdout: Option<&StreamWriter>,
    stderr: Option<&StreamWriter>,
) -> Result<i32, String> {
    while let Some(output) = outputs.next().await {
        match output.map_err(|e| e.to_string())? {
            StreamOutput::Stdout(data) => {
                if let Some(w) = stdout {
                    w.write(data)
                        .await
                        .map_err(|()| "client went away".to_string())?;
                }
            }
            StreamOutput::Stderr(data) => {
                if let Some(w) = stderr {
                    w.write(data)
                        .await
                        .map_err(|()| "client went away".to_string())?;
                }
            }
            StreamOutput::Exit(code) => return Ok(code),
        }
    }
    Err("the session ended without an exit code".into())
}

async fn read_stdin(mut stdin: SpdyStream, tx: mpsc::Sender<StreamInput>) {
    while let Some(data) = stdin.data.recv().await {
        if tx.send(StreamInput::Stdin(data)).await.is_err() {
            return;
        }
    }
    let _ = tx.send(StreamInput::StdinEof).await;
}

/// Reads the client's terminal sizes from `data` into `inputs`. With `tty`, first waits briefly
/// for the initial size, which clients send right away, so the process starts at its size.
pub async fn resizes(
    data: mpsc::Receiver<Bytes>,
    inputs: mpsc::Sender<StreamInput>,
    tty: bool,
) -> Option<TermSize> {
    let (tx, mut rx) = mpsc::channel(4);
    tokio::spawn(read_resizes(data, tx));
    let mut first = None;
    if tty
        && let Ok(Some(StreamInput::Resize(size))) =
            tokio::time::timeout(FIRST_SIZE_WAIT, rx.recv()).await
    {
        first = Some(size);
    }
    tokio::spawn(async move {
        while let Some(input) = rx.recv().await {
            if inputs.send(input).await.is_err() {
                break;
            }
        }
    });
    first
}

/// Reads resize JSON objects (back to back, possibly split across frames).
async fn read_resizes(mut data: mpsc::Receiver<Bytes>, tx: mpsc::Sender<StreamInput>) {
    let mut buf = Vec::new();
    while let Some(chunk) = data.recv().await {
        buf.extend_from_slice(&chunk);
        let mut consumed = 0;
        let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<Resize>();
        while let Some(Ok(size)) = it.next() {
            consumed = it.byte_offset();
            if tx.send(StreamInput::Resize(size.into())).await.is_err() {
                return;
            }
        }
        buf.drain(..consumed);
        if buf.len() > 64 * 1024 {
            return;
        }
    }
}

/// The v4 error-stream status: Success, or a Failure naming the exit code.
pub fn status_json(cmd: &Command, result: &Result<i32, String>) -> String {
    let status = match result {
        Ok(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Ok(code) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing command {:?}, exit code {code}", cmd.cmd),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(message) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "code": 500,
        }),
    };
    status.to_string()
}

/// The error-stream text of the older protocols: nothing on success.
pub fn status_text(cmd: &Command, result: &Result<i32, String>) -> Option<String> {
    match result {
        Ok(0) => None,
        Ok(code) => Some(format!(
            "command terminated with non-zero exit code: error executing command {:?}, exit code {code}",
            cmd.cmd
        )),
        Err(message) => Some(message.clone()),
    }
}
