//! The layered test image (`test/layered:gzip` and `:zstd`, docs/test-fixtures.md) pulled through
//! berthd's CRI ImageService, its snapshot dirs mounted as a read-only overlay exactly as a
//! container's rootfs stacks them, and the merged view checked entry by entry against the fixture
//! doc: whiteouts, an opaque dir, replacements both ways, links, devices, modes, owners, an xattr
//! and mtimes. Needs root and `hack/registry.sh start` + `hack/testimages/build.sh`; a mount that
//! fails fails the test.

mod common;

use std::fs::{self, Metadata};
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth::cri::api;
use common::Daemon;
use common::registry::{Registries, registries};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// 2024-01-01T00:00:00Z: every entry's mtime unless the doc says otherwise.
const EPOCH: i64 = 1_704_067_200;
/// 2001-02-03T04:05:06Z: `/mtime-dir` and its file.
const OLD: i64 = 981_173_106;

fn daemon(r: &Registries) -> Daemon {
    Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ))
}

/// Pulls `image` and returns its snapshot dirs from ImageStatus, bottom layer first.
async fn pull_snapshot_dirs(d: &Daemon, image: &str) -> Vec<PathBuf> {
    let spec = Some(api::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    });
    let mut cri = d.client().await;
    let pull = api::PullImageRequest {
        image: spec.clone(),
        auth: None,
        sandbox_config: None,
    };
    cri.image
        .pull_image(pull)
        .await
        .unwrap_or_else(|e| panic!("pull {image}: {e}"));
    let status = api::ImageStatusRequest {
        image: spec,
        verbose: true,
    };
    let resp = cri.image.image_status(status).await.unwrap().into_inner();
    assert!(resp.image.is_some(), "{image} pulled but not found");
    let info: serde_json::Value =
        serde_json::from_str(resp.info.get("info").expect("verbose info")).unwrap();
    info["snapshotDirs"]
        .as_array()
        .unwrap_or_else(|| panic!("no snapshotDirs in {info}"))
        .iter()
        .map(|d| PathBuf::from(d.as_str().expect("snapshot dir is a string")))
        .collect()
}

/// A read-only overlay of `lowers` (bottom first) at `target`, unmounted on drop.
struct Overlay(PathBuf);

impl Overlay {
    fn mount(lowers: &[PathBuf], target: &Path) -> Overlay {
        // overlayfs lists the top layer first.
        let lowerdir: Vec<String> = lowers
            .iter()
            .rev()
            .map(|d| d.display().to_string())
            .collect();
        let options = format!("lowerdir={}", lowerdir.join(":"));
        mount(
            Some("overlay"),
            target,
            Some("overlay"),
            MsFlags::MS_RDONLY,
            Some(options.as_str()),
        )
        .unwrap_or_else(|e| panic!("mount overlay on {} ({options}): {e}", target.display()));
        Overlay(target.to_path_buf())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Err(e) = umount2(&self.0, MntFlags::empty()) {
            eprintln!("unmount {}: {e}; detaching", self.0.display());
            let _ = umount2(&self.0, MntFlags::MNT_DETACH);
        }
    }
}

/// Pulls `tag` of test/layered on its own daemon (so no layer is shared with another pull) and
/// checks the merged view of its snapshots.
async fn check_layered(tag: &str) {
    let r = registries();
    let d = daemon(&r);
    let dirs = pull_snapshot_dirs(&d, &format!("{}/test/layered:{tag}", r.plain)).await;
    assert_eq!(dirs.len(), 5, "busybox + 4 test layers: {dirs:?}");
    let mnt = tempfile::tempdir().unwrap();
    let _overlay = Overlay::mount(&dirs, mnt.path());
    assert_merged_view(mnt.path());
}

#[tokio::test]
async fn gzip_layers_merge_as_documented() {
    check_layered("gzip").await;
}

#[tokio::test]
async fn zstd_layers_merge_as_documented() {
    check_layered("zstd").await;
}

// ------------------------------------------------------------------------------------------------
// The merged view, as docs/test-fixtures.md lists it.

fn assert_merged_view(m: &Path) {
    assert_eq!(
        names(m, ""),
        [
            "bin",
            "data",
            "dev",
            "dev-test",
            "etc",
            "home",
            "links",
            "mtime-dir",
            "opaque",
            "proc",
            "root",
            "sbin",
            "special",
            "sys",
            "tmp",
            "usr",
            "var",
            "work",
        ]
    );
    busybox_survives_except_vi(m);
    data_dir(m);
    links_dir(m);
    special_files(m);

    let mtime_dir = lstat(m, "mtime-dir");
    assert!(mtime_dir.is_dir());
    assert_eq!(
        mtime_dir.mtime(),
        OLD,
        "mtime-dir keeps its mtime after its child was written"
    );
    assert_eq!(names(m, "mtime-dir"), ["file.txt"]);
    assert_file(m, "mtime-dir/file.txt", "old\n", 0o644);
    assert_eq!(lstat(m, "mtime-dir/file.txt").mtime(), OLD);

    assert_eq!(
        names(m, "opaque"),
        ["new.txt"],
        "the opaque dir hides old-a.txt and sub/"
    );
    assert_file(m, "opaque/new.txt", "new\n", 0o644);
    assert_dir(m, "opaque", 0o755, (0, 0));

    assert_dir(m, "work", 0o755, (1000, 1000));
    assert_eq!(names(m, "work"), Vec::<String>::new());

    // Everything the test layers wrote, except /mtime-dir, has the fixed mtime.
    for top in ["data", "dev-test", "links", "opaque", "special", "work"] {
        for (path, meta) in walk(&m.join(top)) {
            assert_eq!(meta.mtime(), EPOCH, "mtime of {}", path.display());
        }
    }
    // No whiteout survives, in name or as the 0:0 device overlayfs hides.
    for (path, meta) in walk(m) {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(!name.starts_with(".wh."), "{} is visible", path.display());
        assert!(
            !(meta.file_type().is_char_device() && meta.rdev() == 0),
            "whiteout device {} is visible",
            path.display()
        );
    }
}

fn busybox_survives_except_vi(m: &Path) {
    let busybox = lstat(m, "bin/busybox");
    assert!(busybox.is_file() && busybox.len() > 500_000, "{busybox:?}");
    assert_eq!(busybox.permissions().mode() & 0o7777, 0o755);
    assert_absent(m, "bin/vi");
    let mut applets = 0;
    for dir in ["bin", "sbin", "usr/bin", "usr/sbin"] {
        for name in names(m, dir) {
            let rel = format!("{dir}/{name}");
            if lstat(m, &rel).file_type().is_symlink() {
                assert_eq!(link(m, &rel), "/bin/busybox", "{rel}");
                applets += 1;
            }
        }
    }
    assert_eq!(applets, 266, "busybox's 267 applet links minus /bin/vi");
    assert_eq!(link(m, "bin/sh"), "/bin/busybox");
    assert!(
        fs::read_to_string(m.join("etc/passwd"))
            .unwrap()
            .contains("app:x:1000:1000:")
    );
    assert_dir(m, "home/app", 0o755, (1000, 1000));
    assert_dir(m, "tmp", 0o1777, (0, 0));
}

fn data_dir(m: &Path) {
    assert_dir(m, "data", 0o755, (0, 0));
    assert_eq!(
        names(m, "data"),
        ["becomes-dir", "keep.txt", "replaced.txt", "was-dir"],
        "whiteouts delete delete-me.txt and gone-dir"
    );
    assert_absent(m, "data/delete-me.txt");
    assert_absent(m, "data/gone-dir");
    assert_file(m, "data/keep.txt", "keep\n", 0o644);
    assert_file(m, "data/replaced.txt", "version 2\n", 0o644);
    // a file replaced by a directory, and a directory replaced by a file
    assert_dir(m, "data/becomes-dir", 0o755, (0, 0));
    assert_eq!(names(m, "data/becomes-dir"), ["inner.txt"]);
    assert_file(m, "data/becomes-dir/inner.txt", "inside\n", 0o644);
    assert_file(m, "data/was-dir", "now a file\n", 0o644);
}

fn links_dir(m: &Path) {
    assert_dir(m, "links", 0o755, (0, 0));
    assert_eq!(
        names(m, "links"),
        [
            "abs-keep", "dangling", "dir-rel", "hard-a", "hard-b", "rel-keep"
        ]
    );
    // symlinks are stored verbatim, never resolved at unpack time
    assert_eq!(link(m, "links/abs-keep"), "/data/keep.txt");
    assert_eq!(link(m, "links/rel-keep"), "../data/keep.txt");
    assert_eq!(link(m, "links/dir-rel"), "../data");
    assert_eq!(link(m, "links/dangling"), "does-not-exist");
    assert_eq!(
        fs::metadata(m.join("links/dangling"))
            .map(|_| ())
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound,
        "links/dangling dangles"
    );
    assert_eq!(fs::read(m.join("links/rel-keep")).unwrap(), b"keep\n");
    assert_eq!(
        fs::read(m.join("links/dir-rel/keep.txt")).unwrap(),
        b"keep\n"
    );
    // one inode, two names
    let (a, b) = (lstat(m, "links/hard-a"), lstat(m, "links/hard-b"));
    assert_eq!(a.ino(), b.ino(), "hard-a and hard-b are one inode");
    assert_eq!(a.nlink(), 2);
    assert_file(m, "links/hard-a", "hardlinked content\n", 0o640);
    assert_file(m, "links/hard-b", "hardlinked content\n", 0o640);
}

fn special_files(m: &Path) {
    assert_eq!(names(m, "dev-test"), ["null"]);
    let null = lstat(m, "dev-test/null");
    assert!(null.file_type().is_char_device(), "{null:?}");
    assert_eq!(
        (
            rustix::fs::major(null.rdev()),
            rustix::fs::minor(null.rdev())
        ),
        (1, 3)
    );
    assert_eq!(null.permissions().mode() & 0o7777, 0o666);

    assert_eq!(
        names(m, "special"),
        ["fifo", "owned", "setgid-dir", "setuid", "xattr"]
    );
    let fifo = lstat(m, "special/fifo");
    assert!(fifo.file_type().is_fifo(), "{fifo:?}");
    assert_eq!(fifo.permissions().mode() & 0o7777, 0o644);

    assert_file(m, "special/owned", "owned by app\n", 0o640);
    assert_owner(m, "special/owned", (1000, 1000));
    assert_dir(m, "special/setgid-dir", 0o2775, (0, 100));
    assert_file(m, "special/setuid", "#!/bin/sh\necho setuid\n", 0o4755);
    assert_file(m, "special/xattr", "has an xattr\n", 0o644);
    let mut value = [0u8; 64];
    let n = rustix::fs::lgetxattr(m.join("special/xattr"), "user.berth", &mut value[..])
        .expect("user.berth xattr on special/xattr");
    assert_eq!(&value[..n], b"test");
}

// ------------------------------------------------------------------------------------------------
// Helpers

fn lstat(m: &Path, rel: &str) -> Metadata {
    fs::symlink_metadata(m.join(rel)).unwrap_or_else(|e| panic!("/{rel}: {e}"))
}

fn link(m: &Path, rel: &str) -> String {
    fs::read_link(m.join(rel))
        .unwrap_or_else(|e| panic!("/{rel} is not a symlink: {e}"))
        .display()
        .to_string()
}

/// Entry names of a directory, sorted.
fn names(m: &Path, rel: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(m.join(rel))
        .unwrap_or_else(|e| panic!("/{rel}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_absent(m: &Path, rel: &str) {
    let err = fs::symlink_metadata(m.join(rel)).map(|meta| meta.file_type());
    assert_eq!(
        err.map_err(|e| e.kind()),
        Err(ErrorKind::NotFound),
        "/{rel} should be absent"
    );
}

fn assert_file(m: &Path, rel: &str, content: &str, mode: u32) {
    let meta = lstat(m, rel);
    assert!(
        meta.file_type().is_file(),
        "/{rel} is a regular file: {meta:?}"
    );
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        mode,
        "/{rel} mode {:o}",
        meta.permissions().mode()
    );
    assert_eq!(fs::read_to_string(m.join(rel)).unwrap(), content, "/{rel}");
}

fn assert_dir(m: &Path, rel: &str, mode: u32, owner: (u32, u32)) {
    let meta = lstat(m, rel);
    assert!(meta.is_dir(), "/{rel} is a directory: {meta:?}");
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        mode,
        "/{rel} mode {:o}",
        meta.permissions().mode()
    );
    assert_owner(m, rel, owner);
}

fn assert_owner(m: &Path, rel: &str, owner: (u32, u32)) {
    let meta = lstat(m, rel);
    assert_eq!((meta.uid(), meta.gid()), owner, "/{rel} owner");
}

/// Every entry below `dir` (not `dir` itself), without following symlinks.
fn walk(dir: &Path) -> Vec<(PathBuf, Metadata)> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                todo.push(path.clone());
            }
            out.push((path, meta));
        }
    }
    out
}
