//! The connection, driven by a hand-made client over an in-memory pipe: replies to new streams,
//! echoes pings, hands data over and acknowledges it, finishes streams, and honours send windows
//! once the peer does flow control.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::conn::Connection;
use super::frame::{Decoder, Encoder, FLAG_FIN, Frame};

struct Client {
    io: DuplexStream,
    enc: Encoder,
    dec: Decoder,
    buf: BytesMut,
}

impl Client {
    async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        self.enc.encode(&frame, &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    async fn recv(&mut self) -> Frame {
        loop {
            if let Some(frame) = self.dec.decode(&mut self.buf).unwrap() {
                return frame;
            }
            let read = self.io.read_buf(&mut self.buf);
            let n = tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "connection closed");
        }
    }
}

fn start() -> (Connection, Client) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let client = Client {
        io: theirs,
        enc: Encoder::default(),
        dec: Decoder::default(),
        buf: BytesMut::new(),
    };
    (Connection::start(ours), client)
}

fn syn(stream_id: u32, kind: &str) -> Frame {
    Frame::SynStream {
        stream_id,
        associated: 0,
        priority: 0,
        flags: 0,
        headers: vec![("streamtype".into(), kind.into())],
    }
}

#[tokio::test]
async fn streams_are_replied_to_fed_acknowledged_and_finished() {
    let (mut conn, mut client) = start();
    client.send(syn(1, "stdin")).await;
    assert!(matches!(
        client.recv().await,
        Frame::SynReply { stream_id: 1, .. }
    ));
    let mut stream = conn.incoming.recv().await.unwrap();
    assert_eq!(stream.header("streamtype"), Some("stdin"));

    client.send(Frame::Ping { id: 7 }).await;
    assert_eq!(client.recv().await, Frame::Ping { id: 7 });

    let data = Bytes::from_static(b"hello");
    let flags = FLAG_FIN;
    client
        .send(Frame::Data {
            stream_id: 1,
            flags,
            data,
        })
        .await;
    assert_eq!(stream.data.recv().await.unwrap(), "hello");
    assert_eq!(
        client.recv().await,
        Frame::WindowUpdate {
            stream_id: 1,
            delta: 5
        }
    );
    // FIN: the stream's data ends.
    assert!(stream.data.recv().await.is_none());

    stream
        .writer
        .write(Bytes::from_static(b"out"))
        .await
        .unwrap();
    stream.writer.close().await;
    let data = Bytes::from_static(b"out");
    assert_eq!(
        client.recv().await,
        Frame::Data {
            stream_id: 1,
            flags: 0,
            data
        }
    );
    let fin = Frame::Data {
        stream_id: 1,
        flags: FLAG_FIN,
        data: Bytes::new(),
    };
    assert_eq!(client.recv().await, fin);

    // Even ids are the server's: refused.
    client.send(syn(2, "stdout")).await;
    assert!(matches!(
        client.recv().await,
        Frame::RstStream { stream_id: 2, .. }
    ));

    conn.close().await;
    assert!(matches!(client.recv().await, Frame::GoAway { .. }));
}

#[tokio::test]
async fn sending_waits_for_the_window_once_the_peer_does_flow_control() {
    let (mut conn, mut client) = start();
    // The peer announces a 10-byte initial window.
    let entries = vec![(0, 7, 10)];
    client.send(Frame::Settings { flags: 0, entries }).await;
    client.send(syn(1, "stdout")).await;
    assert!(matches!(client.recv().await, Frame::SynReply { .. }));
    let stream = conn.incoming.recv().await.unwrap();
    let writer = stream.writer.clone();
    let write = tokio::spawn(async move { writer.write(Bytes::from(vec![b'x'; 25])).await });
    let mut got = 0;
    for _ in 0..3 {
        match client.recv().await {
            Frame::Data { data, .. } => {
                assert!(data.len() <= 10, "a frame beyond the window");
                got += data.len();
            }
            other => panic!("unexpected {other:?}"),
        }
        if got < 25 {
            // Nothing more comes until the window opens.
            let more = tokio::time::timeout(Duration::from_millis(200), client.recv());
            assert!(more.await.is_err(), "data sent beyond the window");
            client
                .send(Frame::WindowUpdate {
                    stream_id: 1,
                    delta: 10,
                })
                .await;
        }
    }
    assert_eq!(got, 25);
    write.await.unwrap().unwrap();
}
