//! Unpacks arbitrary bytes as an image layer (a tar stream, gzip-compressed when it starts with
//! the gzip magic) into a fresh directory `root`, and checks after every input that nothing was
//! written outside it: the sibling `canary` directory and its file are untouched, and so is
//! `/tmp/berth-fuzz-canary` (a fixed path, which the seeds' absolute symlinks aim at), the
//! parent holds nothing new, and no hard link inside `root` shares an inode with a file outside.
//! Symlinks are layer data, stored verbatim (a container resolves them in its own root), so their
//! targets may name anything; what matters is that the unpacker never wrote through one.
#![no_main]

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use berth::image::unpack::{Limits, unpack_layer};
use libfuzzer_sys::fuzz_target;

const CANARY: &[u8] = b"nothing may write here\n";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// Shared by every run (it is only read), so that its path can be in the seeds.
const FIXED_CANARY: &str = "/tmp/berth-fuzz-canary";

/// `$TMPDIR/berth-fuzz-unpack-<pid>`: `root` (emptied per input) beside `canary/file`.
fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("berth-fuzz-unpack-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        make_canary(&base.join("canary"));
        if !Path::new(FIXED_CANARY).exists() {
            // Made aside and renamed into place, so that a run starting beside this one never
            // sees it half made.
            let aside = PathBuf::from(format!("{FIXED_CANARY}.{}", std::process::id()));
            make_canary(&aside);
            if fs::rename(&aside, FIXED_CANARY).is_err() {
                fs::remove_dir_all(&aside).expect("remove the spare canary");
            }
        }
        base
    })
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    let root = base.join("root");
    fs::create_dir(&root).expect("create the unpack dir");
    let limits = Limits::bytes(4 << 20);
    let _ = if data.starts_with(GZIP_MAGIC) {
        unpack_layer(flate2::read::MultiGzDecoder::new(data), &root, &limits)
    } else {
        unpack_layer(data, &root, &limits)
    };
    check_nothing_escaped(base, &root);
    remove(&root);
});

fn make_canary(dir: &Path) {
    fs::create_dir_all(dir).expect("create a canary dir");
    fs::write(dir.join("file"), CANARY).expect("write a canary file");
    fs::set_permissions(dir.join("file"), fs::Permissions::from_mode(0o644))
        .expect("chmod a canary file");
}

fn check_canary(dir: &Path) {
    assert_eq!(names(dir), ["file"], "{dir:?} changed");
    let canary = dir.join("file");
    let meta = fs::symlink_metadata(&canary).expect("the canary file is there");
    assert!(meta.file_type().is_file(), "{canary:?} was replaced");
    assert_eq!(meta.nlink(), 1, "a hard link to {canary:?} was made");
    assert_eq!(
        meta.mode() & 0o7777,
        0o644,
        "the mode of {canary:?} changed"
    );
    let mut content = vec![];
    fs::File::open(&canary)
        .and_then(|mut f| f.read_to_end(&mut content))
        .expect("read the canary file");
    assert_eq!(content, CANARY, "{canary:?} was written");
}

fn check_nothing_escaped(base: &Path, root: &Path) {
    assert_eq!(
        names(base),
        ["canary", "root"],
        "a new entry beside the unpack dir"
    );
    check_canary(&base.join("canary"));
    check_canary(Path::new(FIXED_CANARY));

    // Every inode with several links inside root has all of them inside root.
    let dev = fs::metadata(root).expect("stat the unpack dir").dev();
    let mut links: HashMap<(u64, u64), (u64, u64)> = HashMap::new();
    walk(root, &mut |path, meta| {
        assert_eq!(meta.dev(), dev, "{path:?} is on another filesystem");
        if !meta.is_dir() && meta.nlink() > 1 {
            links
                .entry((meta.dev(), meta.ino()))
                .or_insert((meta.nlink(), 0))
                .1 += 1;
        }
    });
    for ((_, ino), (nlink, seen)) in links {
        assert_eq!(
            nlink, seen,
            "inode {ino} has {nlink} links, {seen} of them in the layer"
        );
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list a dir")
        .map(|e| {
            e.expect("a dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Visits everything beneath `dir` without following symlinks, making each dir readable
/// first (a layer may leave a dir mode 000, which stops a non-root fuzzer from listing it).
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path, &fs::Metadata)) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    for entry in fs::read_dir(dir).expect("list a dir") {
        let path = entry.expect("a dir entry").path();
        let meta = fs::symlink_metadata(&path).expect("stat an entry");
        visit(&path, &meta);
        if meta.is_dir() {
            walk(&path, visit);
        }
    }
}

/// Removes the unpack dir.
fn remove(root: &Path) {
    fs::remove_dir_all(root).expect("remove the unpack dir");
}
