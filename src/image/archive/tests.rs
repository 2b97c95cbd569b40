//! Indexing archives: paths are normalised, unsafe ones refused, non-regular files never used.

use std::io::Write as _;

use super::*;

#[test]
fn paths_normalise_or_are_refused() {
    assert_eq!(normalise("./blobs/sha256/ab").unwrap(), "blobs/sha256/ab");
    assert_eq!(normalise("index.json").unwrap(), "index.json");
    assert_eq!(normalise("a//b/./c").unwrap(), "a/b/c");
    assert_eq!(normalise("./").unwrap(), "");
    for bad in ["../x", "a/../../x", "/etc/passwd", "a/.."] {
        assert!(
            matches!(normalise(bad), Err(ArchiveError::UnsafePath { .. })),
            "{bad}"
        );
    }
}

#[test]
fn index_lists_regular_files_only_with_their_bytes() {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header.clone(), "./index.json", &b"hello"[..])
        .unwrap();
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    builder
        .append_link(&mut link, "manifest.json", "/etc/passwd")
        .unwrap();
    let bytes = builder.into_inner().unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&bytes).unwrap();

    let entries = Entries::index(file.path()).unwrap();
    assert_eq!(entries.read("index.json", 100).unwrap(), b"hello");
    assert!(matches!(
        entries.read("index.json", 4),
        Err(ArchiveError::TooLarge { .. })
    ));
    assert!(matches!(
        entries.get("manifest.json"),
        Err(ArchiveError::Missing { .. })
    ));
    assert!(matches!(
        entries.get("../index.json"),
        Err(ArchiveError::Missing { .. })
    ));
}

#[test]
fn import_failures_map_to_what_the_caller_can_do() {
    use crate::error::{Classify, Kind};
    use crate::image::pull::PullError;
    use crate::image::unpack::UnpackError;
    let layer: crate::image::digest::Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
    let pull = |source: PullError| ArchiveError::Pull {
        image: "archive".into(),
        source: Box::new(source),
    };
    let cases = [
        (
            pull(PullError::Unpack {
                layer,
                source: UnpackError::DiskReserve("below image.disk_reserve".into()),
            }),
            Kind::ResourceExhausted,
        ),
        (pull(PullError::Cancelled), Kind::Cancelled),
        (
            ArchiveError::Worker("indexing stopped: panicked".into()),
            Kind::Internal,
        ),
        (
            ArchiveError::Spool(std::io::Error::other("disk broke")),
            Kind::Internal,
        ),
        (
            ArchiveError::SpoolTooLarge { limit: 1 },
            Kind::ResourceExhausted,
        ),
        (
            ArchiveError::DiskReserve("image.disk_reserve".into()),
            Kind::ResourceExhausted,
        ),
    ];
    for (error, kind) in cases {
        assert_eq!(error.kind(), kind, "{error}");
    }
}
