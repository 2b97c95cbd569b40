//! Test support: builds layer tars in memory entry by entry, writing raw ustar headers so that
//! hostile names the `tar` Builder refuses can be written too, and inspects unpacked trees.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::{Limits, UnpackError, Unpacked, unpack_layer};

/// The mtime entries get unless a test sets one.
pub(crate) const MTIME: u64 = 1_600_000_000;

/// One archive entry, written as (optional PAX header +) ustar header + data.
#[derive(Debug, Clone)]
pub(crate) struct E {
    path: Vec<u8>,
    kind: EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Vec<u8>,
    data: Vec<u8>,
    pax: Vec<(String, Vec<u8>)>,
    dev: (u32, u32),
}

impl E {
    fn new(path: &str, kind: EntryType, mode: u32) -> Self {
        Self {
            path: path.as_bytes().to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: MTIME,
            link: Vec::new(),
            data: Vec::new(),
            pax: Vec::new(),
            dev: (0, 0),
        }
    }

    pub(crate) fn file(path: &str, data: &[u8]) -> Self {
        let mut e = Self::new(path, EntryType::Regular, 0o644);
        e.data = data.to_vec();
        e
    }

    pub(crate) fn dir(path: &str) -> Self {
        Self::new(path, EntryType::Directory, 0o755)
    }

    pub(crate) fn symlink(path: &str, target: &str) -> Self {
        let mut e = Self::new(path, EntryType::Symlink, 0o777);
        e.link = target.as_bytes().to_vec();
        e
    }

    pub(crate) fn hardlink(path: &str, target: &str) -> Self {
        let mut e = Self::new(path, EntryType::Link, 0o644);
        e.link = target.as_bytes().to_vec();
        e
    }

    pub(crate) fn node(path: &str, kind: EntryType, major: u32, minor: u32) -> Self {
        let mut e = Self::new(path, kind, 0o600);
        e.dev = (major, minor);
        e
    }

    /// An entry of any type byte, for types berth must refuse.
    pub(crate) fn typed(path: &str, kind: EntryType) -> Self {
        Self::new(path, kind, 0o644)
    }

    pub(crate) fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    pub(crate) fn owner(mut self, uid: u64, gid: u64) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub(crate) fn mtime(mut self, mtime: u64) -> Self {
        self.mtime = mtime;
        self
    }

    /// Adds a PAX record (`path`, `linkpath`, `mtime`, `SCHILY.xattr.*`, ...).
    pub(crate) fn pax(mut self, key: &str, value: &[u8]) -> Self {
        self.pax.push((key.to_string(), value.to_vec()));
        self
    }

    /// The ustar header of this entry; names longer than 100 bytes are cut (give the full name
    /// as a PAX `path` record).
    fn header(&self, size: u64) -> Header {
        let mut h = Header::new_ustar();
        let ustar = h.as_ustar_mut().expect("ustar header");
        let n = self.path.len().min(100);
        ustar.name[..n].copy_from_slice(&self.path[..n]);
        let l = self.link.len().min(100);
        ustar.linkname[..l].copy_from_slice(&self.link[..l]);
        h.set_entry_type(self.kind);
        h.set_mode(self.mode);
        h.set_uid(self.uid);
        h.set_gid(self.gid);
        h.set_mtime(self.mtime);
        h.set_size(size);
        h.set_device_major(self.dev.0).unwrap();
        h.set_device_minor(self.dev.1).unwrap();
        h.set_cksum();
        h
    }

    fn write(&self, out: &mut Vec<u8>) {
        if !self.pax.is_empty() {
            let mut records = Vec::new();
            for (k, v) in &self.pax {
                records.extend_from_slice(&pax_record(k, v));
            }
            let mut h = Header::new_ustar();
            h.as_ustar_mut().unwrap().name[..9].copy_from_slice(b"PaxHeader");
            h.set_entry_type(EntryType::XHeader);
            h.set_mode(0o644);
            h.set_size(records.len() as u64);
            h.set_cksum();
            block(out, h.as_bytes(), &records);
        }
        block(
            out,
            self.header(self.data.len() as u64).as_bytes(),
            &self.data,
        );
    }
}

/// One `LEN key=value\n` PAX record; LEN counts the whole record, its own digits included.
pub(crate) fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let base = key.len() + value.len() + 3;
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// Appends a header block and its data padded to 512 bytes.
fn block(out: &mut Vec<u8>, header: &[u8; 512], data: &[u8]) {
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

/// A whole archive: the entries, then the two zero blocks that end it.
pub(crate) fn tar(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        e.write(&mut out);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

/// A temp dir holding `root/` (the layer directory) and `outside/secret`, a file that hostile
/// layers aim at.
pub(crate) struct Sandbox {
    pub(crate) tmp: tempfile::TempDir,
}

pub(crate) const SECRET: &[u8] = b"host secret\n";
const SECRET_MODE: u32 = 0o640;

impl Sandbox {
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("root")).unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        let secret = tmp.path().join("outside/secret");
        fs::write(&secret, SECRET).unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(SECRET_MODE)).unwrap();
        Self { tmp }
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    pub(crate) fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    /// Unpacks into `root/` with a generous limit.
    pub(crate) fn unpack(&self, tar: &[u8]) -> Result<Unpacked, UnpackError> {
        self.unpack_limited(tar, 1 << 30)
    }

    pub(crate) fn unpack_limited(&self, tar: &[u8], max: u64) -> Result<Unpacked, UnpackError> {
        unpack_layer(tar, &self.root(), &Limits::bytes(max))
    }

    /// Asserts nothing outside `root/` changed: the temp dir holds only `root` and `outside`,
    /// `outside` only `secret`, with its content, a single link and no xattrs.
    pub(crate) fn assert_contained(&self) {
        assert_eq!(names(self.tmp.path()), ["outside", "root"]);
        assert_eq!(names(&self.outside()), ["secret"]);
        let secret = self.outside().join("secret");
        assert_eq!(fs::read(&secret).unwrap(), SECRET);
        let meta = fs::symlink_metadata(&secret).unwrap();
        assert_eq!(meta.nlink(), 1, "no hard link to the host file");
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o7777, SECRET_MODE);
        assert_eq!((meta.uid(), meta.gid()), (0, 0));
        for path in [self.outside(), secret] {
            assert_eq!(
                rustix::fs::llistxattr_query(&path).unwrap(),
                0,
                "{path:?} xattrs"
            );
        }
    }
}

/// Sorted names in a directory.
pub(crate) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// An extended attribute of `path` itself (not following a symlink), if set.
pub(crate) fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("lgetxattr {path:?} {name}: {e}"),
    }
}

/// A reader that counts what it yields, to check the stream is read to its end (or not far past
/// a limit).
pub(crate) struct Counting<R> {
    pub(crate) inner: R,
    pub(crate) count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}
