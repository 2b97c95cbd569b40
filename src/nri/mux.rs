//! NRI's connection multiplexer: one unix stream (the "trunk") carries several byte streams,
//! each frame an 8-byte header — the connection id and the payload length, both big-endian u32 —
//! then the payload. NRI runs two ttrpc connections over one plugin socket: [`PLUGIN_SERVICE`]
//! (the runtime calls the plugin) and [`RUNTIME_SERVICE`] (the plugin calls the runtime). Each
//! logical connection is handed out as a tokio `DuplexStream`, which ttrpc's async `Socket`
//! accepts. berth writes frames of at most [`WRITE_FRAME`] bytes, the most NRI's Go peer reads
//! at once. Frames for a connection nobody opened are dropped, as the protocol's reference does;
//! a frame longer than [`MAX_PAYLOAD`] (a ttrpc message header plus its 4 MiB limit) is a
//! protocol error that closes the trunk, so a hostile peer cannot make berth buffer more.

use std::collections::HashMap;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};

/// The connection of the plugin's ttrpc service (Configure, Synchronize, events).
pub const PLUGIN_SERVICE: u32 = 1;
/// The connection of the runtime's ttrpc service (RegisterPlugin, UpdateContainers).
pub const RUNTIME_SERVICE: u32 = 2;
/// Largest payload of one frame: a ttrpc message header (10 bytes) and its 4 MiB body limit.
pub const MAX_PAYLOAD: usize = 10 + (4 << 20);
/// Bytes buffered per logical connection in each direction.
const BUFFER: usize = 64 * 1024;
/// Largest payload berth writes in one frame. NRI's Go side hands each frame whole to a ttrpc
/// reader whose buffer is 4096 bytes (Go's `bufio` default) and fails a larger one, so
/// concurrent requests must not be packed into one big frame.
pub const WRITE_FRAME: usize = 4096;

/// Multiplexes `trunk` into the connections `ids`; returns each one's stream and the task that
/// runs the trunk (it ends, with the reason, when the trunk closes or breaks; the logical
/// streams then read end-of-file). Aborting that task closes the trunk.
pub fn multiplex<S>(
    trunk: S,
    ids: &[u32],
) -> (HashMap<u32, DuplexStream>, JoinHandle<std::io::Result<()>>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (trunk_read, trunk_write) = tokio::io::split(trunk);
    let (frames_tx, frames_rx) = mpsc::channel::<(u32, Vec<u8>)>(16);
    let mut handed_out = HashMap::new();
    let mut inbound = HashMap::new();
    let mut pumps = Vec::new();
    for &id in ids {
        let (ours, theirs) = tokio::io::duplex(BUFFER);
        handed_out.insert(id, theirs);
        let (mut from_user, to_user) = tokio::io::split(ours);
        inbound.insert(id, to_user);
        let frames = frames_tx.clone();
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0u8; BUFFER];
            loop {
                match from_user.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        for chunk in buf[..n].chunks(WRITE_FRAME) {
                            if frames.send((id, chunk.to_vec())).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }));
    }
    drop(frames_tx);
    let task = tokio::spawn(async move {
        let writer = tokio::spawn(write_frames(trunk_write, frames_rx));
        // Stops the writer (which holds the trunk's write half) and the pumps however this task
        // ends, aborted included: aborting the trunk's task closes the socket.
        let mut helpers: Vec<_> = pumps.iter().map(JoinHandle::abort_handle).collect();
        helpers.push(writer.abort_handle());
        let _helpers = AbortOnDrop(helpers);
        read_frames(trunk_read, inbound).await
    });
    (handed_out, task)
}

/// Aborts its tasks when dropped.
struct AbortOnDrop(Vec<AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

async fn write_frames<W: AsyncWrite>(
    trunk: W,
    mut frames: mpsc::Receiver<(u32, Vec<u8>)>,
) -> std::io::Result<()> {
    let mut trunk = std::pin::pin!(trunk);
    while let Some((id, payload)) = frames.recv().await {
        let len = u32::try_from(payload.len()).expect("chunks are at most WRITE_FRAME");
        let mut frame = Vec::with_capacity(8 + payload.len());
        frame.extend_from_slice(&id.to_be_bytes());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&payload);
        trunk.write_all(&frame).await?;
        trunk.flush().await?;
    }
    Ok(())
}

/// Reads frames until the trunk ends; routes each payload to its connection.
async fn read_frames<R, W>(mut trunk: R, mut conns: HashMap<u32, W>) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let result = loop {
        let mut header = [0u8; 8];
        match trunk.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break Ok(()),
            Err(e) => break Err(e),
        }
        let id = u32::from_be_bytes(header[..4].try_into().expect("4 bytes"));
        let len = u32::from_be_bytes(header[4..].try_into().expect("4 bytes")) as usize;
        if len > MAX_PAYLOAD {
            break Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("NRI frame for connection {id}: {len} bytes, more than {MAX_PAYLOAD}"),
            ));
        }
        let mut payload = vec![0u8; len];
        if let Err(e) = trunk.read_exact(&mut payload).await {
            break Err(e);
        }
        if let Some(conn) = conns.get_mut(&id)
            && conn.write_all(&payload).await.is_err()
        {
            // Its user went away: later frames for it are dropped.
            conns.remove(&id);
        }
    };
    for (_, mut conn) in conns {
        let _ = conn.shutdown().await;
    }
    result
}

#[cfg(test)]
#[path = "mux_tests.rs"]
mod tests;
