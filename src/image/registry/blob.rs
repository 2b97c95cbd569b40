//! Streaming one blob from byte 0 to its end, resuming after a broken, stalled or too slow
//! connection with `Range: bytes=N-` from the first byte not yet handed out, and never handing out
//! more than the descriptor's size.
//!
//! Too slow: fewer bytes than the minimum rate times the window arrived in one window of the
//! connection (windows are back to back from the answer's headers on). Bytes a too-slow
//! connection delivered do not count as progress for the attempt limit, so a registry that is
//! slow on every connection fails the pull after `max_attempts` windows.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::header::{CONTENT_RANGE, RANGE};
use http::{HeaderMap, HeaderValue};
use reqwest::{Response, StatusCode};
use tracing::debug;

use super::endpoint::Endpoint;
use super::error::{Cause, Object, RegistryError, Subject};
use super::transport::{MinRate, Transport, backoff};
use super::{BlobStream, Credentials};
use crate::image::digest::Digest;

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Everything a blob stream needs after the call that opened it has returned.
pub(super) struct BlobSource {
    pub transport: Arc<Transport>,
    pub endpoint: Arc<Endpoint>,
    pub name: String,
    pub repository: String,
    pub credentials: Option<Credentials>,
    pub digest: Digest,
    /// The descriptor size: exactly this many bytes are handed out (0 is an empty blob), and a
    /// registry that sends more gets [`RegistryError::BlobTooLarge`].
    pub size: u64,
}

/// A body being read, and how many of its leading bytes were already handed out.
struct Open {
    body: Body,
    skip: u64,
}

impl BlobSource {
    fn subject(&self) -> Subject {
        Subject {
            name: self.name.clone(),
            object: Object::Blob(self.digest.clone()),
        }
    }

    /// Sends the first request, so "not found" and refused credentials surface before any
    /// byte, then streams.
    pub async fn open(self) -> Result<BlobStream, RegistryError> {
        let first = self.request(0).await?;
        Ok(Box::pin(self.stream(first)))
    }

    /// GETs the blob from byte `offset`. A 206 must start at `offset`; a 200 starts at 0 and
    /// the caller skips what it already handed out.
    async fn request(&self, offset: u64) -> Result<Result<Open, Cause>, RegistryError> {
        let subject = self.subject();
        let mut headers = HeaderMap::new();
        if offset > 0 {
            let range = HeaderValue::from_str(&format!("bytes={offset}-"))
                .map_err(|e| subject.bad_response(&self.endpoint.host, e.to_string()))?;
            headers.insert(RANGE, range);
        }
        let path = format!("{}/blobs/{}", self.repository, self.digest);
        let response = self
            .transport
            .get(
                &self.endpoint,
                &self.repository,
                self.credentials.as_ref(),
                &subject,
                &path,
                &headers,
            )
            .await?;
        match response.status() {
            StatusCode::OK => Ok(Ok(Open {
                body: body(response),
                skip: offset,
            })),
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                let content_range = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                if range_start(&content_range) != Some(offset) {
                    return Ok(Err(Cause::BadRange {
                        offset,
                        content_range,
                    }));
                }
                Ok(Ok(Open {
                    body: body(response),
                    skip: 0,
                }))
            }
            StatusCode::NOT_FOUND => Err(RegistryError::BlobUnknown {
                name: self.name.clone(),
                digest: self.digest.clone(),
            }),
            status => Err(subject.status(&self.endpoint.host, status.as_u16())),
        }
    }

    fn stream(
        self,
        first: Result<Open, Cause>,
    ) -> impl Stream<Item = Result<Bytes, RegistryError>> {
        async_stream::stream! {
            let mut delivered: u64 = 0;
            let mut failures: u32 = 0;
            let mut next = Some(first);
            loop {
                let failures_before = failures;
                let opened = match next.take() {
                    Some(opened) => opened,
                    None => match self.request(delivered).await {
                        Ok(opened) => opened,
                        Err(e) => {
                            yield Err(e);
                            return;
                        }
                    },
                };
                let cause = match opened {
                    Err(cause) => cause,
                    Ok(mut open) => {
                    let mut rate = RateCheck::new(self.transport.min_rate, tokio::time::Instant::now());
                    loop {
                        let chunk = match self.next_chunk(&mut open.body, &mut rate).await {
                            Ok(Some(chunk)) => skip_prefix(chunk, &mut open.skip),
                            Ok(None) if delivered == self.size => return,
                            Ok(None) => break Cause::Truncated { delivered, size: self.size },
                            Err(cause) => break cause,
                        };
                        if chunk.is_empty() {
                            continue;
                        }
                        let len = chunk.len() as u64;
                        if delivered + len > self.size {
                            yield Err(self.too_large());
                            return;
                        }
                        delivered += len;
                        failures = 0;
                        yield Ok(chunk);
                        if delivered == self.size {
                            // A body that goes on past the size is wrong even if we stop here.
                            if let Ok(Some(_)) = self.next_chunk(&mut open.body, &mut rate).await {
                                yield Err(self.too_large());
                            }
                            return;
                        }
                    }
                    }
                };
                if matches!(cause, Cause::TooSlow { .. }) {
                    // What a too-slow connection delivered is not progress.
                    failures = failures_before;
                }
                failures += 1;
                if failures >= self.transport.max_attempts() {
                    yield Err(self.subject().unavailable(&self.endpoint.host, failures, cause));
                    return;
                }
                debug!(
                    host = %self.endpoint.host, digest = %self.digest, delivered,
                    error = %cause, "blob download broken, resuming"
                );
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }

    /// The next non-empty chunk, None at the body's end, or why the body broke: an error, no
    /// byte for the no-progress timeout, or a window slower than the minimum rate.
    async fn next_chunk(
        &self,
        body: &mut Body,
        rate: &mut RateCheck,
    ) -> Result<Option<Bytes>, Cause> {
        let no_progress = self.transport.no_progress;
        let stalled_at = tokio::time::Instant::now() + no_progress;
        loop {
            let now = tokio::time::Instant::now();
            rate.check(now)?;
            let wake = rate
                .window_end()
                .map_or(stalled_at, |end| end.min(stalled_at));
            match tokio::time::timeout_at(wake, body.next()).await {
                Err(_) if tokio::time::Instant::now() >= stalled_at => {
                    return Err(Cause::Stalled(no_progress));
                }
                Err(_) => {} // the window ended: judged at the top
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(Cause::Http(e.without_url())),
                Ok(Some(Ok(chunk))) if chunk.is_empty() => {}
                Ok(Some(Ok(chunk))) => {
                    rate.add(chunk.len() as u64);
                    return Ok(Some(chunk));
                }
            }
        }
    }

    fn too_large(&self) -> RegistryError {
        RegistryError::BlobTooLarge {
            name: self.name.clone(),
            digest: self.digest.clone(),
            size: self.size,
        }
    }
}

/// Judges one connection's delivery over back-to-back windows against a minimum rate.
struct RateCheck {
    min: MinRate,
    start: tokio::time::Instant,
    bytes: u64,
}

impl RateCheck {
    fn new(min: MinRate, now: tokio::time::Instant) -> RateCheck {
        RateCheck {
            min,
            start: now,
            bytes: 0,
        }
    }

    /// When the current window ends; None when there is no minimum.
    fn window_end(&self) -> Option<tokio::time::Instant> {
        (self.min.bytes_per_second > 0).then(|| self.start + self.min.window)
    }

    fn add(&mut self, bytes: u64) {
        self.bytes += bytes;
    }

    /// Once a window has ended: too slow, or a new window starts.
    fn check(&mut self, now: tokio::time::Instant) -> Result<(), Cause> {
        if self.window_end().is_none_or(|end| now < end) {
            return Ok(());
        }
        let wanted = (self.min.bytes_per_second as f64 * self.min.window.as_secs_f64()) as u64;
        if self.bytes < wanted {
            return Err(Cause::TooSlow {
                bytes: self.bytes,
                window: self.min.window,
            });
        }
        self.start = now;
        self.bytes = 0;
        Ok(())
    }
}

fn body(response: Response) -> Body {
    Box::pin(response.bytes_stream())
}

/// Drops up to `skip` leading bytes of `chunk`, counting them off `skip`.
fn skip_prefix(chunk: Bytes, skip: &mut u64) -> Bytes {
    let dropped = (*skip).min(chunk.len() as u64);
    *skip -= dropped;
    chunk.slice(dropped as usize..)
}

/// The first byte of `bytes N-M/T`.
fn range_start(content_range: &str) -> Option<u64> {
    let range = content_range.trim().strip_prefix("bytes ")?;
    range.split_once('-')?.0.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn content_range_start() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes 0-0/1"), Some(0));
        assert_eq!(range_start("bytes */200"), None);
        assert_eq!(range_start(""), None);
    }

    fn min_rate() -> MinRate {
        MinRate {
            bytes_per_second: 1024,
            window: Duration::from_secs(10),
        }
    }

    /// Feeds `bytes_per_tick` every 100 ms for `seconds`; the first too-slow verdict, if any,
    /// with the second it came in.
    fn feed(min: MinRate, bytes_per_tick: u64, seconds: u64) -> Option<(u64, Cause)> {
        let t0 = tokio::time::Instant::now();
        let mut rate = RateCheck::new(min, t0);
        for tick in 1..=seconds * 10 {
            let now = t0 + Duration::from_millis(100 * tick);
            if let Err(cause) = rate.check(now) {
                return Some((tick / 10, cause));
            }
            rate.add(bytes_per_tick);
        }
        None
    }

    #[test]
    fn a_steady_2_mb_per_second_is_never_too_slow() {
        assert!(feed(min_rate(), 200_000, 120).is_none());
        // Just above the minimum passes too (10.3 KiB in each 10 s window).
        assert!(feed(min_rate(), 110, 120).is_none());
    }

    #[test]
    fn a_trickle_or_a_stall_is_too_slow_after_one_window() {
        for per_tick in [0, 1, 100] {
            let (second, cause) = feed(min_rate(), per_tick, 60).expect("too slow");
            assert_eq!(second, 10, "{per_tick} bytes per tick");
            assert!(matches!(cause, Cause::TooSlow { .. }), "{cause}");
        }
    }

    #[test]
    fn a_connection_that_slows_down_later_is_caught_in_the_window_it_slows() {
        let min = min_rate();
        let t0 = tokio::time::Instant::now();
        let mut rate = RateCheck::new(min, t0);
        rate.add(10 << 20);
        rate.check(t0 + Duration::from_secs(10)).unwrap();
        // A fast first window buys nothing for the next one.
        let err = rate.check(t0 + Duration::from_secs(20)).unwrap_err();
        assert!(matches!(err, Cause::TooSlow { bytes: 0, .. }), "{err}");
    }

    #[test]
    fn no_minimum_never_judges() {
        let off = MinRate {
            bytes_per_second: 0,
            window: Duration::from_secs(10),
        };
        assert!(feed(off, 0, 120).is_none());
        assert_eq!(
            RateCheck::new(off, tokio::time::Instant::now()).window_end(),
            None
        );
    }

    #[test]
    fn skipping_spans_chunks() {
        let mut skip = 5;
        assert_eq!(skip_prefix(Bytes::from_static(b"abc"), &mut skip), "");
        assert_eq!(skip_prefix(Bytes::from_static(b"defgh"), &mut skip), "fgh");
        assert_eq!(skip, 0);
        assert_eq!(skip_prefix(Bytes::from_static(b"ij"), &mut skip), "ij");
    }
}
