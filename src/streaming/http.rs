//! The streaming server's HTTP/1.1 side: one URL per session (`/exec/<token>`, `/attach/<token>`,
//! `/portforward/<token>`), protocol negotiation, and the upgrade to SPDY/3.1 or WebSocket.
//! Connections are capped, a TLS handshake or request header that takes too long ends its
//! connection, and an upgraded session with no traffic for the idle timeout is closed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::idle::IdleTimeout;
use super::{Server, Session, portforward, remotecommand, websocket};

/// Exec and Attach over SPDY, newest first.
pub const SPDY_COMMAND: [&str; 4] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
/// PortForward over SPDY.
pub const SPDY_PORT_FORWARD: [&str; 1] = ["portforward.k8s.io"];
/// Exec and Attach over WebSocket.
pub const WS_COMMAND: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];
/// PortForward over WebSocket: SPDY tunnelled in binary messages (kubectl 1.30+, crictl).
pub const WS_PORT_FORWARD: [&str; 1] = ["SPDY/3.1+portforward.k8s.io"];

/// A connection's share of the cap, held until the connection and any session upgraded from
/// it are done.
type Slot = Arc<OwnedSemaphorePermit>;

/// What bounds the connections of one server.
pub struct Limits {
    pub max_connections: usize,
    /// For the TLS handshake and for each request header.
    pub handshake_timeout: Duration,
}

/// Accepts connections until the listener fails; with `tls`, each does its handshake first.
/// Connections past `limits.max_connections` are closed at once.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    server: Arc<Server>,
    limits: Limits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let timeout = limits.handshake_timeout;
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!("streaming server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "streaming server: connection cap reached, closing");
            drop(tcp);
            continue;
        };
        let slot = Arc::new(slot);
        let _ = tcp.set_nodelay(true);
        let server = server.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(tcp, server, slot, timeout).await,
                Some(tls) => match tokio::time::timeout(timeout, tls.accept(tcp)).await {
                    Ok(Ok(stream)) => serve_connection(stream, server, slot, timeout).await,
                    Ok(Err(e)) => tracing::debug!("streaming server: TLS handshake: {e}"),
                    Err(_) => tracing::debug!(%peer, "streaming server: TLS handshake timed out"),
                },
            }
        });
    }
}

/// Serves HTTP/1.1 requests (and their upgrades) on one connection; a request header must
/// arrive within `timeout`.
async fn serve_connection<I>(io: I, server: Arc<Server>, slot: Slot, timeout: Duration)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let (server, slot) = (server.clone(), slot.clone());
        async move { Ok::<_, Infallible>(route(&server, req, slot)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let _ = conn.await;
}

fn reply(status: StatusCode, message: impl Into<String>) -> Response<String> {
    let mut message = message.into();
    message.push('\n');
    let mut resp = Response::new(message);
    *resp.status_mut() = status;
    resp
}

/// Every value of header `name`, comma lists split.
fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

fn route(server: &Arc<Server>, req: Request<Incoming>, slot: Slot) -> Response<String> {
    let mut parts = req.uri().path().trim_matches('/').split('/');
    let (Some(kind), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
        return reply(StatusCode::NOT_FOUND, "no such streaming session");
    };
    // Any path with a live token uses it up: a token is tried once.
    let Some(session) = server.tokens.take(token) else {
        return reply(
            StatusCode::NOT_FOUND,
            "unknown or expired streaming session",
        );
    };
    if session.path() != kind {
        return reply(
            StatusCode::NOT_FOUND,
            "unknown or expired streaming session",
        );
    }
    let upgrade = values(req.headers(), "upgrade")
        .join(",")
        .to_ascii_lowercase();
    if upgrade.contains("websocket") {
        return websocket_upgrade(server, session, req, slot);
    }
    if upgrade.contains("spdy/3.1") {
        return spdy_upgrade(server, session, req, slot);
    }
    reply(
        StatusCode::BAD_REQUEST,
        "streaming needs an upgrade to SPDY/3.1 or websocket",
    )
}

fn spdy_upgrade(
    server: &Arc<Server>,
    session: Session,
    req: Request<Incoming>,
    slot: Slot,
) -> Response<String> {
    let supported: &[&str] = match session {
        Session::PortForward(_) => &SPDY_PORT_FORWARD,
        _ => &SPDY_COMMAND,
    };
    let offered = values(req.headers(), "x-stream-protocol-version");
    let chosen = if offered.is_empty() {
        // A client that names no version speaks the first one.
        supported[supported.len() - 1]
    } else {
        match supported.iter().find(|p| offered.contains(p)) {
            Some(p) => p,
            None => {
                let mut resp = reply(
                    StatusCode::FORBIDDEN,
                    format!(
                        "unable to upgrade: none of the requested protocols {offered:?} is supported ({})",
                        supported.join(", ")
                    ),
                );
                for p in supported {
                    resp.headers_mut().append(
                        "x-accepted-stream-protocol-versions",
                        http::HeaderValue::from_static(p),
                    );
                }
                return resp;
            }
        }
    };
    let server = server.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let io = IdleTimeout::new(TokioIo::new(upgraded), server.idle_timeout);
        let conn = super::spdy::Connection::start(io);
        match session {
            Session::PortForward(pf) => portforward::serve(conn, pf).await,
            Session::Exec(cmd) => remotecommand::serve(server, false, cmd, chosen, conn).await,
            Session::Attach(cmd) => remotecommand::serve(server, true, cmd, chosen, conn).await,
        }
    });
    let mut resp = reply(StatusCode::SWITCHING_PROTOCOLS, "");
    *resp.body_mut() = String::new();
    let h = resp.headers_mut();
    h.insert(
        header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    h.insert(header::UPGRADE, http::HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        http::HeaderValue::from_static(chosen),
    );
    resp
}

fn websocket_upgrade(
    server: &Arc<Server>,
    session: Session,
    req: Request<Incoming>,
    slot: Slot,
) -> Response<String> {
    let Some(key) = req.headers().get("sec-websocket-key") else {
        return reply(StatusCode::BAD_REQUEST, "websocket upgrade without a key");
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let supported: &[&str] = match session {
        Session::PortForward(_) => &WS_PORT_FORWARD,
        _ => &WS_COMMAND,
    };
    let offered = values(req.headers(), "sec-websocket-protocol");
    let chosen = match offered.iter().find(|p| supported.contains(p)) {
        Some(p) => supported.iter().find(|s| *s == p).copied(),
        None if offered.is_empty() && !matches!(session, Session::PortForward(_)) => None,
        None => {
            return reply(
                StatusCode::FORBIDDEN,
                format!(
                    "unable to upgrade: none of the requested protocols {offered:?} is supported ({})",
                    supported.join(", ")
                ),
            );
        }
    };
    let server = server.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let io = IdleTimeout::new(TokioIo::new(upgraded), server.idle_timeout);
        let protocol = chosen.unwrap_or("channel.k8s.io");
        match session {
            Session::PortForward(pf) => {
                let conn = websocket::tunnel(io).await;
                portforward::serve(conn, pf).await;
            }
            Session::Exec(cmd) => websocket::serve(server, false, cmd, protocol, io).await,
            Session::Attach(cmd) => websocket::serve(server, true, cmd, protocol, io).await,
        }
    });
    let mut resp = reply(StatusCode::SWITCHING_PROTOCOLS, "");
    *resp.body_mut() = String::new();
    let h = resp.headers_mut();
    h.insert(
        header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    h.insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    if let Some(p) = chosen {
        h.insert("sec-websocket-protocol", http::HeaderValue::from_static(p));
    }
    resp
}
