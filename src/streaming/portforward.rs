//! PortForward over SPDY (`portforward.k8s.io`, also inside the WebSocket tunnel): the client
//! opens an error and a data stream per connection (headers `streamType`, `port`,
//! `requestID`); each pair becomes a TCP connection to localhost:port inside the pod's network
//! namespace, with errors reported on the error stream. Any number run at once, each on async
//! tasks only.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::PortForward;
use super::netns_socket;
use super::spdy::{Connection, SpdyStream};

/// How long connecting to the port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pairs waiting for their other half, at most.
const MAX_PENDING: usize = 1024;

#[derive(Default)]
struct Pair {
    error: Option<SpdyStream>,
    data: Option<SpdyStream>,
}

/// Serves one port-forward session until the client goes away.
pub async fn serve(mut conn: Connection, pf: PortForward) {
    let mut pending: HashMap<String, Pair> = HashMap::new();
    while let Some(stream) = conn.incoming.recv().await {
        // Old clients send no requestID: the data stream follows its error stream.
        let key = match stream.header("requestid") {
            Some(id) => id.to_string(),
            None => match stream.header("streamtype") {
                Some("data") => stream.id.saturating_sub(2).to_string(),
                _ => stream.id.to_string(),
            },
        };
        if pending.len() >= MAX_PENDING && !pending.contains_key(&key) {
            continue;
        }
        let pair = pending.entry(key.clone()).or_default();
        match stream.header("streamtype") {
            Some("error") => pair.error = Some(stream),
            Some("data") => pair.data = Some(stream),
            _ => continue,
        }
        if pair.error.is_some() && pair.data.is_some() {
            let Some(Pair {
                error: Some(error),
                data: Some(data),
            }) = pending.remove(&key)
            else {
                continue;
            };
            tokio::spawn(forward(pf.clone(), error, data));
        }
    }
}

/// Forwards one connection.
async fn forward(pf: PortForward, error: SpdyStream, mut data: SpdyStream) {
    let port = data.header("port").and_then(|p| p.parse::<u16>().ok());
    let result = match port {
        Some(port) if port > 0 => connect(pf.netns.clone(), port).await.map(|tcp| (tcp, port)),
        _ => Err(std::io::Error::other(format!(
            "invalid port {:?}",
            data.header("port").unwrap_or("")
        ))),
    };
    let (tcp, port) = match result {
        Ok(ok) => ok,
        Err(e) => {
            let message = format!(
                "error forwarding port {} to pod {}: {e}",
                data.header("port").unwrap_or(""),
                pf.pod_id
            );
            let _ = error.writer.write(Bytes::from(message)).await;
            error.writer.close().await;
            data.writer.close().await;
            return;
        }
    };
    let (mut rd, mut wr) = tcp.into_split();
    let writer = data.writer.clone();
    let upstream = async move {
        while let Some(chunk) = data.data.recv().await {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let downstream = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if writer
                        .write(Bytes::copy_from_slice(&buf[..n]))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        writer.close().await;
    };
    tokio::join!(upstream, downstream);
    tracing::debug!(pod_id = pf.pod_id, port, "port-forward connection done");
    error.writer.close().await;
}

/// Connects to localhost:`port` (IPv4, then IPv6) inside `netns` (`None` = the host's). The
/// socket is made in the namespace ([`netns_socket`]); the connect itself is async, so a port
/// that never answers holds a task, not a thread.
async fn connect(netns: Option<PathBuf>, port: u16) -> std::io::Result<TcpStream> {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match connect_to(netns.as_deref(), v4).await {
        Ok(s) => Ok(s),
        Err(e4) => {
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            connect_to(netns.as_deref(), v6).await.map_err(|_| e4)
        }
    }
}

async fn connect_to(netns: Option<&Path>, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match netns {
        None if addr.is_ipv4() => TcpSocket::new_v4()?,
        None => TcpSocket::new_v6()?,
        Some(path) => {
            let fd = netns_socket::tcp_socket_in(path, addr.is_ipv4()).await?;
            TcpSocket::from_std_stream(std::net::TcpStream::from(fd))
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(addr))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connect to {addr} timed out after {CONNECT_TIMEOUT:?}"),
            )
        })?
}
