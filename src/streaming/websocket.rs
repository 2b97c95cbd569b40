//! Exec and Attach over WebSocket (kubelet's `channel.k8s.io` family: every message starts with
//! its channel — 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize — and `v5` adds 255, which
//! closes a channel: stdin EOF; the `base64` variants send text with an ASCII channel digit),
//! and the SPDY-over-WebSocket tunnel newer clients use for PortForward.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::remotecommand::{resizes, status_json, status_text};
use super::spdy::Connection;
use super::{Command, Server};
use crate::shimclient::{StreamInput, StreamOutput, StreamStart};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The largest WebSocket frame and message a client may send (2 MiB): room for the largest
/// SPDY frame berth accepts, with its header, in one tunnel message. Clients write stdin and
/// tunnelled SPDY in chunks of 32 KiB; tungstenite's defaults (16 MiB frames, 64 MiB messages,
/// reserved as soon as a frame header announces them) would let every connection under the cap
/// make berthd buffer 64 MiB.
const MAX_MESSAGE: usize = 2 * super::spdy::frame::MAX_PAYLOAD;

/// The server side of a WebSocket on an upgraded connection, with [`MAX_MESSAGE`].
async fn accept<T>(io: T) -> WebSocketStream<T>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let config = WebSocketConfig::default()
        .max_frame_size(Some(MAX_MESSAGE))
        .max_message_size(Some(MAX_MESSAGE));
    WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await
}

/// How one protocol frames a channel's bytes.
#[derive(Clone, Copy)]
pub(super) struct Framing {
    pub(super) base64: bool,
}

impl Framing {
    fn encode(self, channel: u8, data: &[u8]) -> Message {
        if self.base64 {
            let text = base64::engine::general_purpose::STANDARD.encode(data);
            return Message::text(format!("{}{text}", char::from(b'0' + channel)));
        }
        let mut bytes = Vec::with_capacity(data.len() + 1);
        bytes.push(channel);
        bytes.extend_from_slice(data);
        Message::binary(bytes)
    }

    pub(super) fn decode(self, msg: Message) -> Option<(u8, Bytes)> {
        match msg {
            Message::Binary(b) if !b.is_empty() => Some((b[0], b.slice(1..))),
            Message::Text(t) if self.base64 && !t.is_empty() => {
                let channel = t.as_bytes()[0].checked_sub(b'0')?;
                let data = base64::engine::general_purpose::STANDARD.decode(&t.as_bytes()[1..]);
                Some((channel, data.ok()?.into()))
            }
            _ => None,
        }
    }
}

/// Serves one Exec (`attach` false) or Attach session on an upgraded connection.
pub async fn serve<T>(
    server: Arc<Server>,
    attach: bool,
    cmd: Command,
    protocol: &'static str,
    io: T,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws = accept(io).await;
    let (mut sink, mut source) = ws.split();
    let framing = Framing {
        base64: protocol.contains("base64"),
    };
    let v5 = protocol == "v5.channel.k8s.io";
    let (tx, rx) = mpsc::channel(16);
    let (resize_tx, resize_rx) = mpsc::channel(4);
    let sizes = resizes(resize_rx, tx.clone(), cmd.tty);
    let (gone_tx, mut gone) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut stdin_open = true;
        while let Some(Ok(msg)) = source.next().await {
            if msg.is_close() {
                break;
            }
            let Some((channel, data)) = framing.decode(msg) else {
                continue;
            };
            let sent = match channel {
                STDIN if stdin_open => tx.send(StreamInput::Stdin(data)).await.is_ok(),
                RESIZE => resize_tx.send(data).await.is_ok(),
                CLOSE if v5 && data.first() == Some(&STDIN) && stdin_open => {
                    stdin_open = false;
                    tx.send(StreamInput::StdinEof).await.is_ok()
                }
                _ => true,
            };
            if !sent {
                break;
            }
        }
        drop(gone_tx);
    });
    let start = StreamStart {
        id: cmd.container_id.clone(),
        args: cmd.cmd.clone(),
        tty: cmd.tty,
        stdin: cmd.stdin,
        stdout: cmd.stdout,
        stderr: cmd.stderr,
        size: sizes.await,
    };
    let inputs = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
    let result = match server.runtime.stream(attach, start, inputs).await {
        Err(e) => Err(e.to_string()),
        Ok(mut outputs) => loop {
            let output = tokio::select! {
                output = outputs.next() => output,
                _ = &mut gone => return,
            };
            let msg = match output {
                None => break Err("the session ended without an exit code".to_string()),
                Some(Err(e)) => break Err(e.to_string()),
                Some(Ok(StreamOutput::Exit(code))) => break Ok(code),
                Some(Ok(StreamOutput::Stdout(d))) if cmd.stdout => framing.encode(STDOUT, &d),
                Some(Ok(StreamOutput::Stderr(d))) if cmd.stderr => framing.encode(STDERR, &d),
                Some(Ok(_)) => continue,
            };
            if sink.send(msg).await.is_err() {
                return;
            }
        },
    };
    // An attach reports how the streaming went, not how the container ended.
    let result = if attach { result.map(|_| 0) } else { result };
    let status = match protocol {
        "channel.k8s.io" | "base64.channel.k8s.io" => status_text(&cmd, &result),
        _ => Some(status_json(&cmd, &result)),
    };
    if let Some(status) = status {
        let _ = sink.send(framing.encode(ERROR, status.as_bytes())).await;
    }
    let close = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(close))).await;
    let _ = sink.close().await;
}

/// Runs SPDY inside the WebSocket: binary messages carry the raw SPDY byte stream both ways.
pub async fn tunnel<T>(io: T) -> Connection
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws = accept(io).await;
    let (mut sink, mut source) = ws.split();
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut rd, mut wr) = tokio::io::split(ours);
    tokio::spawn(async move {
        while let Some(Ok(msg)) = source.next().await {
            match msg {
                Message::Binary(data) if wr.write_all(&data).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
        let _ = sink.close().await;
    });
    Connection::start(theirs)
}
