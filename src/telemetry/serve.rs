//! The metrics endpoint: `GET /metrics` over plain HTTP/1.1 on `metrics.address`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::metrics::{CONTENT_TYPE, NodeSnapshot, metrics};

/// Reads the node's state at scrape time.
pub type Snapshotter = Arc<dyn Fn() -> NodeSnapshot + Send + Sync>;

/// Binds `address` and serves the metrics until the process ends; returns the bound address.
pub async fn start(address: SocketAddr, snapshot: Snapshotter) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let snapshot = snapshot.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let snapshot = snapshot.clone();
                    async move { Ok::<_, Infallible>(answer(&req, snapshot).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service);
                let _ = conn.await;
            });
        }
    });
    Ok(bound)
}

async fn answer(req: &http::Request<Incoming>, snapshot: Snapshotter) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("a static response is valid")
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            // Reading the records touches the database: off the async threads.
            match tokio::task::spawn_blocking(move || metrics().render(&snapshot())).await {
                Ok(text) => reply(StatusCode::OK, CONTENT_TYPE, text),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    format!("render metrics: {e}\n"),
                ),
            }
        }
        (_, "/metrics") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET\n".into(),
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "see /metrics\n".into()),
    }
}
