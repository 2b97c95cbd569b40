//! Keeps one layer's unpacking from taking the data filesystem's free space below the disk reserve
//! (`image.disk_reserve`), so that a pull — a decompression bomb included — never fills the disk
//! nor pushes it across kubelet's `imagefs.available` eviction threshold.
//!
//! Free space is asked of the filesystem (statvfs, as kubelet measures it: blocks available to
//! unprivileged users) when unpacking starts, and again whenever the bytes written since the last
//! answer use up what that answer allowed, or [`RECHECK`] bytes, whichever is less — so parallel
//! unpacks and other writers are seen within `RECHECK` bytes each. A filesystem already below the
//! reserve when a layer starts (kubelet is then reclaiming space itself) lets the layer use at most
//! half of what is still free: a bomb can never fill the disk.

use std::fmt;
use std::io;

/// Bytes written between two free-space checks, at most.
pub(super) const RECHECK: u64 = 32 * 1024 * 1024;
/// What one filesystem entry (inode, directory entry) is counted as, besides its data.
pub(super) const ENTRY_COST: u64 = 4096;

/// How much space a pull leaves free on the data filesystem.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DiskReserve {
    /// A share of the filesystem's size, in percent.
    Percent(f64),
    Bytes(u64),
}

impl DiskReserve {
    /// No reserve at all (tests).
    pub const NONE: DiskReserve = DiskReserve::Bytes(0);

    /// `N%` (0 to 100, fractions allowed) or a number of bytes.
    pub fn parse(text: &str) -> Result<DiskReserve, String> {
        let text = text.trim();
        if let Some(percent) = text.strip_suffix('%') {
            return match percent.trim().parse::<f64>() {
                Ok(p) if (0.0..100.0).contains(&p) => Ok(DiskReserve::Percent(p)),
                _ => Err(format!(
                    "{text:?} is not a percentage from 0% to below 100%"
                )),
            };
        }
        text.parse::<u64>().map(DiskReserve::Bytes).map_err(|_| {
            format!("{text:?} is neither a percentage (\"15%\") nor a number of bytes")
        })
    }

    /// The free space a writer on the filesystem holding `path` must leave, and what to call it:
    /// the reserve, or, when the filesystem is already below it, half of what is free now (as
    /// a pull's unpack does).
    pub fn floor(&self, path: &std::path::Path) -> Result<(u64, String), String> {
        let free = statvfs(path).map_err(|e| format!("free space of {}: {e}", path.display()))?;
        Ok(self.floor_of(&free))
    }

    /// [`DiskReserve::floor`] for a filesystem with `free`.
    fn floor_of(&self, free: &Free) -> (u64, String) {
        let bytes = self.bytes(free.total);
        if free.available >= bytes {
            let reason = format!(
                "the disk reserve (image.disk_reserve: {self}, {bytes} bytes of {})",
                free.total
            );
            (bytes, reason)
        } else {
            let reason = format!(
                "half of the {} bytes free when it started: the data filesystem is already below \
                 the disk reserve (image.disk_reserve: {self}, {bytes} bytes)",
                free.available
            );
            (free.available / 2, reason)
        }
    }

    /// Whether `more` bytes can still be written on the filesystem holding `path` leaving
    /// `floor` bytes free; the error says what the floor is (`reason`) and the numbers.
    pub fn room_above(
        path: &std::path::Path,
        floor: u64,
        reason: &str,
        more: u64,
    ) -> Result<(), String> {
        let free = statvfs(path).map_err(|e| format!("free space of {}: {e}", path.display()))?;
        if free.available >= floor.saturating_add(more) {
            return Ok(());
        }
        Err(format!(
            "data filesystem has {} bytes free; {more} more would take it below {reason}",
            free.available
        ))
    }

    /// Whether `more` bytes can be written on the filesystem holding `path` now, leaving the
    /// reserve ([`DiskReserve::floor`]) free.
    pub fn room_for(&self, path: &std::path::Path, more: u64) -> Result<(), String> {
        let (floor, reason) = self.floor(path)?;
        DiskReserve::room_above(path, floor, &reason, more)
    }

    /// The reserve in bytes on a filesystem of `total` bytes.
    pub fn bytes(&self, total: u64) -> u64 {
        match *self {
            DiskReserve::Percent(p) => (total as f64 * p / 100.0).ceil() as u64,
            DiskReserve::Bytes(b) => b,
        }
    }
}

impl fmt::Display for DiskReserve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskReserve::Percent(p) => write!(f, "{p}%"),
            DiskReserve::Bytes(b) => write!(f, "{b} bytes"),
        }
    }
}

/// A filesystem's size and the bytes available on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Free {
    pub total: u64,
    pub available: u64,
}

/// Free space of the filesystem holding `path`.
pub(super) fn statvfs(path: &std::path::Path) -> io::Result<Free> {
    let s = rustix::fs::statvfs(path)?;
    Ok(Free {
        total: s.f_blocks.saturating_mul(s.f_frsize),
        available: s.f_bavail.saturating_mul(s.f_frsize),
    })
}

/// The unpack would cross the reserve; the message names the setting and the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    pub message: String,
}

/// The space budget of one unpack.
pub(super) struct Space<Q> {
    query: Q,
    /// Free space may not fall below this many bytes.
    floor: u64,
    /// What the message says the floor is.
    reason: String,
    /// Bytes that may be written before asking the filesystem again.
    budget: u64,
}

impl<Q: FnMut() -> io::Result<Free>> Space<Q> {
    pub(super) fn new(mut query: Q, reserve: DiskReserve) -> io::Result<Space<Q>> {
        let free = query()?;
        let (floor, reason) = reserve.floor_of(&free);
        Ok(Space {
            query,
            floor,
            reason,
            budget: (free.available - floor).min(RECHECK),
        })
    }

    /// Accounts for `n` more bytes about to be written; fails when they would take the free
    /// space below the floor.
    pub(super) fn take(&mut self, n: u64) -> Result<(), Exhausted> {
        if n <= self.budget {
            self.budget -= n;
            return Ok(());
        }
        let available = (self.query)().map(|f| f.available).unwrap_or(0);
        match available.checked_sub(self.floor.saturating_add(n)) {
            Some(left) => {
                self.budget = left.min(RECHECK);
                Ok(())
            }
            None => Err(Exhausted {
                message: format!(
                    "data filesystem has {available} bytes free; writing {n} more would take it \
                     below {}",
                    self.reason
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// A filesystem of `total` bytes whose free space the test changes through the cell.
    fn fs(total: u64, available: &Rc<Cell<u64>>) -> impl FnMut() -> io::Result<Free> + use<> {
        let available = available.clone();
        move || {
            Ok(Free {
                total,
                available: available.get(),
            })
        }
    }

    #[test]
    fn parses_percentages_and_bytes() {
        assert_eq!(DiskReserve::parse("15%"), Ok(DiskReserve::Percent(15.0)));
        assert_eq!(DiskReserve::parse(" 2.5 %"), Ok(DiskReserve::Percent(2.5)));
        assert_eq!(DiskReserve::parse("1048576"), Ok(DiskReserve::Bytes(MIB)));
        for bad in ["100%", "-1%", "lots", "", "1GiB"] {
            assert!(DiskReserve::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(DiskReserve::Percent(15.0).bytes(1000), 150);
        assert_eq!(DiskReserve::Bytes(7).bytes(1000), 7);
    }

    #[test]
    fn writing_stops_before_the_reserve_is_crossed() {
        // 1000 MiB filesystem, 400 MiB free, 15% reserve = 150 MiB: 250 MiB may be written.
        let available = Rc::new(Cell::new(400 * MIB));
        let mut space = Space::new(fs(1000 * MIB, &available), DiskReserve::Percent(15.0)).unwrap();
        let mut written = 0;
        let err = loop {
            match space.take(MIB) {
                Ok(()) => {
                    written += MIB;
                    available.set(available.get() - MIB);
                }
                Err(e) => break e,
            }
        };
        assert_eq!(written, 250 * MIB);
        assert!(available.get() >= 150 * MIB);
        assert!(
            err.message.contains("image.disk_reserve: 15%"),
            "{}",
            err.message
        );
    }

    #[test]
    fn other_writers_are_seen_within_the_recheck_interval() {
        let available = Rc::new(Cell::new(10_000 * MIB));
        let mut space = Space::new(fs(20_000 * MIB, &available), DiskReserve::Bytes(MIB)).unwrap();
        space.take(MIB).unwrap();
        // Someone else fills the disk to the reserve: at most RECHECK more bytes get through.
        available.set(MIB);
        let mut through = 0;
        while space.take(MIB).is_ok() {
            through += MIB;
        }
        assert!(through <= RECHECK, "{through}");
    }

    #[test]
    fn space_freed_meanwhile_lets_writing_go_on() {
        let available = Rc::new(Cell::new(10 * MIB));
        let mut space = Space::new(fs(100 * MIB, &available), DiskReserve::Bytes(5 * MIB)).unwrap();
        space.take(5 * MIB).unwrap();
        available.set(50 * MIB);
        space.take(20 * MIB).unwrap();
    }

    #[test]
    fn a_filesystem_already_below_the_reserve_gives_half_of_what_is_free() {
        // 10% free on a disk whose reserve is 15%.
        let available = Rc::new(Cell::new(100 * MIB));
        let mut space = Space::new(fs(1000 * MIB, &available), DiskReserve::Percent(15.0)).unwrap();
        space.take(50 * MIB).unwrap();
        available.set(50 * MIB);
        let err = space.take(MIB).unwrap_err();
        assert!(err.message.contains("already below"), "{}", err.message);
    }
}
