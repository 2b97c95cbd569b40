//! The streaming server for CRI Exec, Attach and PortForward. The RPCs check the request and
//! hand out a single-use URL on this server; the client (kubelet, crictl) connects there and
//! upgrades to SPDY/3.1 or WebSocket. Exec and Attach run through the pod's shim; PortForward
//! connects to localhost inside the pod's network namespace. `docs/streaming.md` describes it.

mod http;
mod idle;
mod netns_socket;
mod portforward;
mod remotecommand;
pub mod spdy;
mod tls;
mod tokens;
mod websocket;

/// What the fuzz targets in `fuzz/` drive that is private to the streaming server; compiled only
/// into their builds (`--cfg fuzzing`, docs/fuzzing.md).
#[cfg(fuzzing)]
pub mod fuzzing {
    pub use super::remotecommand::resizes;
    pub use super::websocket::tunnel;
    pub use tokio_tungstenite::tungstenite::Message;

    /// The channel and data of one Exec/Attach WebSocket message (`base64`: the `base64.*`
    /// protocols' text framing); `None` for a message the session ignores.
    pub fn exec_message(base64: bool, msg: Message) -> Option<(u8, bytes::Bytes)> {
        super::websocket::Framing { base64 }.decode(msg)
    }
}

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::StreamingConfig;
use crate::error::{Classify, Kind};
use crate::runtime::Runtime;
use crate::shimclient::TermSize;

pub use tokens::{MAX_OUTSTANDING, TOKEN_TTL};

/// What went wrong asking for a streaming URL or serving one.
#[derive(Debug, thiserror::Error)]
pub enum StreamingError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("streaming: {0} requests are already waiting for their client; try again later")]
    TooManyRequests(usize),
    #[error("start the streaming server on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("streaming TLS: {0}")]
    Tls(String),
}

impl Classify for StreamingError {
    fn kind(&self) -> Kind {
        match self {
            StreamingError::InvalidArgument(_) => Kind::InvalidArgument,
            StreamingError::TooManyRequests(_) => Kind::ResourceExhausted,
            StreamingError::Bind { .. } | StreamingError::Tls(_) => Kind::Internal,
        }
    }
}

/// An Exec or Attach waiting for its client.
#[derive(Debug, Clone)]
pub struct Command {
    pub container_id: String,
    /// The command (Exec); empty for Attach.
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A PortForward waiting for its client.
#[derive(Debug, Clone)]
pub struct PortForward {
    pub pod_id: String,
    /// The pod's network namespace; `None` = the host's.
    pub netns: Option<PathBuf>,
}

/// What a token stands for.
#[derive(Debug, Clone)]
pub enum Session {
    Exec(Command),
    Attach(Command),
    PortForward(PortForward),
}

impl Session {
    fn path(&self) -> &'static str {
        match self {
            Session::Exec(_) => "exec",
            Session::Attach(_) => "attach",
            Session::PortForward(_) => "portforward",
        }
    }
}

/// The running streaming server.
pub struct Server {
    runtime: Arc<Runtime>,
    tokens: tokens::Tokens,
    base: String,
    address: SocketAddr,
    /// An upgraded session with no traffic either way for this long is closed.
    idle_timeout: std::time::Duration,
}

impl Server {
    /// Binds `config.address` (`host:port`, port 0 = any free one) and starts serving, over
    /// TLS when `config.tls` is set.
    pub async fn start(
        config: &StreamingConfig,
        runtime: Arc<Runtime>,
    ) -> Result<Arc<Server>, StreamingError> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let address = config.address.as_str();
        let bind_err = |source| StreamingError::Bind {
            address: address.to_string(),
            source,
        };
        let listener = TcpListener::bind(address).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let host = match local.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let server = Arc::new(Server {
            runtime,
            tokens: tokens::Tokens::default(),
            base: format!(
                "{}://{host}:{}",
                if tls.is_some() { "https" } else { "http" },
                local.port()
            ),
            address: local,
            idle_timeout: config.idle_timeout,
        });
        let limits = http::Limits {
            max_connections: config.max_connections,
            handshake_timeout: config.handshake_timeout,
        };
        tokio::spawn(http::serve(listener, tls, server.clone(), limits));
        tracing::info!(address = %local, "streaming server listening");
        Ok(server)
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Validates `command` as an Exec (`attach` false) or Attach and returns its URL.
    pub fn command_url(&self, attach: bool, command: Command) -> Result<String, StreamingError> {
        if command.tty && command.stderr {
            return Err(StreamingError::InvalidArgument(
                "tty and stderr cannot both be true: a terminal has one output".into(),
            ));
        }
        if !(command.stdin || command.stdout || command.stderr) {
            return Err(StreamingError::InvalidArgument(
                "one of stdin, stdout and stderr must be true".into(),
            ));
        }
        if !attach && command.cmd.is_empty() {
            return Err(StreamingError::InvalidArgument(
                "exec: no command given".into(),
            ));
        }
        match attach {
            true => self.url(Session::Attach(command)),
            false => self.url(Session::Exec(command)),
        }
    }

    /// Returns the URL of a port forward into `forward`'s pod.
    pub fn port_forward_url(&self, forward: PortForward) -> Result<String, StreamingError> {
        self.url(Session::PortForward(forward))
    }

    fn url(&self, session: Session) -> Result<String, StreamingError> {
        let path = session.path();
        let token = self.tokens.insert(session)?;
        Ok(format!("{}/{path}/{token}", self.base))
    }
}

/// The JSON a client sends on the resize stream or channel.
#[derive(serde::Deserialize)]
struct Resize {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

impl From<Resize> for TermSize {
    fn from(r: Resize) -> TermSize {
        TermSize {
            width: r.width,
            height: r.height,
        }
    }
}
