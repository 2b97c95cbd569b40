//! The idle timeout of an upgraded streaming session (`streaming.idle_timeout`): the session's
//! transport, wrapped so that once no byte has moved in either direction for the timeout, reads
//! and writes fail with `TimedOut`. The session then ends as if the client had gone, and
//! dropping it closes the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A transport that fails once idle for `timeout`.
pub struct IdleTimeout<T> {
    inner: T,
    timeout: Duration,
    /// When a byte last moved.
    last: Instant,
    /// Fires at `last + timeout` as of when it was set; checked against `last` when it fires.
    /// Polled from reads only: a session always has a read pending on its client.
    timer: Pin<Box<Sleep>>,
    expired: bool,
}

impl<T> IdleTimeout<T> {
    pub fn new(inner: T, timeout: Duration) -> IdleTimeout<T> {
        let last = Instant::now();
        IdleTimeout {
            inner,
            timeout,
            last,
            timer: Box::pin(tokio::time::sleep_until(last + timeout)),
            expired: false,
        }
    }

    fn timed_out() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "streaming session idle timeout")
    }

    /// Whether the session has been idle for the timeout; otherwise the timer is armed for the
    /// current deadline (and wakes `cx` then).
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let deadline = self.last + self.timeout;
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.last + self.timeout <= Instant::now() {
                self.expired = true;
                return true;
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Err(Self::timed_out()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.last = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending if this.poll_expired(cx) => Poll::Ready(Err(Self::timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Err(Self::timed_out()));
        }
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &result
            && *n > 0
        {
            this.last = Instant::now();
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const TIMEOUT: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn a_silent_transport_times_out() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut io = IdleTimeout::new(ours, TIMEOUT);
        let started = Instant::now();
        let err = io.read(&mut [0u8; 8]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(took >= TIMEOUT && took < 3 * TIMEOUT, "{took:?}");
        assert!(io.write_all(b"x").await.is_err(), "writes fail too");
    }

    #[tokio::test]
    async fn traffic_either_way_keeps_it_open() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let (mut rd, mut wr) = tokio::io::split(IdleTimeout::new(ours, TIMEOUT));
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => continue,
                    Err(e) => return Err(e.kind()),
                }
            }
        });
        // Three timeouts' worth of traffic, a byte every 200 ms, alternating directions (the
        // written bytes are never read back, so only the write counts for them).
        for i in 0..15 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if i % 2 == 0 {
                theirs.write_all(b"i").await.unwrap();
            } else {
                wr.write_all(b"o").await.unwrap();
            }
            assert!(!reader.is_finished(), "closed while active, after byte {i}");
        }
        // Then silence: it times out one timeout after the last byte.
        let silent = Instant::now();
        let result = reader.await.unwrap();
        assert_eq!(result, Err(io::ErrorKind::TimedOut));
        let took = silent.elapsed();
        assert!(took >= TIMEOUT / 2 && took < 3 * TIMEOUT, "{took:?}");
    }
}
