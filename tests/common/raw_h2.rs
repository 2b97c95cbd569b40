//! One unary gRPC call over a unix socket written frame by frame, with any `:authority`: the
//! bytes gRPC C-core (`tmp%2Fdir%2Fx.sock`) or grpc-java (`/tmp/dir/x.sock`) put on the wire,
//! which typed clients (h2, tonic) cannot send because `http::Uri` refuses such authorities.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// What came back on stream 1.
#[derive(Debug, Default)]
pub struct Reply {
    /// The RST_STREAM (or GOAWAY) error code, if the server refused the stream.
    pub reset: Option<u32>,
    /// The response message, without gRPC's 5-byte length prefix.
    pub message: Vec<u8>,
    /// Header blocks received (response headers, then trailers).
    pub header_blocks: usize,
}

/// POSTs `message` to the gRPC method `path` (`/pkg.Service/Method`) with `authority`.
pub fn unary(socket: &Path, authority: &str, path: &str, message: &[u8]) -> Reply {
    let mut s =
        UnixStream::connect(socket).unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        // Literal header field without indexing, new name, no Huffman coding (RFC 7541 6.2.2).
        block.push(0);
        string(&mut block, name);
        string(&mut block, value);
    }
    let mut body = vec![0];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(message);
    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    frame(&mut out, HEADERS, END_HEADERS, 1, &block);
    frame(&mut out, DATA, END_STREAM, 1, &body);
    s.write_all(&out).expect("send the request");

    let mut reply = Reply::default();
    let mut data = Vec::new();
    loop {
        let mut head = [0u8; 9];
        s.read_exact(&mut head)
            .unwrap_or_else(|e| panic!("read a frame header: {e} (so far {reply:?})"));
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).expect("read a frame payload");
        match (kind, stream) {
            (SETTINGS, 0) if flags & ACK == 0 => {
                let mut ack = Vec::new();
                frame(&mut ack, SETTINGS, ACK, 0, &[]);
                s.write_all(&ack).expect("ack the server's settings");
            }
            (RST_STREAM, 1) => {
                reply.reset = Some(u32::from_be_bytes(payload[..4].try_into().unwrap()));
                break;
            }
            (GOAWAY, 0) => {
                reply.reset = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
                break;
            }
            (DATA, 1) => data.extend_from_slice(&payload),
            (HEADERS, 1) => {
                reply.header_blocks += 1;
                if flags & END_STREAM != 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    if data.len() >= 5 {
        reply.message = data[5..].to_vec();
    }
    reply
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK string literal: length as a 7-bit-prefix integer (Huffman bit clear), then bytes.
fn string(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s.as_bytes());
}
