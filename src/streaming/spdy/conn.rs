//! One SPDY/3.1 connection, server side: a reader task that decodes frames, answers each new
//! stream with SYN_REPLY and PINGs with themselves, and hands data to the streams; a writer task
//! that encodes frames onto the transport. Streams are opened by the client only.
//!
//! Flow control: received data is acknowledged with WINDOW_UPDATE once it is handed to its
//! stream (bounded channels, so a slow consumer holds the window shut). Sending honours the
//! peer's windows once the peer shows it does flow control (it sends WINDOW_UPDATE or an
//! initial window in SETTINGS); Go's spdystream, which kubectl and crictl use, never does, so
//! against it the windows are not enforced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc};

use super::frame::{
    Decoder, Encoder, FLAG_FIN, Frame, Headers, RST_PROTOCOL_ERROR, SETTINGS_INITIAL_WINDOW_SIZE,
};

/// The initial window of every stream (SPDY/3 default).
const INITIAL_WINDOW: i64 = 64 * 1024;
/// The largest DATA frame berth sends.
const MAX_DATA: usize = 32 * 1024;
/// Data frames buffered per stream before the reader waits for the consumer.
const STREAM_BUFFER: usize = 16;
/// Streams accepted and not yet taken by the handler.
const ACCEPT_BUFFER: usize = 64;
/// The most streams a connection may open.
const MAX_STREAMS: usize = 4096;

/// A stream opened by the client.
pub struct SpdyStream {
    pub id: u32,
    pub headers: Headers,
    /// The client's data; ends at its FIN, a reset, or the connection's end.
    pub data: mpsc::Receiver<Bytes>,
    pub writer: StreamWriter,
}

impl SpdyStream {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let (_, value) = self.headers.iter().find(|(n, _)| n == name)?;
        Some(value.split('\0').next().unwrap_or(""))
    }
}

/// Writes one stream's data.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
    flow: Arc<Flow>,
}

/// Send windows per stream.
#[derive(Default)]
struct Flow {
    enforced: AtomicBool,
    windows: Mutex<HashMap<u32, i64>>,
    initial: Mutex<Option<i64>>,
    opened: Notify,
}

/// The handler's side of a connection: new streams, and the way to end it.
pub struct Connection {
    pub incoming: mpsc::Receiver<SpdyStream>,
    out: mpsc::Sender<Frame>,
}

impl Connection {
    /// Starts the reader and writer tasks over `io`.
    pub fn start<T>(io: T) -> Connection
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(64);
        let (new_tx, new_rx) = mpsc::channel(ACCEPT_BUFFER);
        let flow = Arc::new(Flow::default());
        tokio::spawn(write_loop(wr, out_rx));
        tokio::spawn(read_loop(rd, out_tx.clone(), new_tx, flow));
        Connection {
            incoming: new_rx,
            out: out_tx,
        }
    }

    /// Sends GOAWAY after everything queued before it, then closes the transport for writing.
    pub async fn close(self) {
        let last_good = 0;
        let _ = self
            .out
            .send(Frame::GoAway {
                last_good,
                status: 0,
            })
            .await;
    }
}

impl StreamWriter {
    /// Sends `data` on the stream (in frames of at most 32 KiB, within the window when the
    /// peer does flow control). Fails when the connection is gone.
    pub async fn write(&self, mut data: Bytes) -> Result<(), ()> {
        while !data.is_empty() {
            let n = self.reserve(data.len().min(MAX_DATA)).await;
            let chunk = data.split_to(n);
            let frame = Frame::Data {
                stream_id: self.id,
                flags: 0,
                data: chunk,
            };
            self.out.send(frame).await.map_err(drop)?;
        }
        Ok(())
    }

    /// Ends the stream from our side (FIN).
    pub async fn close(&self) {
        let frame = Frame::Data {
            stream_id: self.id,
            flags: FLAG_FIN,
            data: Bytes::new(),
        };
        let _ = self.out.send(frame).await;
    }

    /// Waits for room in the stream's window; returns how much of `want` may be sent.
    async fn reserve(&self, want: usize) -> usize {
        loop {
            let opened = self.flow.opened.notified();
            if !self.flow.enforced.load(Ordering::Acquire) {
                return want;
            }
            {
                let initial = self
                    .flow
                    .initial
                    .lock()
                    .expect("flow lock")
                    .unwrap_or(INITIAL_WINDOW);
                let mut windows = self.flow.windows.lock().expect("flow lock");
                let window = windows.entry(self.id).or_insert(initial);
                if *window > 0 {
                    let n = want.min(*window as usize);
                    *window -= n as i64;
                    return n;
                }
            }
            opened.await;
        }
    }
}

async fn write_loop<W: AsyncWrite>(wr: W, mut frames: mpsc::Receiver<Frame>) {
    tokio::pin!(wr);
    let mut encoder = Encoder::default();
    let mut buf = BytesMut::new();
    while let Some(frame) = frames.recv().await {
        let last = matches!(frame, Frame::GoAway { .. });
        if encoder.encode(&frame, &mut buf).is_err() {
            break;
        }
        // Batch what is already queued into one write.
        while buf.len() < 256 * 1024 {
            let Ok(frame) = frames.try_recv() else { break };
            let _ = encoder.encode(&frame, &mut buf);
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            break;
        }
        buf.clear();
        if last {
            break;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_loop<R: AsyncRead>(
    rd: R,
    out: mpsc::Sender<Frame>,
    new: mpsc::Sender<SpdyStream>,
    flow: Arc<Flow>,
) {
    tokio::pin!(rd);
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut streams: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut last_id = 0;
    let mut opened = 0usize;
    loop {
        let frame = match decoder.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            },
            Err(e) => {
                tracing::debug!("spdy connection: {e}");
                let _ = out
                    .send(Frame::GoAway {
                        last_good: last_id,
                        status: 1,
                    })
                    .await;
                break;
            }
        };
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => {
                // Client streams are odd and increasing.
                if stream_id % 2 == 0 || stream_id <= last_id || opened >= MAX_STREAMS {
                    let status = RST_PROTOCOL_ERROR;
                    let _ = out.send(Frame::RstStream { stream_id, status }).await;
                    continue;
                }
                last_id = stream_id;
                opened += 1;
                let reply = Frame::SynReply {
                    stream_id,
                    flags: 0,
                    headers: Vec::new(),
                };
                if out.send(reply).await.is_err() {
                    break;
                }
                let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                if flags & FLAG_FIN == 0 {
                    streams.insert(stream_id, tx);
                }
                let stream = SpdyStream {
                    id: stream_id,
                    headers,
                    data: rx,
                    writer: StreamWriter {
                        id: stream_id,
                        out: out.clone(),
                        flow: flow.clone(),
                    },
                };
                if new.send(stream).await.is_err() {
                    break;
                }
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let len = data.len() as u32;
                if let Some(tx) = streams.get(&stream_id)
                    && !data.is_empty()
                    && tx.send(data).await.is_err()
                {
                    streams.remove(&stream_id);
                }
                if len > 0 {
                    let delta = len;
                    let _ = out.send(Frame::WindowUpdate { stream_id, delta }).await;
                }
                if flags & FLAG_FIN != 0 {
                    streams.remove(&stream_id);
                }
            }
            Frame::RstStream { stream_id, .. } => {
                streams.remove(&stream_id);
            }
            Frame::Ping { id } => {
                let _ = out.send(Frame::Ping { id }).await;
            }
            Frame::GoAway { .. } => break,
            Frame::WindowUpdate { stream_id, delta } => {
                flow.enforced.store(true, Ordering::Release);
                let initial = flow
                    .initial
                    .lock()
                    .expect("flow lock")
                    .unwrap_or(INITIAL_WINDOW);
                let mut windows = flow.windows.lock().expect("flow lock");
                *windows.entry(stream_id).or_insert(initial) += i64::from(delta);
                flow.opened.notify_waiters();
            }
            Frame::Settings { entries, .. } => {
                for (_, id, value) in entries {
                    if id == SETTINGS_INITIAL_WINDOW_SIZE {
                        *flow.initial.lock().expect("flow lock") = Some(i64::from(value));
                        flow.enforced.store(true, Ordering::Release);
                        flow.opened.notify_waiters();
                    }
                }
            }
            // SYN_REPLY for a stream we never open, HEADERS and unknown frames are ignored.
            _ => {}
        }
    }
    // Every stream's data ends here; waiting writers see the connection gone.
    drop(streams);
    flow.enforced.store(false, Ordering::Release);
    flow.opened.notify_waiters();
}
