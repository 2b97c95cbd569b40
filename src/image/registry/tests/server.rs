//! A scriptable HTTP/1.1 server on 127.0.0.1:0, plain or TLS, for the registry client tests.
//! It records every request, and a handler decides each answer, down to cutting the body off or
//! stalling half-way. One request per connection (`Connection: close`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Decoded values of `key` in the query string.
    pub fn query(&self, key: &str) -> Vec<String> {
        let query = self.target.split_once('?').map_or("", |(_, q)| q);
        form_values(query, key)
    }

    /// Decoded values of `key` in an `application/x-www-form-urlencoded` body.
    pub fn form(&self, key: &str) -> Vec<String> {
        form_values(&String::from_utf8_lossy(&self.body), key)
    }
}

fn form_values(encoded: &str, key: &str) -> Vec<String> {
    reqwest::Url::parse(&format!("http://x/?{encoded}"))
        .map(|url| {
            url.query_pairs()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// How the body of a reply is delivered.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Complete,
    /// Sends this many bytes, then closes the connection (Content-Length still says all).
    CutAfter(usize),
    /// Sends this many bytes, then sends nothing until the client hangs up.
    StallAfter(usize),
}

/// An answer the handler scripts.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    ending: Ending,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            ending: Ending::Complete,
        }
    }

    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::status(200).body(body)
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn cut_after(mut self, bytes: usize) -> Reply {
        self.ending = Ending::CutAfter(bytes);
        self
    }

    pub fn stall_after(mut self, bytes: usize) -> Reply {
        self.ending = Ending::StallAfter(bytes);
        self
    }
}

/// Decides the reply to a request; the number is how many earlier requests had the same path.
type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// A running server; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    /// TLS handshakes attempted on a plain server.
    tls_hellos: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Self {
        TestServer::spawn(None, false, Arc::new(handler)).await
    }

    /// A plain server that answers a TLS ClientHello with silence, as an HTTP/1 server waiting
    /// for the rest of a request line does.
    pub async fn start_silent_to_tls(
        handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        TestServer::spawn(None, true, Arc::new(handler)).await
    }

    pub async fn start_tls(
        tls: Arc<rustls::ServerConfig>,
        handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static,
    ) -> Self {
        TestServer::spawn(Some(TlsAcceptor::from(tls)), false, Arc::new(handler)).await
    }

    async fn spawn(tls: Option<TlsAcceptor>, silent_to_tls: bool, handler: Arc<Handler>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let tls_hellos = Arc::new(AtomicUsize::new(0));
        let (task_log, task_hellos) = (log.clone(), tls_hellos.clone());
        let task = tokio::spawn(async move {
            // Dropping the set (when the server is dropped) ends every connection.
            let mut connections = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let (handler, tls) = (handler.clone(), tls.clone());
                let (log, hellos) = (task_log.clone(), task_hellos.clone());
                connections.spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve(stream, false, &*handler, &log, &hellos).await;
                            }
                        }
                        None => serve(tcp, silent_to_tls, &*handler, &log, &hellos).await,
                    }
                });
            }
        });
        TestServer {
            addr,
            log,
            tls_hellos,
            task,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// How many clients tried TLS on this plain server.
    pub fn tls_hellos(&self) -> usize {
        self.tls_hellos.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// Requests whose path was `path`.
    pub fn hits(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path() == path)
            .collect()
    }
}

/// The first byte of a TLS handshake record (a ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;

async fn serve<S>(
    stream: S,
    silent_to_tls: bool,
    handler: &Handler,
    log: &Mutex<Vec<Request>>,
    hellos: &AtomicUsize,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = BufReader::new(stream);
    if stream
        .fill_buf()
        .await
        .is_ok_and(|b| b.first() == Some(&TLS_HANDSHAKE))
    {
        // A TLS client on the plain port: answer like Go's net/http does, in plain text.
        hellos.fetch_add(1, Ordering::Relaxed);
        if silent_to_tls {
            // Wait, as for the rest of a request line, until the client hangs up.
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        let _ = stream
            .get_mut()
            .write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            .await;
        return;
    }
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let reply = {
        let mut log = log.lock().unwrap();
        let earlier = log.iter().filter(|r| r.path() == request.path()).count();
        let reply = handler(&request, earlier);
        log.push(request);
        reply
    };
    let reason = http::StatusCode::from_u16(reply.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Scripted");
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        reply.body.len()
    ));
    let sent = match reply.ending {
        Ending::Complete => reply.body.len(),
        Ending::CutAfter(n) | Ending::StallAfter(n) => n.min(reply.body.len()),
    };
    let stream = stream.get_mut();
    let written = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&reply.body[..sent]).await?;
        stream.flush().await
    };
    if written.await.is_err() {
        return;
    }
    if let Ending::StallAfter(_) = reply.ending {
        // Hold the connection open, silent, until the client gives up on it.
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    }
    let _ = stream.shutdown().await;
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut BufReader<S>) -> Option<Request> {
    let mut line = String::new();
    stream.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        line.clear();
        stream.read_line(&mut line).await.ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}
