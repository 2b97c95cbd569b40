//! The disk reserve (`image.disk_reserve`) in a build: a step whose changes took the data
//! filesystem below it fails, and so does writing a layer (its tar, its compressed blob, its
//! unpacked snapshot) that would; free space is checked at least every [`CHECK_EVERY`] bytes.

use std::io::{self, Write};
use std::path::PathBuf;

use super::BuildError;
use crate::image::unpack::DiskReserve;

/// Bytes written between two looks at the free space.
pub const CHECK_EVERY: u64 = 8 * 1024 * 1024;

/// The reserve on the filesystem of the build dir, fixed when the build starts.
#[derive(Clone)]
pub struct Reserve {
    dir: PathBuf,
    reserve: DiskReserve,
    /// Free space that must stay, and what the error calls it.
    floor: u64,
    reason: String,
}

/// Carried through `io::Error` by [`Guarded`], turned back into
/// [`BuildError::DiskReserve`] by [`from_io`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Exhausted(String);

impl Reserve {
    /// The reserve of a build writing in `dir`: `reserve`, or half of what is free when the
    /// filesystem is already below it.
    pub fn new(dir: PathBuf, reserve: DiskReserve) -> Result<Reserve, BuildError> {
        let (floor, reason) = reserve
            .floor(&dir)
            .map_err(|e| BuildError::Store(format!("disk reserve: {e}")))?;
        Ok(Reserve {
            dir,
            reserve,
            floor,
            reason,
        })
    }

    fn room(&self, more: u64) -> Result<(), String> {
        DiskReserve::room_above(&self.dir, self.floor, &self.reason, more)
    }

    /// Fails when `more` bytes would take the free space below the reserve.
    pub fn check(&self, what: &str, more: u64) -> Result<(), BuildError> {
        self.room(more)
            .map_err(|reason| BuildError::DiskReserve(format!("{what}: {reason}")))
    }

    /// `inner`, with the free space checked as it is written to.
    pub fn guard<W: Write>(&self, inner: W) -> Guarded<'_, W> {
        Guarded {
            inner,
            reserve: self,
            unchecked: 0,
        }
    }

    /// The unpack limits of a layer written in a build.
    pub fn limits(&self) -> crate::image::unpack::Limits {
        crate::image::unpack::Limits {
            max_bytes: u64::MAX,
            disk_reserve: self.reserve,
        }
    }
}

/// A writer that stops before the reserve is crossed.
pub struct Guarded<'a, W> {
    inner: W,
    reserve: &'a Reserve,
    /// Bytes that may still be written before the next check.
    unchecked: u64,
}

impl<W: Write> Write for Guarded<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.unchecked {
            self.reserve
                .room(CHECK_EVERY.max(buf.len() as u64))
                .map_err(|reason| io::Error::other(Exhausted(reason)))?;
            self.unchecked = CHECK_EVERY.max(buf.len() as u64);
        }
        let n = self.inner.write(buf)?;
        self.unchecked -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An I/O error of writing `what`: the reserve when [`Guarded`] stopped it, else `other`.
pub fn from_io(
    what: &str,
    e: io::Error,
    other: impl FnOnce(io::Error) -> BuildError,
) -> BuildError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Exhausted>())
    {
        Some(exhausted) => BuildError::DiskReserve(format!("{what}: {exhausted}")),
        None => other(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writing_stops_at_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        // More than the filesystem holds must stay free: nothing may be written.
        let reserve = Reserve {
            floor: u64::MAX / 2,
            ..Reserve::new(dir.path().to_path_buf(), DiskReserve::NONE).unwrap()
        };
        let mut out = reserve.guard(Vec::new());
        let err = out.write_all(&[0u8; 16]).unwrap_err();
        let err = from_io("layer", err, |e| BuildError::Layer(e.to_string()));
        assert!(matches!(err, BuildError::DiskReserve(_)), "{err:?}");
        assert!(err.to_string().contains("image.disk_reserve"), "{err}");
        assert!(reserve.check("step", 0).is_err());
        let none = Reserve::new(dir.path().to_path_buf(), DiskReserve::NONE).unwrap();
        none.guard(Vec::new()).write_all(&[0u8; 16]).unwrap();
        none.check("step", 0).unwrap();
    }
}
