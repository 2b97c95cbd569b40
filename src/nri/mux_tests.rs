//! The multiplexer against itself and against hand-written frames.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

#[tokio::test]
async fn two_ends_exchange_on_independent_connections() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (mut left, _a_task) = multiplex(a, &[PLUGIN_SERVICE, RUNTIME_SERVICE]);
    let (mut right, _b_task) = multiplex(b, &[PLUGIN_SERVICE, RUNTIME_SERVICE]);
    let mut l1 = left.remove(&PLUGIN_SERVICE).unwrap();
    let mut l2 = left.remove(&RUNTIME_SERVICE).unwrap();
    let mut r1 = right.remove(&PLUGIN_SERVICE).unwrap();
    let mut r2 = right.remove(&RUNTIME_SERVICE).unwrap();
    l1.write_all(b"to plugin").await.unwrap();
    l2.write_all(b"to runtime").await.unwrap();
    r2.write_all(b"reply").await.unwrap();
    let mut buf = [0u8; 10];
    r2.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"to runtime");
    let mut buf = [0u8; 9];
    r1.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"to plugin");
    let mut buf = [0u8; 5];
    l2.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"reply");
}

#[tokio::test]
async fn a_message_larger_than_a_frame_arrives_whole() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let (mut left, _a) = multiplex(a, &[PLUGIN_SERVICE]);
    let (mut right, _b) = multiplex(b, &[PLUGIN_SERVICE]);
    let mut tx = left.remove(&PLUGIN_SERVICE).unwrap();
    let mut rx = right.remove(&PLUGIN_SERVICE).unwrap();
    let big: Vec<u8> = (0..MAX_PAYLOAD + 12345).map(|i| (i % 251) as u8).collect();
    let sent = big.clone();
    let writer = tokio::spawn(async move { tx.write_all(&sent).await.unwrap() });
    let mut got = vec![0u8; big.len()];
    rx.read_exact(&mut got).await.unwrap();
    writer.await.unwrap();
    assert!(got == big);
}

#[tokio::test]
async fn the_wire_format_is_id_and_length_big_endian() {
    let (ours, mut peer) = tokio::io::duplex(1 << 16);
    let (mut conns, _task) = multiplex(ours, &[PLUGIN_SERVICE, RUNTIME_SERVICE]);
    // A frame for connection 2, one for an unknown connection (dropped), one for connection 1.
    peer.write_all(&[0, 0, 0, 2, 0, 0, 0, 3, b'a', b'b', b'c'])
        .await
        .unwrap();
    peer.write_all(&[0, 0, 0, 9, 0, 0, 0, 1, b'x'])
        .await
        .unwrap();
    peer.write_all(&[0, 0, 0, 1, 0, 0, 0, 2, b'h', b'i'])
        .await
        .unwrap();
    let mut buf = [0u8; 3];
    conns
        .get_mut(&RUNTIME_SERVICE)
        .unwrap()
        .read_exact(&mut buf)
        .await
        .unwrap();
    assert_eq!(&buf, b"abc");
    let mut buf = [0u8; 2];
    conns
        .get_mut(&PLUGIN_SERVICE)
        .unwrap()
        .read_exact(&mut buf)
        .await
        .unwrap();
    assert_eq!(&buf, b"hi");
    // And what berth writes on connection 1.
    conns
        .get_mut(&PLUGIN_SERVICE)
        .unwrap()
        .write_all(b"ok")
        .await
        .unwrap();
    let mut frame = [0u8; 10];
    peer.read_exact(&mut frame).await.unwrap();
    assert_eq!(frame, [0, 0, 0, 1, 0, 0, 0, 2, b'o', b'k']);
}

#[tokio::test]
async fn an_oversized_frame_closes_the_trunk_and_the_connections_end() {
    let (ours, mut peer) = tokio::io::duplex(1 << 16);
    let (mut conns, task) = multiplex(ours, &[PLUGIN_SERVICE]);
    let len = u32::try_from(MAX_PAYLOAD + 1).unwrap().to_be_bytes();
    let mut header = vec![0, 0, 0, 1];
    header.extend_from_slice(&len);
    peer.write_all(&header).await.unwrap();
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    let mut rest = Vec::new();
    let n = conns
        .get_mut(&PLUGIN_SERVICE)
        .unwrap()
        .read_to_end(&mut rest)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_closed_trunk_ends_the_connections() {
    let (ours, peer) = tokio::io::duplex(1 << 16);
    let (mut conns, task) = multiplex(ours, &[PLUGIN_SERVICE]);
    drop(peer);
    task.await.unwrap().unwrap();
    let mut rest = Vec::new();
    conns
        .get_mut(&PLUGIN_SERVICE)
        .unwrap()
        .read_to_end(&mut rest)
        .await
        .unwrap();
    assert!(rest.is_empty());
}

/// NRI's Go peer fails a frame larger than its 4096-byte read buffer: however much is written
/// at once, berth's frames stay within [`WRITE_FRAME`].
#[tokio::test]
async fn written_frames_fit_the_go_peers_read_buffer() {
    let (ours, mut peer) = tokio::io::duplex(1 << 20);
    let (mut conns, _task) = multiplex(ours, &[PLUGIN_SERVICE]);
    let mut tx = conns.remove(&PLUGIN_SERVICE).unwrap();
    let data: Vec<u8> = (0..50_000).map(|i| (i % 253) as u8).collect();
    tx.write_all(&data).await.unwrap();
    let mut got = vec![];
    while got.len() < data.len() {
        let mut header = [0u8; 8];
        peer.read_exact(&mut header).await.unwrap();
        let len = u32::from_be_bytes(header[4..].try_into().unwrap()) as usize;
        assert!(len <= WRITE_FRAME, "a frame of {len} bytes");
        assert!(len <= 4096);
        let mut payload = vec![0u8; len];
        peer.read_exact(&mut payload).await.unwrap();
        got.extend(payload);
    }
    assert!(got == data);
}
