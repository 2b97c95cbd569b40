//! Decompressing a layer on a thread of its own, beside the thread that untars it: the tar
//! stream passes between them in chunks whose buffers go back to the decompressor for reuse.
//! Used for the layer that takes longest (`layer_stream`), so that inflating and writing files
//! overlap when a core is free.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use super::digest::{Digest, Hasher};

/// Bytes of tar per chunk, and chunks in flight: 2 MiB between the two threads at most.
const CHUNK: usize = 128 * 1024;
const IN_FLIGHT: usize = 16;

/// How the decompressing thread ended.
pub(crate) enum Decoded {
    /// The whole stream decompressed: the digest of everything it produced (the diff id).
    Done(Digest),
    /// The compressed stream is corrupt or could not be read.
    Failed(io::Error),
    /// The untarring side stopped reading first.
    Abandoned,
}

/// Runs `untar` on the tar stream `decoder` produces, decompressing on a second thread; returns
/// how decompression ended and what `untar` returned. `untar` should read the stream to its
/// end: whatever it leaves unread stops the decompressor ([`Decoded::Abandoned`]).
pub(crate) fn decode_beside<T>(
    decoder: Box<dyn Read + Send + '_>,
    untar: impl FnOnce(&mut ChunkReader) -> T,
) -> (Decoded, T) {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel(IN_FLIGHT);
        let (back_tx, back_rx) = mpsc::channel();
        let producer = std::thread::Builder::new()
            .name("layer-decode".into())
            .spawn_scoped(scope, move || decode(decoder, &tx, &back_rx))
            .expect("spawning a decode thread");
        let mut reader = ChunkReader {
            rx,
            back: back_tx,
            chunk: Vec::new(),
            pos: 0,
        };
        let out = untar(&mut reader);
        drop(reader); // a decoder still sending sees the end
        let decoded = producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (decoded, out)
    })
}

/// The decompressing thread: fills chunks (reused ones first), hashes and sends them.
fn decode(
    mut decoder: Box<dyn Read + Send + '_>,
    tx: &SyncSender<Vec<u8>>,
    back: &Receiver<Vec<u8>>,
) -> Decoded {
    let mut hasher = Hasher::default();
    loop {
        let mut chunk = back.try_recv().unwrap_or_default();
        chunk.resize(CHUNK, 0);
        let mut filled = 0;
        while filled < CHUNK {
            match decoder.read(&mut chunk[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Decoded::Failed(e),
            }
        }
        if filled == 0 {
            return Decoded::Done(hasher.finish());
        }
        chunk.truncate(filled);
        hasher.update(&chunk);
        if tx.send(chunk).is_err() {
            return Decoded::Abandoned;
        }
    }
}

/// The untarring side's view of the stream; an early end means the decompressor stopped,
/// which [`Decoded`] then explains.
pub(crate) struct ChunkReader {
    rx: Receiver<Vec<u8>>,
    back: Sender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.chunk.len() {
            let Ok(next) = self.rx.recv() else {
                return Ok(0);
            };
            let used = std::mem::replace(&mut self.chunk, next);
            self.pos = 0;
            if used.capacity() > 0 {
                let _ = self.back.send(used); // the decoder may be gone: nothing to reuse then
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that yields `data`, then fails if `fail`.
    struct Source {
        data: io::Cursor<Vec<u8>>,
        fail: bool,
    }

    impl Read for Source {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.data.read(buf)? {
                0 if self.fail => Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt")),
                n => Ok(n),
            }
        }
    }

    fn source(data: &[u8], fail: bool) -> Box<dyn Read + Send> {
        Box::new(Source {
            data: io::Cursor::new(data.to_vec()),
            fail,
        })
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn the_stream_arrives_whole_and_hashed() {
        let data = data(CHUNK * IN_FLIGHT * 3 + 1234);
        let (decoded, read) = decode_beside(source(&data, false), |r| {
            let mut all = Vec::new();
            r.read_to_end(&mut all).unwrap();
            all
        });
        assert_eq!(read, data);
        assert!(matches!(decoded, Decoded::Done(d) if d == Digest::of(&data)));
    }

    #[test]
    fn a_corrupt_stream_fails_after_what_came_before() {
        let data = data(CHUNK + 10);
        let (decoded, read) = decode_beside(source(&data, true), |r| {
            let mut all = Vec::new();
            r.read_to_end(&mut all).unwrap();
            all
        });
        assert!(matches!(decoded, Decoded::Failed(e) if e.kind() == io::ErrorKind::InvalidData));
        assert_eq!(read, data[..CHUNK], "only whole chunks are handed over");
    }

    #[test]
    fn a_reader_that_stops_early_abandons_the_decoder() {
        let data = data(CHUNK * IN_FLIGHT * 4);
        let (decoded, read) = decode_beside(source(&data, false), |r| {
            let mut first = vec![0; 100];
            r.read_exact(&mut first).unwrap();
            first
        });
        assert_eq!(read, data[..100]);
        assert!(matches!(decoded, Decoded::Abandoned));
    }
}
