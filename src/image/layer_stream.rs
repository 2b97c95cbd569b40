//! The blocking half of one layer's pull, on one thread: reads the downloaded chunks, hashes
//! (and optionally stores) them, decompresses, hashes the tar stream and untars it into the
//! staging snapshot. (A two-thread pipeline, decompressing on one and untarring on the other, was
//! measured slower on 2 cores: docs/benchmarks.md.)

use std::io::{self, Read};
use std::path::Path;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::content::{BlobWriter, ContentError};
use super::digest::{Digest, Hasher};
use super::manifest::Compression;
use super::pull::PullError;
use super::unpack;

/// What the unpacker measured of one layer stream.
pub(crate) struct Streamed {
    pub digest: Digest,
    pub compressed_size: u64,
    pub diff_id: Digest,
    pub unpacked: unpack::Unpacked,
    pub blob: Option<BlobWriter>,
}

/// Reads compressed chunks from `rx` until it closes, unpacking the layer into `target`.
pub(crate) fn unpack_stream(
    rx: mpsc::Receiver<Bytes>,
    blob: Option<BlobWriter>,
    compression: Compression,
    target: &Path,
    limits: &unpack::Limits,
    layer: &Digest,
) -> Result<Streamed, PullError> {
    let mut compressed = ChannelReader {
        rx,
        chunk: Bytes::new(),
        hasher: Hasher::default(),
        count: 0,
        blob,
        blob_error: None,
    };
    let decompress_err = |source| PullError::Decompress {
        layer: layer.clone(),
        source,
    };
    let (diff_id, unpacked) = {
        let decoder: Box<dyn Read + '_> = match compression {
            Compression::None => Box::new(&mut compressed),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut compressed)),
            Compression::Zstd => {
                Box::new(zstd::stream::read::Decoder::new(&mut compressed).map_err(decompress_err)?)
            }
        };
        let mut tar = HashingReader {
            inner: decoder,
            hasher: Hasher::default(),
            error: None,
        };
        let unpacked = unpack::unpack_layer(&mut tar, target, limits).map_err(|source| {
            // A stream that does not decompress is the download's fault, not the archive's.
            match tar.error.take() {
                Some(e) => decompress_err(e),
                None => PullError::Unpack {
                    layer: layer.clone(),
                    source,
                },
            }
        })?;
        // Whatever follows the archive's end still counts towards the diff id (and the limit).
        let mut tail = (&mut tar).take(limits.max_bytes);
        io::copy(&mut tail, &mut io::sink()).map_err(decompress_err)?;
        (tar.hasher.finish(), unpacked)
    };
    // Bytes after the compressed stream's end still count towards the blob digest.
    io::copy(&mut compressed, &mut io::sink()).map_err(decompress_err)?;
    if let Some(e) = compressed.blob_error.take() {
        return Err(e.into());
    }
    Ok(Streamed {
        digest: compressed.hasher.finish(),
        compressed_size: compressed.count,
        diff_id,
        unpacked,
        blob: compressed.blob,
    })
}

/// Hashes everything read through it (the uncompressed tar stream: the diff id) and keeps the
/// decompressor's first error.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    error: Option<io::Error>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                Ok(n)
            }
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                self.error.get_or_insert(e);
                Err(copy)
            }
        }
    }
}

/// Reads the download channel as a byte stream, hashing and optionally storing what passes.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
    hasher: Hasher,
    count: u64,
    blob: Option<BlobWriter>,
    blob_error: Option<ContentError>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.hasher.update(&chunk);
                    self.count += chunk.len() as u64;
                    if let Some(blob) = &mut self.blob
                        && self.blob_error.is_none()
                        && let Err(e) = blob.write(&chunk)
                    {
                        self.blob_error = Some(e);
                    }
                    self.chunk = chunk;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::error::{Classify, Kind};
    use crate::image::unpack::testtar::{E, Sandbox, tar};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// Streams `compressed` in 1000-byte chunks through the unpacker into `sb`'s root.
    fn stream(sb: &Sandbox, compressed: &[u8], max_bytes: u64) -> Result<Streamed, PullError> {
        stream_counting(sb, compressed, max_bytes).0
    }

    /// [`stream`], also saying how many compressed bytes were taken before the pipeline stopped.
    fn stream_counting(
        sb: &Sandbox,
        compressed: &[u8],
        max_bytes: u64,
    ) -> (Result<Streamed, PullError>, usize) {
        let (tx, rx) = mpsc::channel(4);
        let bytes = Bytes::copy_from_slice(compressed);
        let feeder = std::thread::spawn(move || {
            let mut sent = 0;
            for piece in bytes.chunks(1000) {
                if tx.blocking_send(bytes.slice_ref(piece)).is_err() {
                    break; // the unpacker stopped: what a download does too
                }
                sent += piece.len();
            }
            sent
        });
        let layer = Digest::of(compressed);
        let limits = unpack::Limits::bytes(max_bytes);
        let result = unpack_stream(rx, None, Compression::Gzip, &sb.root(), &limits, &layer);
        (result, feeder.join().unwrap())
    }

    #[test]
    fn both_digests_and_the_files_come_out_of_the_stream() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let layer = tar(&[E::file("a", b"hello"), E::dir("d"), E::file("d/big", &big)]);
        let compressed = gzip(&layer);
        let sb = Sandbox::new();
        let s = stream(&sb, &compressed, 1 << 30).unwrap();
        assert_eq!(s.digest, Digest::of(&compressed));
        assert_eq!(s.compressed_size, compressed.len() as u64);
        assert_eq!(s.diff_id, Digest::of(&layer));
        assert_eq!(std::fs::read(sb.root().join("d/big")).unwrap(), big);
        assert_eq!(std::fs::read(sb.root().join("a")).unwrap(), b"hello");
    }

    #[test]
    fn bytes_after_the_archive_count_towards_the_diff_id() {
        let mut layer = tar(&[E::file("a", b"x")]);
        layer.extend_from_slice(&[7; 5000]);
        let compressed = gzip(&layer);
        let sb = Sandbox::new();
        let s = stream(&sb, &compressed, 1 << 30).unwrap();
        assert_eq!(s.diff_id, Digest::of(&layer));
    }

    #[test]
    fn corrupt_compression_is_a_decompress_error() {
        let mut compressed = gzip(&tar(&[E::file("a", &[1; 100_000])]));
        let middle = compressed.len() / 2;
        compressed[middle..middle + 64].fill(0xff);
        let sb = Sandbox::new();
        let err = stream(&sb, &compressed, 1 << 30).err().unwrap();
        assert!(matches!(err, PullError::Decompress { .. }), "{err:?}");
        assert_eq!(err.kind(), Kind::Unavailable);
    }

    #[test]
    fn a_hostile_entry_stops_the_unpack_and_the_download() {
        // The escape comes first; megabytes of valid data follow that must not all be read.
        // xorshift noise: it does not compress, so the download is as long as the layer.
        let mut x = 0x2545_f491_u32;
        let filler: Vec<u8> = (0..4_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let layer = tar(&[E::file("../escape", b"x"), E::file("filler", &filler)]);
        let compressed = gzip(&layer);
        let sb = Sandbox::new();
        let (result, sent) = stream_counting(&sb, &compressed, 1 << 30);
        let err = result.err().unwrap();
        assert!(matches!(err, PullError::Unpack { .. }), "{err:?}");
        assert!(
            sent < compressed.len() / 2,
            "took {sent} of {} bytes",
            compressed.len()
        );
        sb.assert_contained();
    }
}
