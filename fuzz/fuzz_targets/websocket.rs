//! Feeds arbitrary bytes, as a client's side of the connection, to the WebSocket tunnel that
//! carries SPDY for PortForward: WebSocket frames (masked, fragmented, control frames) around the
//! raw SPDY byte stream, which berth's SPDY connection decodes (new streams, data, pings,
//! settings, resets, GOAWAY). Streams it accepts are read to their end. Every input must end the
//! connection cleanly once the client has sent everything: no panic, no hang.
#![no_main]

use std::time::Duration;

use berth::streaming::fuzzing::tunnel;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (mut from_server, mut to_server) = tokio::io::split(client);
        tokio::spawn(async move {
            let mut sink = vec![0; 16 * 1024];
            while matches!(from_server.read(&mut sink).await, Ok(n) if n > 0) {}
        });
        let input = data.to_vec();
        tokio::spawn(async move {
            let _ = to_server.write_all(&input).await;
            let _ = to_server.shutdown().await;
        });
        let serve = async {
            let mut conn = tunnel(server).await;
            while let Some(mut stream) = conn.incoming.recv().await {
                tokio::spawn(async move {
                    let _ = stream.header("streamtype");
                    while stream.data.recv().await.is_some() {}
                    stream.writer.close().await;
                });
            }
            conn.close().await;
        };
        if tokio::time::timeout(Duration::from_secs(10), serve)
            .await
            .is_err()
        {
            panic!("the connection did not end after the client's last byte");
        }
    });
});
