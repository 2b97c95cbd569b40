//! The frame codec: every frame type round-trips, header blocks share one compression context
//! per direction, partial input waits for more, and random input never panics.

use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};

use super::frame::{Decoder, Encoder, FLAG_FIN, Frame, FrameError};

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn every_kind() -> Vec<Frame> {
    vec![
        Frame::SynStream {
            stream_id: 1,
            associated: 0,
            priority: 3,
            flags: 0,
            headers: headers(&[("streamtype", "error"), ("port", "80")]),
        },
        Frame::SynReply {
            stream_id: 1,
            flags: FLAG_FIN,
            headers: vec![],
        },
        Frame::RstStream {
            stream_id: 3,
            status: 5,
        },
        Frame::Settings {
            flags: 1,
            entries: vec![(0, 7, 65536), (1, 4, 100)],
        },
        Frame::Ping { id: 9 },
        Frame::GoAway {
            last_good: 7,
            status: 0,
        },
        Frame::Headers {
            stream_id: 5,
            flags: 0,
            headers: headers(&[("a", "b\0c")]),
        },
        Frame::WindowUpdate {
            stream_id: 5,
            delta: 1000,
        },
        Frame::Data {
            stream_id: 5,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"hello"),
        },
        Frame::Unknown { kind: 42 },
    ]
}

#[test]
fn every_frame_kind_round_trips_on_one_connection() {
    let (mut enc, mut dec) = (Encoder::default(), Decoder::default());
    let mut wire = BytesMut::new();
    let frames = every_kind();
    // Twice: the second header blocks depend on the compression state the first left.
    for frame in frames.iter().chain(&frames) {
        enc.encode(frame, &mut wire).unwrap();
    }
    for frame in frames.iter().chain(&frames) {
        assert_eq!(dec.decode(&mut wire).unwrap().as_ref(), Some(frame));
    }
    assert!(wire.is_empty());
}

#[test]
fn a_partial_frame_waits_for_more_bytes() {
    let mut enc = Encoder::default();
    let mut wire = BytesMut::new();
    enc.encode(&every_kind()[0], &mut wire).unwrap();
    let mut dec = Decoder::default();
    let mut part = BytesMut::from(&wire[..wire.len() - 1]);
    assert_eq!(dec.decode(&mut part), Ok(None));
    part.extend_from_slice(&wire[wire.len() - 1..]);
    assert_eq!(
        dec.decode(&mut part).unwrap(),
        Some(every_kind()[0].clone())
    );
}

#[test]
fn control_frames_are_checked() {
    let mut dec = Decoder::default();
    // Version 2 is refused.
    let mut v2 = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
    assert_eq!(dec.decode(&mut v2), Err(FrameError::Version(2)));
    // A PING of the wrong length.
    let mut ping = BytesMut::from(&[0x80, 3, 0, 6, 0, 0, 0, 2, 0, 0][..]);
    assert!(matches!(
        dec.decode(&mut ping),
        Err(FrameError::Malformed { .. })
    ));
    // A frame claiming 16 MiB.
    let mut big = BytesMut::from(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff][..]);
    assert!(matches!(dec.decode(&mut big), Err(FrameError::TooLarge(_))));
    // A header block that is not zlib.
    let mut bad = BytesMut::from(&[0x80, 3, 0, 2, 0, 0, 0, 8, 0, 0, 0, 1, 1, 2, 3, 4][..]);
    assert!(dec.decode(&mut bad).is_err());
}

/// Random frames round-trip; random bytes (and random corruptions of valid frames) only ever
/// give frames or errors, never a panic.
#[test]
fn randomized_frames_round_trip_and_garbage_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5bd1);
    for _ in 0..300 {
        let (mut enc, mut dec) = (Encoder::default(), Decoder::default());
        let mut wire = BytesMut::new();
        let mut sent = Vec::new();
        for _ in 0..rng.random_range(1..8) {
            let frame = random_frame(&mut rng);
            enc.encode(&frame, &mut wire).unwrap();
            sent.push(frame);
        }
        let valid = wire.clone();
        for frame in &sent {
            assert_eq!(dec.decode(&mut wire).unwrap().as_ref(), Some(frame));
        }
        let mut corrupt = valid.to_vec();
        for _ in 0..rng.random_range(1..6) {
            let i = rng.random_range(0..corrupt.len());
            corrupt[i] = rng.random();
        }
        drain(&mut BytesMut::from(&corrupt[..]));
        let noise: Vec<u8> = (0..rng.random_range(0..512))
            .map(|_| rng.random())
            .collect();
        drain(&mut BytesMut::from(&noise[..]));
    }
}

fn drain(buf: &mut BytesMut) {
    let mut dec = Decoder::default();
    while let Ok(Some(_)) = dec.decode(buf) {}
}

fn random_frame(rng: &mut impl Rng) -> Frame {
    let id = rng.random_range(1..0x7fff_ffffu32);
    let text = |rng: &mut dyn rand::RngCore| -> String {
        let len = rng.random_range(1..24);
        (0..len)
            .map(|_| rng.random_range(b'a'..=b'z') as char)
            .collect()
    };
    let mut hs = Vec::new();
    for _ in 0..rng.random_range(0..6) {
        hs.push((text(rng), text(rng)));
    }
    match rng.random_range(0..6) {
        0 => Frame::SynStream {
            stream_id: id,
            associated: 0,
            priority: rng.random_range(0..8),
            flags: rng.random_range(0..4),
            headers: hs,
        },
        1 => Frame::SynReply {
            stream_id: id,
            flags: 0,
            headers: hs,
        },
        2 => Frame::Ping { id: rng.random() },
        3 => Frame::WindowUpdate {
            stream_id: id,
            delta: rng.random_range(1..0x7fff_ffff),
        },
        4 => Frame::Headers {
            stream_id: id,
            flags: 0,
            headers: hs,
        },
        _ => {
            let data: Vec<u8> = (0..rng.random_range(0..4096))
                .map(|_| rng.random())
                .collect();
            Frame::Data {
                stream_id: id,
                flags: rng.random_range(0..2),
                data: data.into(),
            }
        }
    }
}
