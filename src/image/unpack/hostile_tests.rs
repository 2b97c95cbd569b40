//! Hostile layers: each must fail with the right error (or be made harmless) and leave nothing
//! outside the layer directory. Every case unpacks into `tmp/root/` next to `tmp/outside/secret`
//! and then checks that the temp dir, `outside/` and the secret are exactly as they were.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tar::EntryType;

use super::meter::HEADER_WINDOW;
use super::testtar::{Counting, E, SECRET, Sandbox, names, tar};
use super::{Limits, UnpackError, unpack_layer};

/// Asserts `err` is `Hostile` naming `path`.
#[track_caller]
fn assert_hostile(err: UnpackError, path: &str) {
    match err {
        UnpackError::Hostile { path: p, reason } => {
            assert_eq!(p, Path::new(path), "refused entry ({reason})");
        }
        other => panic!("expected Hostile for {path}, got {other:?}"),
    }
}

/// Unpacks `entries` and asserts the last one is refused as hostile and nothing escaped.
#[track_caller]
fn refused(entries: &[E], path: &str) -> Sandbox {
    let sb = Sandbox::new();
    assert_hostile(sb.unpack(&tar(entries)).unwrap_err(), path);
    sb.assert_contained();
    sb
}

#[test]
fn names_that_climb_are_refused() {
    for name in [
        "../escape",
        "a/../../escape",
        "a/../b",
        "../../../../../../tmp/escape",
        "..",
    ] {
        let sb = refused(&[E::file(name, b"x")], name);
        assert_eq!(names(&sb.root()), Vec::<String>::new(), "{name}");
    }
    refused(&[E::dir("../outside/new")], "../outside/new");
    refused(&[E::symlink("../link", "/")], "../link");
    refused(
        &[E::file("x", b"").pax("path", b"ok/../../escape")],
        "ok/../../escape",
    );
}

#[test]
fn absolute_names_stay_inside() {
    let sb = Sandbox::new();
    let outside_secret = sb.outside().join("secret");
    let name = outside_secret.to_str().unwrap();
    sb.unpack(&tar(&[
        E::file(name, b"overwritten?"),
        E::file("/escape", b"e"),
    ]))
    .unwrap();
    sb.assert_contained();
    let inside = sb.root().join(name.trim_start_matches('/'));
    assert_eq!(fs::read(inside).unwrap(), b"overwritten?");
    assert_eq!(fs::read(sb.root().join("escape")).unwrap(), b"e");
}

#[test]
fn writes_through_a_symlink_are_refused() {
    let sb = Sandbox::new();
    let outside = sb.outside();
    let out = outside.to_str().unwrap();
    refused(
        &[E::symlink("link", out), E::file("link/file", b"x")],
        "link/file",
    );
    refused(&[E::symlink("link", out), E::dir("link/dir")], "link/dir");
    refused(
        &[E::symlink("link", out), E::symlink("link/s", "/")],
        "link/s",
    );
    refused(
        &[E::symlink("link", ".."), E::file("link/outside/x", b"x")],
        "link/outside/x",
    );
    refused(
        &[E::symlink("up", "../outside"), E::file("up/secret", b"x")],
        "up/secret",
    );
    // Deeper: a symlinked directory in the middle of the path, even one pointing inside.
    refused(
        &[
            E::dir("a"),
            E::symlink("a/b", out),
            E::file("a/b/c/d", b"x"),
        ],
        "a/b/c/d",
    );
    refused(
        &[
            E::dir("real"),
            E::symlink("alias", "real"),
            E::file("alias/f", b""),
        ],
        "alias/f",
    );
    // Whiteouts and opaque markers too.
    refused(
        &[E::symlink("d", out), E::file("d/.wh.secret", b"")],
        "d/.wh.secret",
    );
    refused(
        &[E::symlink("d", out), E::file("d/.wh..wh..opq", b"")],
        "d/.wh..wh..opq",
    );
}

#[test]
fn entries_over_a_planted_symlink_replace_it() {
    let sb = Sandbox::new();
    let secret = sb.outside().join("secret");
    let s = secret.to_str().unwrap();
    let out = sb.outside();
    let layer = tar(&[
        E::symlink("x", s),
        E::file("x", b"evil"),
        E::symlink("y", out.to_str().unwrap()),
        E::dir("y").mode(0o700),
        E::file("y/inside", b"i"),
        E::symlink("z", s),
        E::node("z", EntryType::Fifo, 0, 0),
        E::symlink("w", s),
        E::file(".wh.w", b""),
    ]);
    sb.unpack(&layer).unwrap();
    sb.assert_contained();
    let root = sb.root();
    assert_eq!(fs::read(root.join("x")).unwrap(), b"evil");
    assert!(fs::symlink_metadata(root.join("y")).unwrap().is_dir());
    assert_eq!(fs::read(root.join("y/inside")).unwrap(), b"i");
    assert!(
        fs::symlink_metadata(root.join("w"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn hardlinks_out_of_the_layer_are_refused() {
    let sb = Sandbox::new();
    let out = sb.outside();
    let out = out.to_str().unwrap();
    // Through a symlink to a directory outside.
    refused(
        &[E::symlink("out", out), E::hardlink("stolen", "out/secret")],
        "stolen",
    );
    // Climbing.
    refused(&[E::hardlink("passwd", "../../etc/passwd")], "passwd");
    refused(&[E::hardlink("s", "../outside/secret")], "s");
    // Absolute: read as inside the layer, where it does not exist.
    let abs = format!("{out}/secret");
    refused(&[E::hardlink("s", &abs)], "s");
    refused(&[E::hardlink("passwd", "/etc/passwd")], "passwd");
    // Missing, a directory, itself.
    refused(&[E::hardlink("l", "nowhere")], "l");
    refused(&[E::dir("d"), E::hardlink("l", "d")], "l");
    refused(&[E::hardlink("l", "./")], "l");
    refused(&[E::file("l", b"x"), E::hardlink("l", "l")], "l");
    // A link whose own parent is a symlink.
    refused(
        &[
            E::file("f", b""),
            E::symlink("p", out),
            E::hardlink("p/f", "f"),
        ],
        "p/f",
    );
}

#[test]
fn a_hardlink_to_a_symlink_links_the_symlink_itself() {
    let sb = Sandbox::new();
    let secret = sb.outside().join("secret");
    let layer = tar(&[
        E::symlink("sl", secret.to_str().unwrap()),
        E::hardlink("hl", "sl"),
        E::file("sl", b"replaced"),
    ]);
    sb.unpack(&layer).unwrap();
    sb.assert_contained();
    let root = sb.root();
    let hl = fs::symlink_metadata(root.join("hl")).unwrap();
    assert!(hl.file_type().is_symlink(), "linkat did not follow");
    assert_eq!(fs::read_link(root.join("hl")).unwrap(), secret);
    assert_eq!(fs::read(root.join("sl")).unwrap(), b"replaced");
    assert_eq!(
        hl.nlink(),
        1,
        "sl was replaced, hl is the symlink's last name"
    );
}

#[test]
fn malformed_entries_are_refused() {
    refused(&[E::file(".wh..", b"")], ".wh..");
    refused(&[E::file("d/.wh...", b"")], "d/.wh...");
    refused(&[E::file(".wh.", b"")], ".wh.");
    refused(&[E::file(".", b"root as a file")], ".");
    refused(&[E::symlink("./", "/")], "./");
    refused(&[E::symlink("empty", "")], "empty");
    refused(&[E::typed("vol", EntryType::new(b'V'))], "vol");
    refused(&[E::file("f", b"").owner(u64::from(u32::MAX), 0)], "f");
    refused(&[E::file("f", b"").pax("mtime", b"yesterday")], "f");
    refused(&[E::file("f", b"").pax("SCHILY.xattr.", b"v")], "f");
    refused(&[E::file("f", b"").pax("path", b"a\0b")], "a\0b");
    refused(&[E::file("", b"")], "");
    refused(&[E::file("f", b"x"), E::file("f/g", b"")], "f/g");
    let long = "a/".repeat(2100);
    refused(&[E::file("x", b"").pax("path", long.as_bytes())], &long);
}

/// A stream of `header`, then `len` zero bytes produced on the fly, then the end blocks: no
/// buffer of `len` bytes ever exists.
fn streamed(header: Vec<u8>, len: u64) -> impl Read {
    io::Cursor::new(header)
        .chain(io::repeat(0).take(len))
        .chain(io::Cursor::new(vec![0; 1024]))
}

#[test]
fn a_decompression_bomb_stops_at_the_limit() {
    const MIB: u64 = 1 << 20;
    let mut h = tar::Header::new_ustar();
    h.set_path("bomb").unwrap();
    h.set_mode(0o644);
    h.set_size(10 * MIB);
    h.set_cksum();
    let count = std::rc::Rc::new(std::cell::Cell::new(0));
    let reader = Counting {
        inner: streamed(h.as_bytes().to_vec(), 10 * MIB),
        count: count.clone(),
    };
    let sb = Sandbox::new();
    let err = unpack_layer(reader, &sb.root(), &Limits::bytes(MIB)).unwrap_err();
    assert!(
        matches!(err, UnpackError::TooLarge { limit } if limit == MIB),
        "{err:?}"
    );
    assert!(
        count.get() <= MIB + 1,
        "read {} bytes for a 1 MiB limit",
        count.get()
    );
    assert!(fs::metadata(sb.root().join("bomb")).unwrap().len() <= MIB);
    sb.assert_contained();
}

#[test]
fn a_sparse_bomb_stops_at_the_limit() {
    const MIB: u64 = 1 << 20;
    // One GNU sparse entry: 512 bytes of data placed at the end of a 10 MiB file.
    let mut h = tar::Header::new_gnu();
    h.set_path("sparse").unwrap();
    h.set_mode(0o644);
    h.set_entry_type(EntryType::GNUSparse);
    h.set_size(512);
    let gnu = h.as_gnu_mut().unwrap();
    octal(&mut gnu.sparse[0].offset, 10 * MIB - 512);
    octal(&mut gnu.sparse[0].numbytes, 512);
    octal(&mut gnu.realsize, 10 * MIB);
    h.set_cksum();
    let mut layer = h.as_bytes().to_vec();
    layer.extend_from_slice(&[1; 512]);
    layer.extend_from_slice(&[0; 1024]);

    let sb = Sandbox::new();
    assert_eq!(
        sb.unpack_limited(&layer, 20 * MIB).unwrap().bytes,
        10 * MIB,
        "a valid sparse file"
    );
    let sb = Sandbox::new();
    let err = sb.unpack_limited(&layer, MIB).unwrap_err();
    assert!(matches!(err, UnpackError::TooLarge { .. }), "{err:?}");
    assert!(fs::metadata(sb.root().join("sparse")).unwrap().len() <= MIB);
    sb.assert_contained();
}

fn octal(field: &mut [u8; 12], value: u64) {
    let text = format!("{value:011o}\0");
    field.copy_from_slice(text.as_bytes());
}

#[test]
fn oversized_headers_are_refused_before_they_fill_memory() {
    for kind in [
        EntryType::XHeader,
        EntryType::GNULongName,
        EntryType::GNULongLink,
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_path("././@LongLink").unwrap();
        h.set_entry_type(kind);
        h.set_size(64 << 20);
        h.set_cksum();
        let count = std::rc::Rc::new(std::cell::Cell::new(0));
        let reader = Counting {
            inner: streamed(h.as_bytes().to_vec(), 64 << 20),
            count: count.clone(),
        };
        let sb = Sandbox::new();
        let err = unpack_layer(reader, &sb.root(), &Limits::bytes(1 << 30)).unwrap_err();
        assert!(
            matches!(err, UnpackError::HeadersTooLarge { .. }),
            "{kind:?}: {err:?}"
        );
        assert!(
            count.get() <= HEADER_WINDOW + 1,
            "{kind:?}: read {}",
            count.get()
        );
        sb.assert_contained();
    }
}

#[test]
fn device_nodes_are_allowed_and_stay_nodes() {
    let sb = Sandbox::new();
    let layer = tar(&[
        E::node("dev/sda", EntryType::Block, 8, 0),
        E::file("f", SECRET),
    ]);
    sb.unpack(&layer).unwrap();
    sb.assert_contained();
    let m = fs::symlink_metadata(sb.root().join("dev/sda")).unwrap();
    assert_eq!(rustix::fs::major(m.rdev()), 8);
    assert_eq!(m.len(), 0, "nothing was written into the device");
}
