//! Entry names as the archive spells them, made into safe relative paths, and the Docker/OCI
//! whiteout naming convention. Pure: nothing here touches the filesystem.

/// Longest entry name accepted, in bytes; the kernel refuses longer paths anyway.
pub(super) const PATH_MAX: usize = 4096;

/// Prefix that marks a whiteout entry in Docker/OCI layers.
const WHITEOUT: &[u8] = b".wh.";
/// Prefix of names reserved for the whiteout machinery itself.
const WHITEOUT_META: &[u8] = b".wh..wh.";
/// The opaque-directory marker: hide everything below the parent in lower layers.
const OPAQUE: &[u8] = b".wh..wh..opq";

/// A path inside the layer: non-empty components with no `/`, `.`, `..` or NUL. The empty path is
/// the layer root. Ordered bytewise, so a path sorts before every path below it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RelPath {
    /// Components joined by `/`, the key used to compare paths.
    joined: Vec<u8>,
}

impl RelPath {
    /// Makes an archive name relative: `./` and leading `/` are dropped (Docker reads `/etc/x` as
    /// `etc/x`), repeated slashes collapse. Any `..` is refused, whether or not it would climb
    /// out: the kernel would resolve it through whatever is on disk, which a layer controls.
    pub(crate) fn parse(raw: &[u8]) -> Result<Self, &'static str> {
        if raw.is_empty() {
            return Err("empty name");
        }
        if raw.len() > PATH_MAX {
            return Err("name longer than 4096 bytes");
        }
        if raw.contains(&0) {
            return Err("name contains a NUL byte");
        }
        let mut joined = Vec::with_capacity(raw.len());
        for comp in raw.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => return Err("name contains a `..` component"),
                _ => {
                    if !joined.is_empty() {
                        joined.push(b'/');
                    }
                    joined.extend_from_slice(comp);
                }
            }
        }
        Ok(Self { joined })
    }

    /// The layer root itself.
    pub(crate) fn root() -> Self {
        Self { joined: Vec::new() }
    }

    pub(super) fn is_root(&self) -> bool {
        self.joined.is_empty()
    }

    /// The path as `a/b/c` bytes; empty for the root.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.joined
    }

    /// The components, outermost first.
    pub(super) fn components(&self) -> impl Iterator<Item = &[u8]> {
        self.joined.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// Splits into the parent directory and the last component; `None` for the root.
    pub(super) fn split_last(&self) -> Option<(RelPath, &[u8])> {
        if self.is_root() {
            return None;
        }
        match self.joined.iter().rposition(|&b| b == b'/') {
            Some(i) => Some((
                RelPath {
                    joined: self.joined[..i].to_vec(),
                },
                &self.joined[i + 1..],
            )),
            None => Some((RelPath::root(), &self.joined[..])),
        }
    }

    /// The path of `name` inside this directory.
    pub(crate) fn join(&self, name: &[u8]) -> RelPath {
        let mut joined = self.joined.clone();
        if !joined.is_empty() {
            joined.push(b'/');
        }
        joined.extend_from_slice(name);
        RelPath { joined }
    }

    /// True when `other` is this path or lies below it.
    pub(super) fn contains(&self, other: &RelPath) -> bool {
        self.is_root()
            || other.joined == self.joined
            || (other.joined.starts_with(&self.joined) && other.joined[self.joined.len()] == b'/')
    }
}

/// What an entry's last component says about the entry.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Name<'a> {
    /// An ordinary name.
    Plain,
    /// `.wh..wh..opq`: the parent directory is opaque.
    Opaque,
    /// `.wh.NAME`: `NAME` is deleted from the layers below.
    Whiteout(&'a [u8]),
    /// Another `.wh..wh.*` name (hard-link bookkeeping of old Docker versions): skipped.
    Reserved,
}

impl<'a> Name<'a> {
    /// Classifies a last component. A whiteout of `.` or `..` (or of nothing) is refused.
    pub(super) fn classify(last: &'a [u8]) -> Result<Self, &'static str> {
        if last == OPAQUE {
            return Ok(Name::Opaque);
        }
        if last.starts_with(WHITEOUT_META) {
            return Ok(Name::Reserved);
        }
        match last.strip_prefix(WHITEOUT) {
            None => Ok(Name::Plain),
            Some(b"" | b"." | b"..") => Err("whiteout of an invalid name"),
            Some(name) => Ok(Name::Whiteout(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, &'static str> {
        RelPath::parse(raw.as_bytes()).map(|p| String::from_utf8(p.as_bytes().to_vec()).unwrap())
    }

    #[test]
    fn names_become_relative() {
        let cases = [
            ("etc/passwd", "etc/passwd"),
            ("./etc/passwd", "etc/passwd"),
            ("/etc/passwd", "etc/passwd"),
            ("//etc//./passwd/", "etc/passwd"),
            ("./", ""),
            ("/", ""),
            (".", ""),
            ("a/.../b", "a/.../b"),
            ("..a/b..", "..a/b.."),
        ];
        for (raw, want) in cases {
            assert_eq!(norm(raw), Ok(want.to_string()), "{raw}");
        }
    }

    #[test]
    fn climbing_and_odd_names_are_refused() {
        for raw in [
            "..",
            "../escape",
            "a/../../escape",
            "a/../b",
            "/..",
            "./a/..",
        ] {
            assert!(norm(raw).is_err(), "{raw} must be refused");
        }
        assert!(RelPath::parse(b"").is_err());
        assert!(RelPath::parse(b"a\0b").is_err());
        assert!(RelPath::parse(&vec![b'a'; PATH_MAX + 1]).is_err());
        assert!(RelPath::parse(&vec![b'a'; PATH_MAX]).is_ok());
    }

    #[test]
    fn split_join_and_contains() {
        let p = RelPath::parse(b"a/b/c").unwrap();
        let (parent, last) = p.split_last().unwrap();
        assert_eq!(parent.as_bytes(), b"a/b");
        assert_eq!(last, b"c");
        assert_eq!(parent.join(b"c"), p);
        let a = RelPath::parse(b"a").unwrap();
        let (top, name) = a.split_last().unwrap();
        assert!(top.is_root());
        assert_eq!(name, b"a");
        assert!(RelPath::root().split_last().is_none());
        assert_eq!(p.components().collect::<Vec<_>>(), [&b"a"[..], b"b", b"c"]);

        assert!(parent.contains(&p));
        assert!(p.contains(&p));
        assert!(RelPath::root().contains(&p));
        assert!(!p.contains(&parent));
        assert!(
            !RelPath::parse(b"a/b")
                .unwrap()
                .contains(&RelPath::parse(b"a/bc").unwrap())
        );
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(Name::classify(b"passwd"), Ok(Name::Plain));
        assert_eq!(Name::classify(b".wh"), Ok(Name::Plain));
        assert_eq!(Name::classify(b".wh.passwd"), Ok(Name::Whiteout(b"passwd")));
        assert_eq!(
            Name::classify(b".wh..hidden"),
            Ok(Name::Whiteout(b".hidden"))
        );
        assert_eq!(Name::classify(b".wh..wh..opq"), Ok(Name::Opaque));
        assert_eq!(Name::classify(b".wh..wh.plnk"), Ok(Name::Reserved));
        assert_eq!(Name::classify(b".wh..wh.aufs"), Ok(Name::Reserved));
        for bad in [&b".wh."[..], b".wh..", b".wh..."] {
            assert!(Name::classify(bad).is_err());
        }
    }
}
