//! Counts the bytes a layer tar stream yields and cuts it off past the layer limit, or when the
//! headers describing one entry grow larger than any honest archive needs.
//!
//! The `tar` crate reads GNU long names and PAX records wholly into memory while it looks for the
//! next entry. Reading every entry's data to its end before asking for the next entry means that
//! everything read during that search is header material; [`Meter::headers`] bounds it.

use std::cell::Cell;
use std::io::{self, Read};

/// Why the meter refused to read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trip {
    /// More than the layer limit was read from the stream.
    Layer,
    /// The headers in front of one entry exceeded [`HEADER_WINDOW`].
    Headers,
}

/// The most header bytes (ustar blocks, GNU long names, PAX records, sparse maps) read in front of
/// one entry. Real layers use a few KiB at most.
pub(super) const HEADER_WINDOW: u64 = 1 << 20;

/// Shared between the reader inside the `tar` archive and the extractor that maps errors.
#[derive(Debug)]
pub(super) struct Meter {
    limit: u64,
    read: Cell<u64>,
    /// Header bytes still allowed while the archive looks for the next entry; `None` otherwise.
    window: Cell<Option<u64>>,
    tripped: Cell<Option<Trip>>,
}

impl Meter {
    pub(super) fn new(limit: u64) -> Self {
        Self {
            limit,
            read: Cell::new(0),
            window: Cell::new(None),
            tripped: Cell::new(None),
        }
    }

    /// Why reading stopped, if the meter stopped it.
    pub(super) fn tripped(&self) -> Option<Trip> {
        self.tripped.get()
    }

    /// Runs `f` (the archive's search for its next entry) with header reads bounded.
    pub(super) fn headers<T>(&self, f: impl FnOnce() -> T) -> T {
        self.window.set(Some(HEADER_WINDOW));
        let out = f();
        self.window.set(None);
        out
    }

    /// Wraps the layer stream so every read is counted by this meter.
    pub(super) fn reader<R: Read>(&self, inner: R) -> Metered<'_, R> {
        Metered { inner, meter: self }
    }

    fn trip(&self, why: Trip) -> io::Error {
        self.tripped.set(Some(why));
        io::Error::other(match why {
            Trip::Layer => "layer exceeds its size limit",
            Trip::Headers => "entry headers exceed their size limit",
        })
    }
}

/// A reader that reports every byte to its [`Meter`] and fails once a bound is crossed.
pub(super) struct Metered<'m, R> {
    inner: R,
    meter: &'m Meter,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let meter = self.meter;
        if let Some(why) = meter.tripped.get() {
            return Err(meter.trip(why));
        }
        // Ask for at most one byte past each bound: getting it proves the bound is crossed
        // without reading far beyond it.
        let layer_left = meter.limit - meter.read.get();
        let mut cap = layer_left.saturating_add(1);
        if let Some(window) = meter.window.get() {
            cap = cap.min(window.saturating_add(1));
        }
        let cap = usize::try_from(cap).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..cap])?;
        let got = n as u64;
        meter.read.set(meter.read.get() + got);
        if got > layer_left {
            return Err(meter.trip(Trip::Layer));
        }
        if let Some(window) = meter.window.get() {
            if got > window {
                return Err(meter.trip(Trip::Headers));
            }
            meter.window.set(Some(window - got));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_limit_then_trips() {
        let meter = Meter::new(10);
        let mut r = meter.reader(&[7u8; 10][..]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 10);
        assert_eq!(meter.tripped(), None);

        let meter = Meter::new(10);
        let mut r = meter.reader(&[7u8; 11][..]);
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert_eq!(meter.tripped(), Some(Trip::Layer));
        assert_eq!(
            meter.read.get(),
            11,
            "reads at most one byte past the limit"
        );
    }

    #[test]
    fn header_window_bounds_only_reads_inside_it() {
        let meter = Meter::new(u64::MAX);
        let big = vec![0u8; 3 * HEADER_WINDOW as usize];
        let mut r = meter.reader(&big[..]);
        let mut buf = vec![0u8; HEADER_WINDOW as usize];
        r.read_exact(&mut buf).unwrap();
        meter.headers(|| r.read_exact(&mut [0u8; 2048])).unwrap();
        assert_eq!(meter.tripped(), None, "a window fits 2 KiB");
        let err = meter.headers(|| r.read_to_end(&mut Vec::new()));
        assert!(err.is_err());
        assert_eq!(meter.tripped(), Some(Trip::Headers));
    }
}
