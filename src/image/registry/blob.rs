//! Streaming one blob from byte 0 to its end, resuming after a broken or stalled connection with
//! `Range: bytes=N-` from the first byte not yet handed out, and never handing out more than the
//! descriptor's size.

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
use super::transport::{Transport, backoff};
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
                    Ok(mut open) => loop {
                        let chunk = match self.next_chunk(&mut open.body).await {
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
                            if let Ok(Some(_)) = self.next_chunk(&mut open.body).await {
                                yield Err(self.too_large());
                            }
                            return;
                        }
                    },
                };
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

    /// The next non-empty chunk, None at the body's end, or why the body broke.
    async fn next_chunk(&self, body: &mut Body) -> Result<Option<Bytes>, Cause> {
        let no_progress = self.transport.no_progress;
        loop {
            match tokio::time::timeout(no_progress, body.next()).await {
                Err(_) => return Err(Cause::Stalled(no_progress)),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(Cause::Http(e.without_url())),
                Ok(Some(Ok(chunk))) if chunk.is_empty() => {}
                Ok(Some(Ok(chunk))) => return Ok(Some(chunk)),
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
    use super::*;

    #[test]
    fn content_range_start() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes 0-0/1"), Some(0));
        assert_eq!(range_start("bytes */200"), None);
        assert_eq!(range_start(""), None);
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
