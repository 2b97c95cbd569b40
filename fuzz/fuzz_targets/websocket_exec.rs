//! Feeds arbitrary WebSocket messages to the Exec/Attach session's decoding: each message's
//! channel byte (binary, or an ASCII digit and base64 text in the `base64.*` protocols), and the
//! resize channel's JSON terminal sizes, which may come back to back or split across messages.
//! Input: a flags byte (bit 0 base64 framing, bit 1 tty), then messages as [length, kind, bytes]
//! (kind even: binary, odd: text). No panic, no hang; every size read is one the messages carried.
#![no_main]

use std::time::Duration;

use berth::shimclient::StreamInput;
use berth::streaming::fuzzing::{Message, exec_message, resizes};
use libfuzzer_sys::fuzz_target;
use tokio::sync::mpsc;

const RESIZE: u8 = 4;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let (base64, tty) = (flags & 1 != 0, flags & 2 != 0);
    let mut messages = vec![];
    while let [len, kind, tail @ ..] = rest {
        let (body, next) = tail.split_at(usize::from(*len).min(tail.len()));
        messages.push(match (kind % 2, std::str::from_utf8(body)) {
            (1, Ok(text)) => Message::text(text),
            _ => Message::binary(body.to_vec()),
        });
        rest = next;
    }
    let mut resize_data = vec![];
    for msg in messages {
        if let Some((channel, data)) = exec_message(base64, msg)
            && channel == RESIZE
        {
            resize_data.push(data);
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let (data_tx, data_rx) = mpsc::channel(4);
        let (inputs_tx, mut inputs) = mpsc::channel(4);
        let chunks = resize_data.clone();
        tokio::spawn(async move {
            for chunk in chunks {
                if data_tx.send(chunk).await.is_err() {
                    return;
                }
            }
        });
        let first = resizes(data_rx, inputs_tx, tty).await;
        let mut sizes: Vec<_> = first.into_iter().collect();
        let rest = async {
            while let Some(input) = inputs.recv().await {
                match input {
                    StreamInput::Resize(size) => sizes.push(size),
                    other => panic!("the resize channel produced {other:?}"),
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), rest)
            .await
            .is_err()
        {
            panic!("the resize reader did not end after its last message");
        }
        let text: Vec<u8> = resize_data.concat();
        // Each size is one JSON object (or array) the client sent.
        let openings = text.iter().filter(|b| matches!(b, b'{' | b'[')).count();
        assert!(sizes.len() <= openings, "{sizes:?} from {text:?}");
    });
});
