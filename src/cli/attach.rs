//! `berth exec` and `berth attach`: ask berthd for a streaming URL with CRI `Exec`/`Attach`, then
//! speak kubelet's `v5.channel.k8s.io` WebSocket protocol to berth's streaming server, as
//! `kubectl exec` does. With `-t` the local terminal is put in raw mode and its size follows the
//! window; the remote command's exit code becomes berth's.

use std::io::IsTerminal as _;
use std::os::fd::AsFd as _;

use anyhow::{Context as _, bail};
use futures::{SinkExt as _, StreamExt as _};
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::inventory::Inventory;
use crate::client::CriClient;
use crate::cri::api;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;
const PROTOCOL: &str = "v5.channel.k8s.io";

/// The remote command ended with this non-zero exit code; `berth` exits with it, saying nothing.
#[derive(Debug, thiserror::Error)]
#[error("exit code {0}")]
pub struct Exit(pub i32);

/// What to connect: stdin and a terminal, or neither.
#[derive(Clone, Copy)]
pub struct Streams {
    pub stdin: bool,
    pub tty: bool,
}

pub async fn exec(
    client: &CriClient,
    container: &str,
    cmd: Vec<String>,
    streams: Streams,
) -> anyhow::Result<()> {
    let id = Inventory::list(client)
        .await?
        .container(container)?
        .id
        .clone();
    let request = api::ExecRequest {
        container_id: id.clone(),
        cmd,
        tty: streams.tty,
        stdin: streams.stdin,
        stdout: true,
        stderr: !streams.tty,
    };
    let url = client
        .runtime
        .clone()
        .exec(request)
        .await
        .with_context(|| format!("exec in {id}"))?
        .into_inner()
        .url;
    session(&url, streams).await
}

pub async fn attach(client: &CriClient, container: &str, streams: Streams) -> anyhow::Result<()> {
    let id = Inventory::list(client)
        .await?
        .container(container)?
        .id
        .clone();
    let request = api::AttachRequest {
        container_id: id.clone(),
        stdin: streams.stdin,
        tty: streams.tty,
        stdout: true,
        stderr: !streams.tty,
    };
    let url = client
        .runtime
        .clone()
        .attach(request)
        .await
        .with_context(|| format!("attach to {id}"))?
        .into_inner()
        .url;
    session(&url, streams).await
}

/// Puts the terminal on stdin in raw mode until dropped.
struct RawMode(Termios);

impl RawMode {
    fn enter() -> anyhow::Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).context("read the terminal's mode")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).context("set raw mode")?;
        Ok(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.0);
    }
}

fn resize_message() -> Option<Message> {
    let (cols, rows) = crate::sys::tty::window_size(std::io::stdout().as_fd()).ok()?;
    let size = serde_json::json!({"Width": cols, "Height": rows}).to_string();
    Some(frame(RESIZE, size.as_bytes()))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::binary(bytes)
}

/// Connects to the streaming URL and relays stdio until the server sends the command's status.
async fn session(url: &str, streams: Streams) -> anyhow::Result<()> {
    let ws_url = match url.strip_prefix("http://") {
        Some(rest) => format!("ws://{rest}"),
        None => bail!("streaming URL {url}: only plain-HTTP streaming servers are supported"),
    };
    let mut request = ws_url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", PROTOCOL.parse()?);
    let authority = request
        .uri()
        .authority()
        .context("URL has no host")?
        .to_string();
    let tcp = tokio::net::TcpStream::connect(&authority)
        .await
        .with_context(|| format!("connect to the streaming server {authority}"))?;
    let (ws, response) = tokio_tungstenite::client_async(request, tcp)
        .await
        .with_context(|| format!("open {url}"))?;
    let agreed = response.headers().get("sec-websocket-protocol");
    if agreed.is_none_or(|p| p != PROTOCOL) {
        bail!("streaming server did not agree to {PROTOCOL}");
    }
    let (mut sink, mut source) = ws.split();
    let terminal = streams.tty && std::io::stdin().is_terminal();
    let _raw = if terminal {
        Some(RawMode::enter()?)
    } else {
        None
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Message>(16);
    if streams.tty
        && let Some(m) = resize_message()
    {
        tx.send(m).await?;
    }
    let mut tasks = tokio::task::JoinSet::new();
    if streams.stdin {
        let tx = tx.clone();
        tasks.spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = stdin.read(&mut buf).await {
                if n == 0 || tx.send(frame(STDIN, &buf[..n])).await.is_err() {
                    break;
                }
            }
            let _ = tx.send(frame(CLOSE, &[STDIN])).await;
        });
    }
    if streams.tty {
        let tx = tx.clone();
        tasks.spawn(async move {
            let Ok(mut winch) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
            else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some(m) = resize_message()
                    && tx.send(m).await.is_err()
                {
                    break;
                }
            }
        });
    }
    drop(tx);
    tasks.spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
    });
    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    let mut status = None;
    while let Some(message) = source.next().await {
        let data = match message.context("streaming connection")? {
            Message::Binary(b) if !b.is_empty() => b,
            Message::Close(_) => break,
            _ => continue,
        };
        match data[0] {
            STDOUT => {
                stdout.write_all(&data[1..]).await?;
                stdout.flush().await?;
            }
            STDERR => {
                stderr.write_all(&data[1..]).await?;
                stderr.flush().await?;
            }
            ERROR => status = Some(data[1..].to_vec()),
            _ => {}
        }
    }
    tasks.abort_all();
    drop(_raw);
    exit_code(status.as_deref())
}

/// The command's outcome from the status the server sent on the error channel.
fn exit_code(status: Option<&[u8]>) -> anyhow::Result<()> {
    let Some(status) = status else {
        return Ok(()); // the server closed without a status: nothing failed that it knew of
    };
    let status: serde_json::Value =
        serde_json::from_slice(status).context("malformed status from the streaming server")?;
    if status["status"] == "Success" {
        return Ok(());
    }
    if status["reason"] == "NonZeroExitCode" {
        let code = status["details"]["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["reason"] == "ExitCode")
            .and_then(|c| c["message"].as_str()?.parse().ok());
        if let Some(code) = code {
            return Err(Exit(code).into());
        }
    }
    bail!("{}", status["message"].as_str().unwrap_or("command failed"))
}

#[cfg(test)]
mod tests {
    use super::{Exit, exit_code};

    #[test]
    fn exit_codes_come_from_the_status() {
        assert!(exit_code(None).is_ok());
        assert!(exit_code(Some(br#"{"metadata":{},"status":"Success"}"#)).is_ok());
        let failed = br#"{"status":"Failure","reason":"NonZeroExitCode",
            "details":{"causes":[{"reason":"ExitCode","message":"42"}]}}"#;
        let err = exit_code(Some(failed)).unwrap_err();
        assert_eq!(err.downcast_ref::<Exit>().map(|e| e.0), Some(42));
        let internal = br#"{"status":"Failure","reason":"InternalError","message":"no such file"}"#;
        assert_eq!(
            exit_code(Some(internal)).unwrap_err().to_string(),
            "no such file"
        );
    }
}
