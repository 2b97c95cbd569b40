//! One entry's metadata (owner, mode, times, extended attributes), read from its header and PAX
//! records, and applied in the order the kernel needs: owner first (chown clears setuid, setgid
//! and file capabilities), then mode, then xattrs, then times.

use std::io::{self, Read};
use std::os::fd::OwnedFd;

use rustix::fs::{self as rfs, AtFlags, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use super::tree::proc_path;

/// PAX records carrying an extended attribute, as GNU tar, bsdtar and Go's archive/tar write them.
const PAX_XATTR: &[u8] = b"SCHILY.xattr.";
/// Overlayfs's own attributes. A layer must not set them directly (a forged redirect or metacopy
/// would change what the merged view shows); the opaque marker comes only from `.wh..wh..opq`.
const OVERLAY_XATTR: &[u8] = b"trusted.overlay.";
/// The kernel allows `user.*` attributes only on regular files and directories.
const USER_XATTR: &[u8] = b"user.";

/// Why an entry's metadata could not be read.
#[derive(Debug)]
pub(super) enum MetaError {
    /// The values are well-formed tar but not acceptable (uid -1, bad PAX time, ...).
    Hostile(&'static str),
    /// The header itself could not be parsed.
    Read(io::Error),
}

impl From<io::Error> for MetaError {
    fn from(e: io::Error) -> Self {
        MetaError::Read(e)
    }
}

/// What berth applies to every created entry besides its content.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) uid: u32,
    pub(super) gid: u32,
    /// Permission bits including setuid, setgid and sticky.
    pub(super) mode: u32,
    pub(super) times: Timestamps,
    pub(super) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    /// Reads the header (with the PAX uid/gid already folded in by `tar`) and the PAX records.
    pub(super) fn read<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Self, MetaError> {
        let header = entry.header();
        let old = header.as_old();
        let uid = numeric(&old.uid, header.uid())?;
        let uid = id(uid).ok_or(MetaError::Hostile("uid out of range"))?;
        let gid =
            id(numeric(&old.gid, header.gid())?).ok_or(MetaError::Hostile("gid out of range"))?;
        let mode = numeric(&old.mode, header.mode().map(u64::from))? as u32 & 0o7777;
        let mtime = numeric(&old.mtime, header.mtime())?;
        let secs = i64::try_from(mtime).map_err(|_| MetaError::Hostile("bad mtime"))?;
        let mut mtime = Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        let mut atime = match header.as_gnu().map(|g| g.atime()) {
            Some(Ok(t)) if t != 0 => Some(Timespec {
                tv_sec: i64::try_from(t).map_err(|_| MetaError::Hostile("bad atime"))?,
                tv_nsec: 0,
            }),
            _ => None,
        };
        let mut xattrs = Vec::new();
        if let Some(records) = entry.pax_extensions()? {
            for record in records {
                let record = record?;
                let (key, value) = (record.key_bytes(), record.value_bytes());
                if key == b"mtime" {
                    mtime = pax_time(value).ok_or(MetaError::Hostile("malformed PAX mtime"))?;
                } else if key == b"atime" {
                    atime = Some(pax_time(value).ok_or(MetaError::Hostile("malformed PAX atime"))?);
                } else if let Some(name) = key.strip_prefix(PAX_XATTR) {
                    if name.is_empty() || name.contains(&0) {
                        return Err(MetaError::Hostile("malformed xattr name"));
                    }
                    xattrs.push((name.to_vec(), value.to_vec()));
                }
            }
        }
        let times = Timestamps {
            last_access: atime.unwrap_or(mtime),
            last_modification: mtime,
        };
        Ok(Self {
            uid,
            gid,
            mode,
            times,
            xattrs,
        })
    }

    /// Applies everything to a regular file or directory opened for real; directory times are
    /// left to the caller (`with_times` false) because creating children changes them.
    pub(super) fn apply_fd(&self, fd: &OwnedFd, with_times: bool) -> io::Result<()> {
        rfs::fchown(fd, Some(uid(self.uid)), Some(gid(self.gid)))?;
        rfs::fchmod(fd, Mode::from_raw_mode(self.mode))?;
        for (name, value) in self.xattrs(true) {
            tolerate(rfs::fsetxattr(fd, name, value, XattrFlags::empty()))?;
        }
        if with_times {
            rfs::futimens(fd, &self.times)?;
        }
        Ok(())
    }

    /// Applies everything to a symlink, device or FIFO held by an `O_PATH` fd. A symlink has no
    /// mode of its own.
    pub(super) fn apply_node(&self, node: &OwnedFd, symlink: bool) -> io::Result<()> {
        let at = proc_path(node);
        rfs::chownat(
            rfs::CWD,
            &at,
            Some(uid(self.uid)),
            Some(gid(self.gid)),
            AtFlags::empty(),
        )?;
        if !symlink {
            rfs::chmodat(
                rfs::CWD,
                &at,
                Mode::from_raw_mode(self.mode),
                AtFlags::empty(),
            )?;
        }
        for (name, value) in self.xattrs(false) {
            tolerate(rfs::setxattr(&at, name, value, XattrFlags::empty()))?;
        }
        rfs::utimensat(rfs::CWD, &at, &self.times, AtFlags::empty())?;
        Ok(())
    }

    /// Applies owner and times to the symlink `name` in `dir`, by name and never following it:
    /// fewer system calls than [`Meta::apply_node`], which a symlink with extended attributes
    /// still needs (false then, and nothing is applied).
    pub(super) fn apply_symlink_at(&self, dir: &OwnedFd, name: &[u8]) -> io::Result<bool> {
        if self.xattrs(false).next().is_some() {
            return Ok(false);
        }
        let nofollow = AtFlags::SYMLINK_NOFOLLOW;
        rfs::chownat(
            dir,
            name,
            Some(uid(self.uid)),
            Some(gid(self.gid)),
            nofollow,
        )?;
        rfs::utimensat(dir, name, &self.times, nofollow)?;
        Ok(true)
    }

    /// The attributes to set on a regular file or directory (`plain`) or on anything else.
    fn xattrs(&self, plain: bool) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.xattrs
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .filter(move |(n, _)| {
                !n.starts_with(OVERLAY_XATTR) && (plain || !n.starts_with(USER_XATTR))
            })
    }
}

/// A numeric header field; one left blank (NULs or spaces) reads as 0, as Go's archive/tar
/// (which Docker and containerd use) reads it.
fn numeric(raw: &[u8], parsed: io::Result<u64>) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        other => other,
    }
}

/// A uid or gid from the archive; -1 means "unchanged" to chown and is refused.
fn id(raw: u64) -> Option<u32> {
    u32::try_from(raw).ok().filter(|&v| v != u32::MAX)
}

fn uid(raw: u32) -> Uid {
    Uid::from_raw(raw)
}

fn gid(raw: u32) -> Gid {
    Gid::from_raw(raw)
}

/// A file system that does not support an attribute namespace is not an error.
fn tolerate(r: Result<(), Errno>) -> io::Result<()> {
    match r {
        Err(Errno::OPNOTSUPP) => Ok(()),
        other => other.map_err(Into::into),
    }
}

/// Parses a PAX time: decimal seconds, optionally negative, with up to nanosecond fraction.
fn pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !digits(secs) || !digits(frac) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for i in 0..9 {
        let digit = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        nanos = nanos * 10 + digit;
    }
    Some(match (negative, nanos) {
        (false, _) => Timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
        (true, 0) => Timespec {
            tv_sec: -secs,
            tv_nsec: 0,
        },
        (true, _) => Timespec {
            tv_sec: -secs - 1,
            tv_nsec: 1_000_000_000 - nanos,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(value: &str) -> Option<(i64, i64)> {
        pax_time(value.as_bytes()).map(|t| (t.tv_sec, t.tv_nsec))
    }

    #[test]
    fn pax_times_parse_to_nanoseconds() {
        assert_eq!(t("1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(t("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(t("1350244992.023960108"), Some((1_350_244_992, 23_960_108)));
        assert_eq!(
            t("1.0000000019"),
            Some((1, 1)),
            "digits past nanoseconds are cut"
        );
        assert_eq!(t("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(t("-3"), Some((-3, 0)));
        for bad in ["", ".5", "1.5x", "abc", "1e9", "--1", "+1"] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ids_refuse_minus_one_and_overflow() {
        assert_eq!(id(0), Some(0));
        assert_eq!(id(65534), Some(65534));
        assert_eq!(id(u64::from(u32::MAX)), None);
        assert_eq!(id(1 << 40), None);
    }
}
