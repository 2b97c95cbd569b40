//! Unpacked layers mounted as real overlayfs lower dirs: the converted whiteouts and opaque
//! markers must hide what the layers below hold. Needs root; a failed mount fails the test.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::testtar::{E, names, tar};
use super::{Limits, unpack_layer};

/// Unmounts on drop, so a failed assertion leaves no mount behind.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = umount2(&self.0, MntFlags::MNT_DETACH) {
            eprintln!("unmount {:?}: {e}", self.0);
        }
    }
}

fn unpack(entries: &[E], dest: &Path) {
    fs::create_dir(dest).unwrap();
    unpack_layer(&tar(entries)[..], dest, &Limits::bytes(1 << 20)).unwrap();
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let (lower, upper, merged) = (
        tmp.path().join("l1"),
        tmp.path().join("l2"),
        tmp.path().join("m"),
    );
    unpack(
        &[
            E::file("etc/keep", b"keep"),
            E::file("etc/gone", b"gone"),
            E::file("data/old-a", b"a"),
            E::file("data/old-b", b"b"),
            E::file("data/sub/old-c", b"c"),
        ],
        &lower,
    );
    unpack(
        &[
            E::file("etc/.wh.gone", b""),
            E::file("data/.wh..wh..opq", b""),
            E::file("data/new", b"new"),
        ],
        &upper,
    );
    fs::create_dir(&merged).unwrap();
    let options = format!("lowerdir={}:{}", upper.display(), lower.display());
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(options.as_str()),
    )
    .unwrap_or_else(|e| panic!("mount overlay ({options}): {e}"));
    let _mounted = Mounted(merged.clone());

    assert_eq!(
        names(&merged.join("etc")),
        ["keep"],
        "the whiteout hides etc/gone"
    );
    assert_eq!(fs::read(merged.join("etc/keep")).unwrap(), b"keep");
    assert!(!merged.join("etc/gone").exists());
    assert_eq!(
        names(&merged.join("data")),
        ["new"],
        "the opaque dir hides the lower data/"
    );
    assert_eq!(fs::read(merged.join("data/new")).unwrap(), b"new");
}
