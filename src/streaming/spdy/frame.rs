//! SPDY/3.1 frames: their wire format, and the zlib-compressed header blocks (one compression
//! context per direction, primed with the SPDY/3 dictionary) that SYN_STREAM, SYN_REPLY and
//! HEADERS carry.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The zlib dictionary of SPDY/3 header blocks (from the SPDY/3 specification).
const DICTIONARY: &[u8] = include_bytes!("dictionary.bin");
/// Control and data frame headers are 8 bytes.
pub const HEADER_LEN: usize = 8;
/// The largest decompressed header block accepted.
const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// The largest frame payload accepted (the 24-bit length allows 16 MiB).
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// FLAG_FIN: the sender's last frame on this stream.
pub const FLAG_FIN: u8 = 0x01;

/// Settings id of the initial per-stream window.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;
/// RST_STREAM status codes used by berth.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;

/// Header names (lower case) and values (several joined by NUL) in order.
pub type Headers = Vec<(String, String)>;

/// One SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        /// (flags, id, value)
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame type SPDY/3.1 does not define; receivers ignore it.
    Unknown {
        kind: u16,
    },
}

/// A frame that breaks the protocol; the connection is given up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("spdy: unsupported version {0}")]
    Version(u16),
    #[error("spdy: frame payload of {0} bytes is too large")]
    TooLarge(usize),
    #[error("spdy: {kind} frame is malformed: {message}")]
    Malformed {
        kind: &'static str,
        message: &'static str,
    },
    #[error("spdy: header block: {0}")]
    Compression(String),
}

fn malformed(kind: &'static str, message: &'static str) -> FrameError {
    FrameError::Malformed { kind, message }
}

/// Reads frames: owns the receiving direction's header decompression context.
pub struct Decoder {
    inflate: Decompress,
}

/// Writes frames: owns the sending direction's header compression context.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder {
            inflate: Decompress::new(true),
        }
    }
}

impl Default for Encoder {
    fn default() -> Encoder {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(DICTIONARY)
            .expect("a fresh deflate stream accepts a dictionary");
        Encoder { deflate }
    }
}

impl Decoder {
    /// Takes one whole frame off the front of `buf`; `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(len));
        }
        if buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let head = buf.split_to(HEADER_LEN);
        let mut payload = buf.split_to(len).freeze();
        let flags = head[4];
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let data = payload;
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data,
            }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != 3 {
            return Err(FrameError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let need = |n: usize, kind: &'static str, p: &Bytes| match p.len() >= n {
            true => Ok(()),
            false => Err(malformed(kind, "too short")),
        };
        let frame = match kind {
            1 => {
                need(10, "SYN_STREAM", &payload)?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                let associated = payload.get_u32() & 0x7fff_ffff;
                let priority = payload.get_u8() >> 5;
                payload.advance(1);
                let headers = self.headers(&payload, "SYN_STREAM")?;
                Frame::SynStream {
                    stream_id,
                    associated,
                    priority,
                    flags,
                    headers,
                }
            }
            2 | 8 => {
                let name = if kind == 2 { "SYN_REPLY" } else { "HEADERS" };
                need(4, name, &payload)?;
                let stream_id = payload.get_u32() & 0x7fff_ffff;
                let headers = self.headers(&payload, name)?;
                match kind {
                    2 => Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    },
                    _ => Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    },
                }
            }
            3 => {
                exact(8, "RST_STREAM", &payload)?;
                Frame::RstStream {
                    stream_id: payload.get_u32() & 0x7fff_ffff,
                    status: payload.get_u32(),
                }
            }
            4 => {
                need(4, "SETTINGS", &payload)?;
                let count = payload.get_u32() as usize;
                if payload.len() != count.saturating_mul(8) {
                    return Err(malformed("SETTINGS", "length does not match its entries"));
                }
                let entries = (0..count)
                    .map(|_| {
                        let word = payload.get_u32();
                        ((word >> 24) as u8, word & 0x00ff_ffff, payload.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            6 => {
                exact(4, "PING", &payload)?;
                Frame::Ping {
                    id: payload.get_u32(),
                }
            }
            7 => {
                exact(8, "GOAWAY", &payload)?;
                Frame::GoAway {
                    last_good: payload.get_u32() & 0x7fff_ffff,
                    status: payload.get_u32(),
                }
            }
            9 => {
                exact(8, "WINDOW_UPDATE", &payload)?;
                Frame::WindowUpdate {
                    stream_id: payload.get_u32() & 0x7fff_ffff,
                    delta: payload.get_u32() & 0x7fff_ffff,
                }
            }
            kind => Frame::Unknown { kind },
        };
        Ok(Some(frame))
    }

    /// Decompresses and parses a header block.
    fn headers(&mut self, block: &[u8], kind: &'static str) -> Result<Headers, FrameError> {
        let raw = inflate(&mut self.inflate, block)?;
        parse_headers(&raw).ok_or_else(|| malformed(kind, "bad header block"))
    }
}

fn exact(n: usize, kind: &'static str, p: &Bytes) -> Result<(), FrameError> {
    match p.len() == n {
        true => Ok(()),
        false => Err(malformed(kind, "wrong length")),
    }
}

impl Encoder {
    /// Appends `frame` in wire format to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
        let mut body = BytesMut::new();
        let (kind, flags) = match frame {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if data.len() > MAX_PAYLOAD {
                    return Err(FrameError::TooLarge(data.len()));
                }
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32((u32::from(*flags) << 24) | data.len() as u32);
                out.put_slice(data);
                return Ok(());
            }
            Frame::SynStream {
                stream_id,
                associated,
                priority,
                flags,
                headers,
            } => {
                body.put_u32(*stream_id);
                body.put_u32(*associated);
                body.put_u8(priority << 5);
                body.put_u8(0);
                body.put_slice(&self.block(headers)?);
                (1, *flags)
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                body.put_u32(*stream_id);
                body.put_slice(&self.block(headers)?);
                (2, *flags)
            }
            Frame::RstStream { stream_id, status } => {
                body.put_u32(*stream_id);
                body.put_u32(*status);
                (3, 0)
            }
            Frame::Settings { flags, entries } => {
                body.put_u32(entries.len() as u32);
                for (flags, id, value) in entries {
                    body.put_u32((u32::from(*flags) << 24) | (id & 0x00ff_ffff));
                    body.put_u32(*value);
                }
                (4, *flags)
            }
            Frame::Ping { id } => {
                body.put_u32(*id);
                (6, 0)
            }
            Frame::GoAway { last_good, status } => {
                body.put_u32(*last_good);
                body.put_u32(*status);
                (7, 0)
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                body.put_u32(*stream_id);
                body.put_slice(&self.block(headers)?);
                (8, *flags)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                body.put_u32(*stream_id);
                body.put_u32(*delta);
                (9, 0)
            }
            Frame::Unknown { kind } => (*kind, 0),
        };
        if body.len() > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(body.len()));
        }
        out.put_u16(0x8003);
        out.put_u16(kind);
        out.put_u32((u32::from(flags) << 24) | body.len() as u32);
        out.put_slice(&body);
        Ok(())
    }

    /// Serialises and compresses a header block (sync-flushed: it ends on a byte boundary).
    fn block(&mut self, headers: &Headers) -> Result<Vec<u8>, FrameError> {
        let mut raw = Vec::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        deflate(&mut self.deflate, &raw)
    }
}

/// Parses a decompressed header block; `None` when malformed.
fn parse_headers(mut raw: &[u8]) -> Option<Headers> {
    let take = |raw: &mut &[u8]| -> Option<String> {
        if raw.len() < 4 {
            return None;
        }
        let len = raw.get_u32() as usize;
        if raw.len() < len {
            return None;
        }
        let (text, rest) = raw.split_at(len);
        *raw = rest;
        String::from_utf8(text.to_vec()).ok()
    };
    if raw.len() < 4 {
        return None;
    }
    let count = raw.get_u32() as usize;
    // Each pair takes at least 8 bytes: a count beyond that is a lie.
    if count > raw.len() / 8 {
        return None;
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = take(&mut raw)?;
        let value = take(&mut raw)?;
        if name.is_empty() {
            return None;
        }
        headers.push((name.to_ascii_lowercase(), value));
    }
    raw.is_empty().then_some(headers)
}

fn deflate(c: &mut Compress, input: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(input.len() + 64);
    let mut pos = 0;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(256);
        }
        let before = c.total_in();
        c.compress_vec(&input[pos..], &mut out, FlushCompress::Sync)
            .map_err(|e| FrameError::Compression(e.to_string()))?;
        pos += (c.total_in() - before) as usize;
        if pos == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

fn inflate(d: &mut Decompress, input: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(input.len() * 4 + 64);
    let mut pos = 0;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(1024);
        }
        let (before, produced) = (d.total_in(), out.len());
        let result = d.decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync);
        pos += (d.total_in() - before) as usize;
        let stuck = d.total_in() == before && out.len() == produced;
        match result {
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(_) if stuck && pos < input.len() => {
                return Err(FrameError::Compression("no progress".into()));
            }
            Ok(_) => {}
            Err(e) if e.needs_dictionary().is_some() => {
                d.set_dictionary(DICTIONARY)
                    .map_err(|e| FrameError::Compression(e.to_string()))?;
            }
            Err(e) => return Err(FrameError::Compression(e.to_string())),
        }
        if out.len() > MAX_HEADER_BLOCK {
            return Err(FrameError::Compression("header block too large".into()));
        }
        if pos == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}
