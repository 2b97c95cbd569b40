//! What an honest layer turns into on disk: contents, owners, modes, times, xattrs, links, nodes,
//! whiteouts, long names and replacement. Run as root (CI is root).

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tar::EntryType;

use super::testtar::{Counting, E, MTIME, Sandbox, names, pax_record, tar, xattr};
use super::{UnpackError, Unpacked};
use crate::error::{Classify, Kind};

fn meta(path: &Path) -> fs::Metadata {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn perms(path: &Path) -> u32 {
    meta(path).mode() & 0o7777
}

fn owner(path: &Path) -> (u32, u32) {
    let m = meta(path);
    (m.uid(), m.gid())
}

#[test]
fn files_and_directories_keep_content_owner_mode_and_times() {
    let sb = Sandbox::new();
    let layer = tar(&[
        E::dir("usr/").mtime(1_000_000_000),
        E::dir("usr/bin/").mtime(1_000_000_001),
        E::file("usr/bin/su", b"#!su").mode(0o4755),
        E::file("usr/bin/wall", b"#!wall")
            .mode(0o2755)
            .owner(1000, 5)
            .pax("mtime", b"1500000000.123456789")
            .pax("atime", b"1500000001.5"),
        E::dir("tmp").mode(0o1777),
        E::dir("srv/shared").mode(0o2775).owner(1000, 1000),
        E::file("home/user/notes", b"hello\n")
            .mode(0o600)
            .owner(1000, 1000),
        E::file("./etc/hostname", b"berth\n"),
        E::file("/etc/hosts", b"127.0.0.1 localhost\n"),
    ]);
    let got = sb.unpack(&layer).unwrap();
    let root = sb.root();

    assert_eq!(fs::read(root.join("usr/bin/su")).unwrap(), b"#!su");
    assert_eq!(perms(&root.join("usr/bin/su")), 0o4755, "setuid kept");
    assert_eq!(owner(&root.join("usr/bin/su")), (0, 0));
    let wall = root.join("usr/bin/wall");
    assert_eq!(perms(&wall), 0o2755, "setgid survives the chown to 1000:5");
    assert_eq!(owner(&wall), (1000, 5));
    assert_eq!(
        (meta(&wall).mtime(), meta(&wall).mtime_nsec()),
        (1_500_000_000, 123_456_789)
    );
    assert_eq!(
        (meta(&wall).atime(), meta(&wall).atime_nsec()),
        (1_500_000_001, 500_000_000)
    );
    assert_eq!(meta(&root.join("usr/bin/su")).mtime(), MTIME as i64);

    assert_eq!(perms(&root.join("tmp")), 0o1777, "sticky kept");
    assert_eq!(perms(&root.join("srv/shared")), 0o2775);
    assert_eq!(owner(&root.join("srv/shared")), (1000, 1000));
    // Directories whose entries came before their children keep the archive's times.
    assert_eq!(meta(&root.join("usr")).mtime(), 1_000_000_000);
    assert_eq!(meta(&root.join("usr/bin")).mtime(), 1_000_000_001);

    // Parents missing from the archive are made 0755 root.
    for implicit in ["srv", "home", "home/user", "etc"] {
        assert_eq!(perms(&root.join(implicit)), 0o755, "{implicit}");
        assert_eq!(owner(&root.join(implicit)), (0, 0), "{implicit}");
    }
    assert_eq!(perms(&root.join("home/user/notes")), 0o600);
    assert_eq!(owner(&root.join("home/user/notes")), (1000, 1000));
    // `./` and `/` prefixes are dropped, as Docker does.
    assert_eq!(fs::read(root.join("etc/hostname")).unwrap(), b"berth\n");
    assert_eq!(
        fs::read(root.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n"
    );

    let bytes = [4, 6, 6, 6, 20].iter().sum();
    // usr usr/bin su wall tmp srv srv/shared home home/user notes etc hostname hosts
    assert_eq!(got, Unpacked { bytes, inodes: 13 });
}

#[test]
fn xattrs_are_set_on_files_dirs_and_symlinks() {
    // vfs_cap_data revision 2, effective, permitted = CAP_NET_BIND_SERVICE.
    let cap: &[u8] = &[1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let sb = Sandbox::new();
    let layer = tar(&[
        E::dir("d")
            .pax("SCHILY.xattr.user.kind", b"dir")
            .pax("SCHILY.xattr.trusted.berth", b"d"),
        E::file("d/ping", b"ping")
            .owner(0, 0)
            .mode(0o755)
            .pax("SCHILY.xattr.user.comment", b"hello")
            .pax("SCHILY.xattr.security.capability", cap),
        E::file("d/redirected", b"x").pax("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        E::symlink("d/link", "ping")
            .pax("SCHILY.xattr.trusted.berth", b"link")
            .pax("SCHILY.xattr.user.refused", b"kernel says no"),
    ]);
    sb.unpack(&layer).unwrap();
    let root = sb.root();
    assert_eq!(
        xattr(&root.join("d"), "user.kind").as_deref(),
        Some(&b"dir"[..])
    );
    assert_eq!(
        xattr(&root.join("d"), "trusted.berth").as_deref(),
        Some(&b"d"[..])
    );
    let ping = root.join("d/ping");
    assert_eq!(xattr(&ping, "user.comment").as_deref(), Some(&b"hello"[..]));
    assert_eq!(
        xattr(&ping, "security.capability").as_deref(),
        Some(cap),
        "capabilities are set after the chown that would clear them"
    );
    assert_eq!(
        xattr(&root.join("d/redirected"), "trusted.overlay.redirect"),
        None,
        "a layer cannot set overlayfs's own attributes"
    );
    let link = root.join("d/link");
    assert_eq!(xattr(&link, "trusted.berth").as_deref(), Some(&b"link"[..]));
    assert_eq!(
        xattr(&link, "user.refused"),
        None,
        "user.* is skipped on symlinks"
    );
    assert_eq!(
        xattr(&ping, "trusted.berth"),
        None,
        "the symlink was not followed"
    );
}

#[test]
fn whiteouts_become_char_devices_and_opaque_markers() {
    let sb = Sandbox::new();
    let layer = tar(&[
        E::dir("etc"),
        E::file("etc/.wh.passwd", b""),
        E::file("etc/.wh..hidden", b""),
        E::file("var/cache/.wh..wh..opq", b""),
        E::file("var/cache/kept", b"kept"),
        E::dir("opt"),
        E::file("opt/.wh..wh..opq", b""),
        E::file(".wh..wh.plnk", b""),
        E::file("usr/.wh..wh.aufs", b""),
    ]);
    let got = sb.unpack(&layer).unwrap();
    let root = sb.root();
    for gone in ["etc/passwd", "etc/.hidden"] {
        let m = meta(&root.join(gone));
        assert!(
            m.file_type().is_char_device(),
            "{gone} is a whiteout device"
        );
        assert_eq!(m.rdev(), 0, "{gone} is device 0:0");
    }
    assert_eq!(names(&root.join("etc")), [".hidden", "passwd"]);
    assert_eq!(
        xattr(&root.join("var/cache"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr(&root.join("opt"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(xattr(&root.join("var"), "trusted.overlay.opaque"), None);
    assert_eq!(
        names(&root.join("var/cache")),
        ["kept"],
        "the layer's own entries stay"
    );
    assert_eq!(
        names(&root.join("opt")),
        Vec::<String>::new(),
        "no marker file"
    );
    assert_eq!(
        names(&root),
        ["etc", "opt", "var"],
        "no .wh..wh.plnk, no usr/"
    );
    // etc passwd .hidden var var/cache kept opt
    assert_eq!(got.inodes, 7);
}

#[test]
fn hardlinks_share_the_inode() {
    let sb = Sandbox::new();
    let layer = tar(&[
        E::file("bin/busybox", b"multi-call").mode(0o755),
        E::hardlink("bin/sh", "bin/busybox"),
        E::hardlink("/bin/ls", "/bin/busybox"),
        E::hardlink("usr/bin/env", "./bin/busybox"),
    ]);
    let got = sb.unpack(&layer).unwrap();
    let root = sb.root();
    let ino = meta(&root.join("bin/busybox")).ino();
    for link in ["bin/sh", "bin/ls", "usr/bin/env"] {
        assert_eq!(meta(&root.join(link)).ino(), ino, "{link}");
    }
    assert_eq!(meta(&root.join("bin/busybox")).nlink(), 4);
    assert_eq!(got.bytes, 10, "content is counted once");
}

#[test]
fn symlink_targets_are_kept_verbatim() {
    let sb = Sandbox::new();
    let layer = tar(&[
        E::symlink("lib", "usr/lib"),
        E::symlink("etc/mtab", "/proc/self/mounts")
            .owner(5, 6)
            .mtime(1_234_567_890),
        E::symlink("a/b/up", "../../../../.."),
        E::symlink("dangling", "/nonexistent/x"),
        E::file("target", b"t").owner(7, 8).mtime(1_000),
        E::symlink("to-target", "target").owner(5, 6).mtime(2_000),
    ]);
    sb.unpack(&layer).unwrap();
    let root = sb.root();
    // A symlink's owner and times are its own: what it points at keeps its own.
    assert_eq!(owner(&root.join("to-target")), (5, 6));
    assert_eq!(meta(&root.join("to-target")).mtime(), 2_000);
    assert_eq!(owner(&root.join("target")), (7, 8));
    assert_eq!(meta(&root.join("target")).mtime(), 1_000);
    for (link, target) in [
        ("lib", "usr/lib"),
        ("etc/mtab", "/proc/self/mounts"),
        ("a/b/up", "../../../../.."),
        ("dangling", "/nonexistent/x"),
    ] {
        assert!(meta(&root.join(link)).file_type().is_symlink(), "{link}");
        assert_eq!(fs::read_link(root.join(link)).unwrap(), Path::new(target));
    }
    assert_eq!(owner(&root.join("etc/mtab")), (5, 6));
    assert_eq!(meta(&root.join("etc/mtab")).mtime(), 1_234_567_890);
}

#[test]
fn fifos_and_device_nodes_are_made_with_their_modes() {
    let sb = Sandbox::new();
    let layer = tar(&[
        E::node("run/initctl", EntryType::Fifo, 0, 0).mode(0o620),
        E::node("dev/null", EntryType::Char, 1, 3)
            .mode(0o666)
            .mtime(42),
        E::node("dev/loop0", EntryType::Block, 7, 0)
            .mode(0o660)
            .owner(0, 6),
    ]);
    sb.unpack(&layer).unwrap();
    let root = sb.root();
    let fifo = meta(&root.join("run/initctl"));
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o620);
    let null = meta(&root.join("dev/null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(
        (
            rustix::fs::major(null.rdev()),
            rustix::fs::minor(null.rdev())
        ),
        (1, 3)
    );
    assert_eq!(null.mode() & 0o7777, 0o666, "not reduced by the umask");
    assert_eq!(null.mtime(), 42);
    let loop0 = meta(&root.join("dev/loop0"));
    assert!(loop0.file_type().is_block_device());
    assert_eq!(
        (
            rustix::fs::major(loop0.rdev()),
            rustix::fs::minor(loop0.rdev())
        ),
        (7, 0)
    );
    assert_eq!((loop0.mode() & 0o7777, loop0.gid()), (0o660, 6));
}

#[test]
fn long_names_from_pax_and_gnu_headers() {
    let deep = format!("{}/{}", "d".repeat(120), "f".repeat(120));
    let target = format!("/{}", "t".repeat(150));
    let mut layer = tar(&[
        E::file("short", b"pax").pax("path", deep.as_bytes()),
        E::symlink("s", "short").pax("linkpath", target.as_bytes()),
    ]);
    layer.truncate(layer.len() - 1024);
    // GNU long names ('L' and 'K' records) as the tar Builder writes them.
    let mut b = tar::Builder::new(layer);
    let gnu_name = format!("{}/gnu", "g".repeat(150));
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(3);
    b.append_data(&mut h, &gnu_name, &b"gnu"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, "gnu-link", "x".repeat(130)).unwrap();
    let layer = b.into_inner().unwrap();

    let sb = Sandbox::new();
    sb.unpack(&layer).unwrap();
    let root = sb.root();
    assert_eq!(fs::read(root.join(&deep)).unwrap(), b"pax");
    assert!(
        !root.join("short").exists(),
        "the PAX path wins over the header name"
    );
    assert_eq!(fs::read_link(root.join("s")).unwrap(), Path::new(&target));
    assert_eq!(fs::read(root.join(&gnu_name)).unwrap(), b"gnu");
    assert_eq!(
        fs::read_link(root.join("gnu-link")).unwrap(),
        Path::new(&"x".repeat(130))
    );
}

#[test]
fn later_entries_replace_earlier_ones() {
    let sb = Sandbox::new();
    let layer = tar(&[
        // file over file
        E::file("a", b"first"),
        E::file("a", b"second"),
        // dir over file
        E::file("b", b"file"),
        E::dir("b"),
        E::file("b/inner", b"inner"),
        // file over a directory with children (and deferred times)
        E::dir("c").mtime(5),
        E::file("c/child", b"child"),
        E::file("c", b"now a file").mtime(7),
        // dir over dir: metadata updated, children kept
        E::dir("d").mode(0o700),
        E::file("d/kept", b"kept"),
        E::dir("d").mode(0o750).owner(7, 8).mtime(9),
        // file over symlink
        E::symlink("e", "a"),
        E::file("e", b"e"),
        // symlink over dir
        E::dir("f"),
        E::file("f/x", b"x"),
        E::symlink("f", "a"),
    ]);
    sb.unpack(&layer).unwrap();
    let root = sb.root();
    assert_eq!(fs::read(root.join("a")).unwrap(), b"second");
    assert_eq!(meta(&root.join("a")).nlink(), 1);
    assert!(meta(&root.join("b")).is_dir());
    assert_eq!(fs::read(root.join("b/inner")).unwrap(), b"inner");
    assert_eq!(fs::read(root.join("c")).unwrap(), b"now a file");
    assert_eq!(meta(&root.join("c")).mtime(), 7);
    assert_eq!(names(&root.join("d")), ["kept"]);
    assert_eq!(perms(&root.join("d")), 0o750);
    assert_eq!(owner(&root.join("d")), (7, 8));
    assert_eq!(meta(&root.join("d")).mtime(), 9);
    assert!(meta(&root.join("e")).is_file());
    assert_eq!(
        fs::read(root.join("a")).unwrap(),
        b"second",
        "the symlink was not followed"
    );
    assert!(meta(&root.join("f")).file_type().is_symlink());
    assert_eq!(names(&root), ["a", "b", "c", "d", "e", "f"]);
}

#[test]
fn a_root_entry_sets_the_layer_directory_itself() {
    let sb = Sandbox::new();
    let layer = tar(&[E::dir("./").mode(0o751).mtime(77), E::file("./x", b"x")]);
    sb.unpack(&layer).unwrap();
    assert_eq!(perms(&sb.root()), 0o751);
    assert_eq!(meta(&sb.root()).mtime(), 77, "set after x was created");
    assert_eq!(names(&sb.root()), ["x"]);
}

#[test]
fn reads_the_stream_to_its_very_end() {
    let mut layer = tar(&[E::dir("etc"), E::file("etc/motd", b"hi")]);
    // Record padding after the end-of-archive blocks, as `tar` writes it.
    layer.resize(10240, 0);
    let count = std::rc::Rc::new(std::cell::Cell::new(0));
    let reader = Counting {
        inner: &layer[..],
        count: count.clone(),
    };
    let sb = Sandbox::new();
    super::unpack_layer(reader, &sb.root(), &super::Limits::bytes(1 << 20)).unwrap();
    assert_eq!(count.get(), 10240);
}

#[test]
fn a_broken_stream_is_a_tar_error() {
    let layer = tar(&[E::file("f", &[7u8; 2000])]);
    // Bad checksum.
    let mut bad = layer.clone();
    bad[0] = b'g';
    let sb = Sandbox::new();
    let err = sb.unpack(&bad).unwrap_err();
    assert!(matches!(err, UnpackError::Tar(_)), "{err}");
    assert_eq!(err.kind(), Kind::Internal);
    // Cut inside the file's data.
    let sb = Sandbox::new();
    let err = sb.unpack(&layer[..1200]).unwrap_err();
    assert!(matches!(err, UnpackError::Tar(_)), "{err}");
    // A failing reader.
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("connection reset"))
        }
    }
    let sb = Sandbox::new();
    let err = super::unpack_layer(Broken, &sb.root(), &super::Limits::bytes(1)).unwrap_err();
    assert!(err.to_string().contains("connection reset"), "{err}");
}

#[test]
fn global_pax_headers_are_skipped() {
    let mut layer = Vec::new();
    let records = pax_record("comment", b"built by berth");
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(EntryType::XGlobalHeader);
    h.set_size(records.len() as u64);
    h.set_cksum();
    layer.extend_from_slice(h.as_bytes());
    layer.extend_from_slice(&records);
    layer.resize(layer.len().next_multiple_of(512), 0);
    layer.extend_from_slice(&tar(&[E::file("f", b"f")]));
    let sb = Sandbox::new();
    sb.unpack(&layer).unwrap();
    assert_eq!(names(&sb.root()), ["f"]);
}

#[test]
fn errors_map_to_kinds_and_name_the_entry() {
    let hostile = UnpackError::Hostile {
        path: "../x".into(),
        reason: "climbs".into(),
    };
    assert_eq!(hostile.kind(), Kind::InvalidArgument);
    assert!(hostile.to_string().contains("\"../x\""), "{hostile}");
    assert_eq!(
        UnpackError::TooLarge { limit: 1 }.kind(),
        Kind::ResourceExhausted
    );
    assert_eq!(
        UnpackError::HeadersTooLarge { limit: 1 }.kind(),
        Kind::InvalidArgument
    );
    let io = UnpackError::Io {
        path: "etc/x".into(),
        source: std::io::Error::other("disk full"),
    };
    assert_eq!(io.kind(), Kind::Internal);
    assert!(io.to_string().contains("etc/x") && io.to_string().contains("disk full"));
}
