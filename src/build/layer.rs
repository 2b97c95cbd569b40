//! Turning a step's upper directory into an image layer: an OCI tar (overlay whiteouts, a 0/0
//! character device, become `.wh.<name>`; an opaque directory gets `.wh..wh..opq`), gzipped into
//! the content store, and unpacked with the pull code into a committed snapshot, so built and
//! pulled layers are stored alike.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::BuildError;
use super::space::{Reserve, from_io};
use crate::image::digest::{Digest, Hasher};
use crate::image::manifest::Descriptor;
use crate::image::store::ImageStore;
use crate::image::unpack::{UnpackError, unpack_layer};

pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A layer committed to the content store and the snapshotter.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Hasher,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn io(what: &str) -> impl FnOnce(io::Error) -> BuildError + '_ {
    move |e| from_io(what, e, |e| BuildError::Layer(format!("{what}: {e}")))
}

/// Writes `upper` as a tar to `out`, leaving the disk reserve free; returns its diff id.
pub fn tar_upper(upper: &Path, out: &Path, reserve: &Reserve) -> Result<Digest, BuildError> {
    let file = File::create(out).map_err(io("create the layer tar"))?;
    let mut hashing = Hashing {
        inner: BufWriter::new(reserve.guard(file)),
        hasher: Hasher::default(),
        written: 0,
    };
    {
        let mut builder = tar::Builder::new(&mut hashing);
        builder.follow_symlinks(false);
        add_dir(&mut builder, upper, "")?;
        builder.finish().map_err(io("finish the layer tar"))?;
    }
    hashing.flush().map_err(io("write the layer tar"))?;
    Ok(hashing.hasher.finish())
}

fn add_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &Path,
    rel: &str,
) -> Result<(), BuildError> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io("read the upper dir"))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs::symlink_metadata(&path).map_err(io("stat the upper dir"))?;
        if meta.file_type().is_char_device() && meta.rdev() == 0 {
            let parent = rel
                .rsplit_once('/')
                .map_or(String::new(), |(p, _)| format!("{p}/"));
            empty_file(builder, &format!("{parent}.wh.{name}"))?;
            continue;
        }
        builder
            .append_path_with_name(&path, &rel)
            .map_err(io(&rel))?;
        if meta.is_dir() {
            if opaque(&path) {
                empty_file(builder, &format!("{rel}/.wh..wh..opq"))?;
            }
            add_dir(builder, &path, &rel)?;
        }
    }
    Ok(())
}

fn empty_file<W: Write>(builder: &mut tar::Builder<W>, name: &str) -> Result<(), BuildError> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(0);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, name, io::empty())
        .map_err(io(name))
}

/// Whether overlayfs marked `dir` opaque (its lower contents hidden).
fn opaque(dir: &Path) -> bool {
    let mut value = [0u8; 4];
    matches!(
        rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut value),
        Ok(1) if value[0] == b'y'
    )
}

/// Gzips the tar at `tar` into the content store, unpacks it into a snapshot on `parent`, and
/// returns the layer. Nothing is left behind on failure.
pub fn commit(
    images: &ImageStore,
    tar: &Path,
    diff_id: &Digest,
    parent: Option<&Digest>,
    reserve: &Reserve,
) -> Result<(Layer, Digest), BuildError> {
    let mut writer = images
        .content
        .writer()
        .map_err(|e| BuildError::Layer(e.to_string()))?;
    let compressed = {
        struct ToBlob<'a>(&'a mut crate::image::content::BlobWriter);
        impl Write for ToBlob<'_> {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.write(buf).map_err(io::Error::other)?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut hashing = Hashing {
            inner: reserve.guard(ToBlob(&mut writer)),
            hasher: Hasher::default(),
            written: 0,
        };
        let mut gz = flate2::write::GzEncoder::new(&mut hashing, flate2::Compression::fast());
        let mut input = BufReader::new(File::open(tar).map_err(io("open the layer tar"))?);
        io::copy(&mut input, &mut gz).map_err(io("compress the layer"))?;
        gz.finish().map_err(io("compress the layer"))?;
        (hashing.hasher.finish(), hashing.written)
    };
    let (digest, size) = compressed;
    writer
        .commit(&digest, size)
        .map_err(|e| BuildError::Layer(e.to_string()))?;
    let chain_id = match parent {
        Some(parent) => Digest::of(format!("{parent} {diff_id}").as_bytes()),
        None => diff_id.clone(),
    };
    if images.snapshots.get(&chain_id).ok().flatten().is_none() {
        let staging = images
            .snapshots
            .staging()
            .map_err(|e| BuildError::Layer(e.to_string()))?;
        let reader = File::open(tar).map_err(io("open the layer tar"))?;
        let unpacked =
            unpack_layer(reader, staging.path(), &reserve.limits()).map_err(|e| match e {
                UnpackError::DiskReserve(reason) => {
                    BuildError::DiskReserve(format!("unpack the new layer: {reason}"))
                }
                e => BuildError::Layer(format!("unpack the new layer: {e}")),
            })?;
        images
            .snapshots
            .commit(
                staging,
                &chain_id,
                parent,
                diff_id,
                unpacked.bytes,
                unpacked.inodes,
            )
            .map_err(|e| BuildError::Layer(e.to_string()))?;
    }
    let layer = Layer {
        descriptor: Descriptor {
            media_type: LAYER_MEDIA_TYPE.to_string(),
            digest,
            size,
            platform: None,
        },
        diff_id: diff_id.clone(),
    };
    Ok((layer, chain_id))
}

/// Reads a whole small file (the tar of an empty upper dir, in tests).
#[cfg(test)]
fn read(path: &Path) -> Vec<u8> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    File::open(path).unwrap().read_to_end(&mut bytes).unwrap();
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteouts_become_wh_entries() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("upper");
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/new"), "x").unwrap();
        nix::sys::stat::mknod(
            &upper.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        )
        .expect("mknod needs root");
        let out = dir.path().join("layer.tar");
        let reserve = Reserve::new(
            dir.path().to_path_buf(),
            crate::image::unpack::DiskReserve::NONE,
        )
        .unwrap();
        let diff_id = tar_upper(&upper, &out, &reserve).unwrap();
        assert_eq!(diff_id, Digest::of(&read(&out)));
        let mut archive = tar::Archive::new(File::open(&out).unwrap());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["etc", "etc/.wh.gone", "etc/new"]);
    }
}
