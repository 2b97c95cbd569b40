//! `berth build` writes only inside the step's own upper directory: when one COPY/ADD source
//! leaves a symlink to a host directory in the destination and a later source of the same
//! instruction has a directory of that name, the image gets the directory and the host
//! directory is not written, chowned or chmodded. Needs root, berthd and the local registry.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use common::build::{build, daemon, run};

/// A tar archive with `entries` (path, symlink target or file text, is a symlink).
fn tar(path: &Path, entries: &[(&str, &str, bool)]) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, value, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        if *link {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, name, value).unwrap();
        } else if value.is_empty() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, name, &[][..]).unwrap();
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(value.len() as u64);
            b.append_data(&mut h, name, value.as_bytes()).unwrap();
        }
    }
    fs::write(path, b.into_inner().unwrap()).unwrap();
}

#[tokio::test]
async fn copy_and_add_sources_never_write_through_a_symlink_another_source_left() {
    let (d, base) = daemon();
    // The host directory the planted symlinks point at: outside every build scratch dir.
    let host = tempfile::tempdir().unwrap();
    let target = host.path().join("target");
    fs::create_dir(&target).unwrap();
    std::os::unix::fs::chown(&target, Some(4321), Some(4321)).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o700)).unwrap();
    let t = target.display().to_string();

    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    for dir in ["a", "b/x", "d1", "d2/x"] {
        fs::create_dir_all(c.join(dir)).unwrap();
    }
    symlink(&target, c.join("a/x")).unwrap();
    symlink(&target, c.join("d1/x")).unwrap();
    fs::write(c.join("b/x/passwd-test"), "pwned\n").unwrap();
    fs::write(c.join("d2/x/passwd-test"), "pwned\n").unwrap();
    tar(&c.join("one.tar"), &[("x", &t, true)]);
    tar(
        &c.join("two.tar"),
        &[("x/", "", false), ("x/passwd-test", "pwned\n", false)],
    );

    let cases = [
        (
            "stage",
            format!(
                "FROM {base}\nRUN mkdir -p /a /b/x && ln -s {t} /a/x && printf 'pwned\\n' >/b/x/passwd-test\n\
                 FROM {base}\nCOPY --from=0 /a /b /dst/\n"
            ),
        ),
        ("context", format!("FROM {base}\nCOPY a b /dst/\n")),
        ("glob", format!("FROM {base}\nCOPY d* /dst/\n")),
        ("add", format!("FROM {base}\nADD one.tar two.tar /dst/\n")),
    ];
    for (name, dockerfile) in cases {
        fs::write(c.join("Dockerfile"), dockerfile).unwrap();
        let tag = format!("berth.test/escape-{name}:v1");
        let result = build(&d, c, &[&tag], &[], "").await;
        let written: Vec<_> = fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(written.is_empty(), "{name}: host dir written: {written:?}");
        let meta = fs::metadata(&target).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (4321, 4321, 0o700),
            "{name}: host dir chowned or chmodded"
        );
        result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        // As Docker builds it: the later directory replaces the symlink in the image.
        let out = run(
            &d,
            &tag,
            "test -d /dst/x && test ! -L /dst/x && cat /dst/x/passwd-test",
        )
        .await;
        assert_eq!(out.trim(), "pwned", "{name}");
    }
}
