//! Scanning spec directories: priorities, conflicts, reloads, hostile files.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn name(text: &str) -> QualifiedName {
    QualifiedName::parse(text).unwrap()
}

fn spec(kind: &str, device: &str, env: &str) -> String {
    format!(
        "cdiVersion: \"0.6.0\"\nkind: {kind}\ndevices:\n  - name: {device}\n    containerEdits:\n      env: [\"{env}\"]\n"
    )
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn env_of(steps: &[Step]) -> Vec<String> {
    steps.iter().flat_map(|s| s.edits.env.clone()).collect()
}

struct Dirs {
    _tmp: tempfile::TempDir,
    etc: PathBuf,
    run: PathBuf,
    registry: Registry,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let etc = tmp.path().join("etc-cdi");
    let run = tmp.path().join("run-cdi");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&run).unwrap();
    let registry = Registry::new(vec![etc.clone(), run.clone()]);
    Dirs {
        _tmp: tmp,
        etc,
        run,
        registry,
    }
}

/// The tests write files as the user running them; the owner check wants root.
fn need_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the CDI registry tests need root: spec files must be owned by root"
    );
}

#[test]
fn devices_resolve_with_their_specs_common_edits_once() {
    need_root();
    let d = dirs();
    let text = "cdiVersion: \"0.6.0\"\nkind: vendor.com/gpu\ncontainerEdits:\n  env: [COMMON=1]\ndevices:\n  - name: a\n    containerEdits:\n      env: [A=1]\n  - name: b\n    containerEdits:\n      env: [B=1]\n";
    write(&d.etc.join("vendor.yaml"), text);
    let steps = d
        .registry
        .resolve(&[name("vendor.com/gpu=b"), name("vendor.com/gpu=a")])
        .unwrap();
    assert_eq!(env_of(&steps), ["COMMON=1", "B=1", "A=1"]);
    assert_eq!(steps[0].device, "vendor.com/gpu=b");
    assert!(d.registry.resolve(&[]).unwrap().is_empty());
}

#[test]
fn unknown_devices_name_the_device_and_the_ignored_files() {
    need_root();
    let d = dirs();
    write(&d.etc.join("good.yaml"), &spec("v.com/c", "a", "A=1"));
    write(&d.etc.join("broken.json"), "{not json");
    write(&d.etc.join("notes.txt"), "ignored: not a spec name");
    let err = d.registry.resolve(&[name("v.com/c=zzz")]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, CdiError::Unknown { .. }), "{text}");
    assert!(text.contains("v.com/c=zzz"), "{text}");
    assert!(text.contains("broken.json"), "{text}");
    assert!(!text.contains("notes.txt"), "{text}");
    assert_eq!(
        crate::error::Classify::kind(&err),
        crate::error::Kind::InvalidArgument
    );
}

#[test]
fn a_later_directory_overrides_and_one_directory_conflicts() {
    need_root();
    let d = dirs();
    write(&d.etc.join("a.yaml"), &spec("v.com/c", "x", "FROM=etc"));
    write(&d.run.join("a.yaml"), &spec("v.com/c", "x", "FROM=run"));
    let steps = d.registry.resolve(&[name("v.com/c=x")]).unwrap();
    assert_eq!(env_of(&steps), ["FROM=run"]);

    write(&d.run.join("b.yaml"), &spec("v.com/c", "x", "FROM=run-b"));
    let err = d.registry.resolve(&[name("v.com/c=x")]).unwrap_err();
    assert!(matches!(err, CdiError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains("b.yaml"), "{err}");
}

#[test]
fn specs_are_reloaded_when_they_change() {
    need_root();
    let d = dirs();
    assert!(d.registry.resolve(&[name("v.com/c=x")]).is_err());
    let path = d.run.join("late.yaml");
    write(&path, &spec("v.com/c", "x", "V=1"));
    assert_eq!(
        env_of(&d.registry.resolve(&[name("v.com/c=x")]).unwrap()),
        ["V=1"]
    );
    // Same size, new content: the stamp (mtime, ctime) still differs.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(&path, &spec("v.com/c", "x", "V=2"));
    assert_eq!(
        env_of(&d.registry.resolve(&[name("v.com/c=x")]).unwrap()),
        ["V=2"]
    );
    std::fs::remove_file(&path).unwrap();
    assert!(d.registry.resolve(&[name("v.com/c=x")]).is_err());
    assert!(d.registry.cache.lock().unwrap().is_empty());
}

#[test]
fn hostile_files_are_skipped() {
    need_root();
    let d = dirs();
    // Writable by others: anyone could plant devices or hooks.
    let open = d.etc.join("open.yaml");
    write(&open, &spec("v.com/c", "open", "A=1"));
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
    // Not owned by root.
    let owned = d.etc.join("owned.yaml");
    write(&owned, &spec("v.com/c", "owned", "A=1"));
    std::os::unix::fs::chown(&owned, Some(65534), None).unwrap();
    // Too large.
    let big = d.etc.join("big.yaml");
    let padding = format!("# {}\n", "x".repeat(MAX_FILE_BYTES as usize));
    write(&big, &(spec("v.com/c", "big", "A=1") + &padding));
    // A fifo named like a spec would block a plain read forever.
    let fifo = d.etc.join("fifo.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    // A directory named like a spec is not descended into.
    std::fs::create_dir(d.etc.join("dir.yaml")).unwrap();
    write(
        &d.etc.join("dir.yaml").join("inner.yaml"),
        &spec("v.com/c", "inner", "A=1"),
    );

    for (device, why) in [
        ("open", "writable by group or others"),
        ("owned", "not root"),
        ("big", "larger than"),
        ("fifo", "not a regular file"),
    ] {
        let err = d
            .registry
            .resolve(&[name(&format!("v.com/c={device}"))])
            .unwrap_err();
        assert!(err.to_string().contains(why), "{device}: {err}");
    }
    assert!(d.registry.resolve(&[name("v.com/c=inner")]).is_err());
}

#[test]
fn a_missing_directory_is_empty_and_a_host_node_problem_names_the_device() {
    need_root();
    let registry = Registry::new(vec![PathBuf::from("/nonexistent/cdi")]);
    let err = registry.resolve(&[name("v.com/c=a")]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cdi"), "{err}");

    let d = dirs();
    let text = "cdiVersion: \"0.5.0\"\nkind: v.com/c\ndevices:\n  - name: gone\n    containerEdits:\n      deviceNodes:\n        - path: /dev/gone\n          hostPath: /nonexistent/dev/gone\n";
    write(&d.etc.join("gone.yaml"), text);
    let err = d.registry.resolve(&[name("v.com/c=gone")]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("v.com/c=gone") && text.contains("/nonexistent/dev/gone"),
        "{text}"
    );
}
