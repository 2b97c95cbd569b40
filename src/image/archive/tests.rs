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

/// The `tar` crate reads a PAX record or GNU long name wholly into memory: one that runs for
/// gigabytes in a hostile archive would be read into berthd's memory while indexing. Headers in
/// front of one entry are bounded as the layer unpacker bounds them.
#[test]
fn huge_headers_are_refused_not_read_into_memory() {
    for kind in [tar::EntryType::XHeader, tar::EntryType::GNULongName] {
        let payload = vec![b'a'; 4 << 20];
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_path("././@LongLink").unwrap();
        header.set_size(payload.len() as u64);
        header.set_entry_type(kind);
        header.set_cksum();
        builder.append(&header, &payload[..]).unwrap();
        let mut file = tar::Header::new_gnu();
        file.set_size(2);
        file.set_mode(0o644);
        file.set_cksum();
        builder
            .append_data(&mut file, "index.json", &b"{}"[..])
            .unwrap();
        let mut archive = tempfile::NamedTempFile::new().unwrap();
        archive.write_all(&builder.into_inner().unwrap()).unwrap();

        let err = Entries::index(archive.path()).expect_err("a 4 MiB header");
        assert!(err.to_string().contains("headers"), "{kind:?}: {err}");
        assert_eq!(
            crate::error::Classify::kind(&err),
            crate::error::Kind::InvalidArgument
        );
    }
}

/// A docker archive may list one layer tarball many times (its config then has as many diff
/// ids). Each distinct tarball is hashed once: a hostile `manifest.json` listing one large
/// tarball thousands of times must not make berthd hash it thousands of times.
#[test]
fn a_layer_listed_many_times_is_hashed_once() {
    const TIMES: usize = 2000;
    let layer = vec![0u8; 16 << 20];
    let diff_id = crate::image::digest::Digest::of(&layer).to_string();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": vec![diff_id; TIMES]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "config.json",
        "RepoTags": ["example.test/many:1"],
        "Layers": vec!["l/layer.tar"; TIMES],
    }]))
    .unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("config.json", &config),
        ("l/layer.tar", &layer),
        ("manifest.json", &manifest),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, &data[..]).unwrap();
    }
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&builder.into_inner().unwrap()).unwrap();

    let platform = crate::image::manifest::Platform::parse("linux/amd64").unwrap();
    let started = std::time::Instant::now();
    let plans = plan::plan(Entries::index(file.path()).unwrap(), &platform).unwrap();
    let took = started.elapsed();
    assert_eq!(plans.len(), 1);
    assert!(
        took < std::time::Duration::from_secs(5),
        "planning took {took:?}: the 16 MiB tarball was hashed once per listing"
    );
}
