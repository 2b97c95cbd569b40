//! One layer's pull once its download has started. Every downloaded chunk goes to two threads
//! at once: one hashes (and optionally stores) the compressed blob, the other decompresses,
//! hashes the tar stream and untars it into the staging snapshot. The chunks are shared, not
//! copied. The largest layer of a pull splits the second thread once more, decompressing on one
//! and untarring on another (`decode_thread`): docs/benchmarks.md has the measurements.

use std::io::{self, Read};
use std::path::Path;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::content::{BlobWriter, ContentError};
use super::decode_thread::{Decoded, decode_beside};
use super::digest::{Digest, Hasher};
use super::manifest::Compression;
use super::pull::PullError;
use super::registry::BlobStream;
use super::unpack;

/// Pieces buffered between a layer's download and each of its two threads, and the largest
/// piece: at most 4 MiB of a layer waits in memory per thread, whatever size of reads the HTTP
/// client makes (both threads hold the same pieces, so it is 4 MiB unless one lags the other).
const CHUNKS_IN_FLIGHT: usize = 64;
const MAX_CHUNK: usize = 64 * 1024;

/// How a layer's stream is unpacked.
#[derive(Clone, Copy)]
pub(crate) struct Unpacking {
    pub compression: Compression,
    pub limits: unpack::Limits,
    /// Decompress on a thread of its own (`decode_thread`).
    pub beside: bool,
}

/// What the two threads measured of one layer stream.
pub(crate) struct Streamed {
    pub digest: Digest,
    pub compressed_size: u64,
    pub diff_id: Digest,
    pub unpacked: unpack::Unpacked,
    pub blob: Option<BlobWriter>,
}

/// Streams `download` into the directory `staging` names (and into `blob` when storing), and
/// hands the staging directory back with what was measured. `on_bytes` hears of every chunk.
/// With `how.beside`, the layer is decompressed on a third thread (`decode_thread`): for the
/// layer that takes longest, whose unpacking is what a pull waits for.
/// Errors, first found first: the download's, the blob store's, the unpacker's. Should the
/// future be dropped, both threads stop at their next read and the staging directory (owned by
/// the unpacker until it returns) is dropped once nothing writes into it.
pub(crate) async fn stream_layer<S: AsRef<Path> + Send + 'static>(
    mut download: BlobStream,
    blob: Option<BlobWriter>,
    how: Unpacking,
    staging: S,
    layer: &Digest,
    mut on_bytes: impl FnMut(u64),
) -> Result<(Streamed, S), PullError> {
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let (store_tx, store_rx) = mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let digest = layer.clone();
    let unpacker = tokio::task::spawn_blocking(move || {
        let result = unpack_stream(rx, &how, staging.as_ref(), &digest);
        result.map(|unpacked| (unpacked, staging))
    });
    let storer = tokio::task::spawn_blocking(move || store_stream(store_rx, blob));
    let mut download_error = None;
    'download: while let Some(chunk) = download.next().await {
        let mut chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                download_error = Some(e);
                break;
            }
        };
        on_bytes(chunk.len() as u64);
        while !chunk.is_empty() {
            let piece = chunk.split_to(chunk.len().min(MAX_CHUNK));
            // A thread that stopped has failed; its error is the one to report.
            if store_tx.send(piece.clone()).await.is_err() || tx.send(piece).await.is_err() {
                break 'download;
            }
        }
    }
    drop((tx, store_tx));
    let worker_error = |e: tokio::task::JoinError| PullError::Worker {
        layer: layer.clone(),
        message: e.to_string(),
    };
    let unpacked = unpacker.await.map_err(worker_error);
    let stored = storer.await.map_err(worker_error)?;
    if let Some(e) = download_error {
        return Err(e.into());
    }
    // A store that failed stopped the download, which the unpacker saw as a truncated stream.
    let stored = stored?;
    let ((diff_id, unpacked), staging) = unpacked??;
    let streamed = Streamed {
        digest: stored.digest,
        compressed_size: stored.size,
        diff_id,
        unpacked,
        blob: stored.blob,
    };
    Ok((streamed, staging))
}

/// What the storing thread measured: the compressed blob's digest and size.
struct Stored {
    pub digest: Digest,
    pub size: u64,
    pub blob: Option<BlobWriter>,
}

/// Hashes (and with a `blob`, stores) every chunk from `rx` until it closes. Stops at the first
/// write error, which stops the download.
fn store_stream(
    mut rx: mpsc::Receiver<Bytes>,
    mut blob: Option<BlobWriter>,
) -> Result<Stored, ContentError> {
    let mut hasher = Hasher::default();
    let mut size = 0;
    while let Some(chunk) = rx.blocking_recv() {
        size += chunk.len() as u64;
        match &mut blob {
            Some(blob) => blob.write(&chunk)?, // hashes as it writes
            None => hasher.update(&chunk),
        }
    }
    let digest = match &blob {
        Some(blob) => blob.digest(),
        None => hasher.finish(),
    };
    Ok(Stored { digest, size, blob })
}

/// Reads compressed chunks from `rx` until it closes, unpacking the layer into `target`; returns
/// the diff id (the tar stream's digest) and what was unpacked.
fn unpack_stream(
    rx: mpsc::Receiver<Bytes>,
    how: &Unpacking,
    target: &Path,
    layer: &Digest,
) -> Result<(Digest, unpack::Unpacked), PullError> {
    let mut compressed = ChannelReader {
        rx,
        chunk: Bytes::new(),
    };
    let decoder: Box<dyn Read + Send + '_> = match how.compression {
        Compression::None => Box::new(&mut compressed),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut compressed)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(&mut compressed)
                .map_err(|e| decompress_err(layer, e))?,
        ),
    };
    let done = if how.beside {
        untar_beside(decoder, target, &how.limits, layer)?
    } else {
        untar_here(decoder, target, &how.limits, layer)?
    };
    // Bytes after the compressed stream's end count towards the blob digest: read them all, so
    // that the download goes on to the end.
    io::copy(&mut compressed, &mut io::sink()).map_err(|e| decompress_err(layer, e))?;
    Ok(done)
}

/// Decompresses, hashes and untars on this thread.
fn untar_here(
    decoder: Box<dyn Read + Send + '_>,
    target: &Path,
    limits: &unpack::Limits,
    layer: &Digest,
) -> Result<(Digest, unpack::Unpacked), PullError> {
    let mut tar = HashingReader {
        inner: decoder,
        hasher: Hasher::default(),
        error: None,
    };
    let unpacked = unpack::unpack_layer(&mut tar, target, limits).map_err(|source| {
        // A stream that does not decompress is the download's fault, not the archive's.
        match tar.error.take() {
            Some(e) => decompress_err(layer, e),
            None => unpack_err(layer, source),
        }
    })?;
    // Whatever follows the archive's end still counts towards the diff id (and the limit).
    let mut tail = (&mut tar).take(limits.max_bytes);
    io::copy(&mut tail, &mut io::sink()).map_err(|e| decompress_err(layer, e))?;
    Ok((tar.hasher.finish(), unpacked))
}

/// Untars on this thread what `decoder` decompresses (and hashes) on another (`decode_thread`).
fn untar_beside(
    decoder: Box<dyn Read + Send + '_>,
    target: &Path,
    limits: &unpack::Limits,
    layer: &Digest,
) -> Result<(Digest, unpack::Unpacked), PullError> {
    let (decoded, unpacked) = decode_beside(decoder, |tar| {
        let unpacked = unpack::unpack_layer(&mut *tar, target, limits)?;
        // Whatever follows the archive's end counts towards the diff id and the limit.
        io::copy(&mut tar.take(limits.max_bytes), &mut io::sink())
            .map_err(unpack::UnpackError::Tar)?;
        Ok(unpacked)
    });
    match decoded {
        // The unpacker saw the stream end early; the corruption is the cause.
        Decoded::Failed(e) => Err(decompress_err(layer, e)),
        // The unpacker stopped reading: its error, or a tail past the limit.
        Decoded::Abandoned => Err(unpack_err(
            layer,
            unpacked.err().unwrap_or(unpack::UnpackError::TooLarge {
                limit: limits.max_bytes,
            }),
        )),
        Decoded::Done(diff_id) => Ok((diff_id, unpacked.map_err(|e| unpack_err(layer, e))?)),
    }
}

fn decompress_err(layer: &Digest, source: io::Error) -> PullError {
    PullError::Decompress {
        layer: layer.clone(),
        source,
    }
}

fn unpack_err(layer: &Digest, source: unpack::UnpackError) -> PullError {
    PullError::Unpack {
        layer: layer.clone(),
        source,
    }
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

/// Reads the download channel as a byte stream.
struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk,
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::error::{Classify, Kind};
    use crate::image::content::ContentStore;
    use crate::image::registry::RegistryError;
    use crate::image::unpack::testtar::{E, Sandbox, tar};

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    /// A download of `bytes` in 1000-byte chunks, then `error` if any; `taken` counts the bytes
    /// the pipeline asked for.
    fn download(bytes: &[u8], error: Option<RegistryError>, taken: Arc<AtomicUsize>) -> BlobStream {
        let bytes = Bytes::copy_from_slice(bytes);
        let chunks: Vec<Result<Bytes, RegistryError>> = bytes
            .chunks(1000)
            .map(|piece| Ok(bytes.slice_ref(piece)))
            .chain(error.map(Err))
            .collect();
        Box::pin(futures::stream::iter(chunks).inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                taken.fetch_add(chunk.len(), Ordering::Relaxed);
            }
        }))
    }

    /// Streams `compressed` through both threads into `sb`'s root, storing the blob in `blob`;
    /// also says how many compressed bytes were taken before the pipeline stopped.
    async fn stream_with(
        sb: &Sandbox,
        compressed: &[u8],
        max_bytes: u64,
        error: Option<RegistryError>,
        blob: Option<BlobWriter>,
        beside: bool,
    ) -> (Result<Streamed, PullError>, usize) {
        let taken = Arc::new(AtomicUsize::new(0));
        let layer = Digest::of(compressed);
        let limits = unpack::Limits::bytes(max_bytes);
        let mut heard = 0;
        let source = download(compressed, error, taken.clone());
        let how = Unpacking {
            compression: Compression::Gzip,
            limits,
            beside,
        };
        let result = stream_layer(source, blob, how, sb.root(), &layer, |n| heard += n).await;
        let taken = taken.load(Ordering::Relaxed);
        assert_eq!(heard, taken as u64, "on_bytes hears of every chunk taken");
        (result.map(|(streamed, _)| streamed), taken)
    }

    async fn stream(sb: &Sandbox, compressed: &[u8], beside: bool) -> Result<Streamed, PullError> {
        stream_with(sb, compressed, 1 << 30, None, None, beside)
            .await
            .0
    }

    #[tokio::test]
    async fn both_digests_and_the_files_come_out_of_the_stream() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let layer = tar(&[E::file("a", b"hello"), E::dir("d"), E::file("d/big", &big)]);
        let compressed = gzip(&layer);
        for beside in [false, true] {
            let sb = Sandbox::new();
            let s = stream(&sb, &compressed, beside).await.unwrap();
            assert_eq!(s.digest, Digest::of(&compressed));
            assert_eq!(s.compressed_size, compressed.len() as u64);
            assert_eq!(s.diff_id, Digest::of(&layer), "beside: {beside}");
            assert!(s.blob.is_none());
            assert_eq!(std::fs::read(sb.root().join("d/big")).unwrap(), big);
            assert_eq!(std::fs::read(sb.root().join("a")).unwrap(), b"hello");
        }
    }

    #[tokio::test]
    async fn the_stored_blob_is_the_compressed_stream() {
        let layer = tar(&[E::file("a", &[5; 200_000])]);
        let compressed = gzip(&layer);
        let store_dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(store_dir.path()).unwrap();
        let sb = Sandbox::new();
        let writer = store.writer().unwrap();
        let (result, _) = stream_with(&sb, &compressed, 1 << 30, None, Some(writer), true).await;
        let s = result.unwrap();
        let digest = Digest::of(&compressed);
        assert_eq!(s.digest, digest);
        s.blob.unwrap().commit(&digest, s.compressed_size).unwrap();
        assert_eq!(store.read(&digest).unwrap(), compressed);
    }

    #[tokio::test]
    async fn bytes_after_the_archive_count_towards_the_diff_id() {
        let mut layer = tar(&[E::file("a", b"x")]);
        layer.extend_from_slice(&[7; 500_000]);
        let compressed = gzip(&layer);
        for beside in [false, true] {
            let sb = Sandbox::new();
            let (result, taken) = stream_with(&sb, &compressed, 1 << 30, None, None, beside).await;
            let s = result.unwrap();
            assert_eq!(s.diff_id, Digest::of(&layer), "beside: {beside}");
            assert_eq!(taken, compressed.len());
            assert_eq!(s.digest, Digest::of(&compressed));
            // Past the limit, even after the archive's end, the layer is too large.
            let sb = Sandbox::new();
            let (result, _) = stream_with(&sb, &compressed, 100_000, None, None, beside).await;
            let err = result.err().unwrap();
            assert_eq!(
                err.kind(),
                Kind::ResourceExhausted,
                "beside: {beside}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn corrupt_compression_is_a_decompress_error() {
        let mut compressed = gzip(&tar(&[E::file("a", &[1; 100_000])]));
        let middle = compressed.len() / 2;
        compressed[middle..middle + 64].fill(0xff);
        for beside in [false, true] {
            let sb = Sandbox::new();
            let err = stream(&sb, &compressed, beside).await.err().unwrap();
            assert!(matches!(err, PullError::Decompress { .. }), "{err:?}");
            assert_eq!(err.kind(), Kind::Unavailable);
        }
    }

    #[tokio::test]
    async fn a_download_error_is_the_one_reported() {
        let compressed = gzip(&tar(&[E::file("a", &[1; 100_000])]));
        let cut = &compressed[..compressed.len() / 2];
        for beside in [false, true] {
            let error = RegistryError::BlobUnknown {
                name: "test/layer".into(),
                digest: Digest::of(b"x"),
            };
            let sb = Sandbox::new();
            let (result, _) = stream_with(&sb, cut, 1 << 30, Some(error), None, beside).await;
            let err = result.err().unwrap();
            // The unpacker saw a truncated stream, but the download's failure is the cause.
            assert!(matches!(err, PullError::Registry(_)), "{err:?}");
        }
    }

    #[tokio::test]
    async fn a_hostile_entry_stops_the_unpack_and_the_download() {
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
        for beside in [false, true] {
            let sb = Sandbox::new();
            let (result, taken) = stream_with(&sb, &compressed, 1 << 30, None, None, beside).await;
            let err = result.err().unwrap();
            assert!(matches!(err, PullError::Unpack { .. }), "{err:?}");
            assert!(
                taken < compressed.len() / 2,
                "beside: {beside}: took {taken} of {} bytes",
                compressed.len()
            );
            sb.assert_contained();
        }
    }
}
