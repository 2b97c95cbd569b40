//! Feeds arbitrary bytes to the SPDY/3.1 frame decoder, whole and in two pieces: it must return
//! frames, "need more bytes" or an error, and never panic, loop or allocate without bound.
#![no_main]

use berth::streaming::spdy::frame::Decoder;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut whole = BytesMut::from(data);
    let mut decoder = Decoder::default();
    while let Ok(Some(_)) = decoder.decode(&mut whole) {}

    let split = data.first().map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::from(&data[..split]);
    while let Ok(Some(_)) = decoder.decode(&mut buf) {}
    buf.extend_from_slice(&data[split..]);
    while let Ok(Some(_)) = decoder.decode(&mut buf) {}
});
