//! A tower layer that records every gRPC call berthd serves: its method, its status code and
//! how long it took, once, for every service, instead of code in each RPC.
//!
//! A gRPC status travels in the response headers when the call fails before any message
//! ("trailers-only"), otherwise in the trailers after the last message; the call is recorded when
//! the status is seen, or when the body ends or is dropped without one.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame};

use super::metrics::metrics;

/// Adds [`RecordRpc`] around a service.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RecordRpc<S>;
    fn layer(&self, inner: S) -> RecordRpc<S> {
        RecordRpc { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RecordRpc<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for RecordRpc<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body + Unpin,
{
    type Response = Response<RecordedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let method = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let started = Instant::now();
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            let mut call = Call {
                method,
                started,
                recorded: false,
            };
            // A trailers-only response carries its status in the headers.
            if let Some(code) = status_code(response.headers()) {
                call.record(code);
            }
            Ok(response.map(|inner| RecordedBody { inner, call }))
        })
    }
}

/// One call, recorded exactly once.
#[derive(Debug)]
struct Call {
    method: String,
    started: Instant,
    recorded: bool,
}

impl Call {
    fn record(&mut self, code: tonic::Code) {
        if !self.recorded {
            self.recorded = true;
            metrics().record_rpc(
                &self.method,
                code_name(code),
                self.started.elapsed().as_secs_f64(),
            );
        }
    }
}

impl Drop for Call {
    /// A body that ended or was dropped with no status: the client went away mid-call.
    fn drop(&mut self) {
        self.record(tonic::Code::Cancelled);
    }
}

/// The response body, passed through unchanged, watching for the trailers.
#[derive(Debug)]
pub struct RecordedBody<B> {
    inner: B,
    call: Call,
}

impl<B: Body + Unpin> Body for RecordedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_code) {
                    this.call.record(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.record(tonic::Code::Internal),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn status_code(headers: &HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(tonic::Code::from_i32(value.parse().ok()?))
}

/// The status code as gRPC names it (`OK`, `NotFound`, ...).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Cancelled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}
