//! Feeds arbitrary bytes to the SPDY/3.1 frame decoder, whole and in two pieces: it must return
//! frames, "need more bytes" or an error, and never panic, loop or allocate without bound. Both
//! ways must decode the same frames, and the frames it decodes must encode into bytes that decode
//! to the same frames again (the header blocks through one zlib context per direction).
#![no_main]

use berth::streaming::spdy::frame::{Decoder, Encoder, Frame};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut whole = BytesMut::from(data);
    let mut decoder = Decoder::default();
    let mut frames = vec![];
    while let Ok(Some(frame)) = decoder.decode(&mut whole) {
        frames.push(frame);
    }

    let split = data
        .first()
        .map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&data[..split]);
    let mut pieces = vec![];
    let mut failed = false;
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => pieces.push(frame),
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if !failed {
        buf.extend_from_slice(&data[split..]);
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            pieces.push(frame);
        }
        assert_eq!(pieces, frames, "split at {split}");
    }

    let mut encoder = Encoder::default();
    let mut wire = BytesMut::new();
    let mut encoded = vec![];
    for frame in frames {
        if encoder.encode(&frame, &mut wire).is_err() {
            break;
        }
        encoded.push(frame);
    }
    let mut decoder = Decoder::default();
    let mut again: Vec<Frame> = vec![];
    while let Some(frame) = decoder
        .decode(&mut wire)
        .expect("berth's own frames decode")
    {
        again.push(frame);
    }
    assert_eq!(again, encoded);
});
