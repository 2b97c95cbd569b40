//! The import boundaries between berthd and its shims, checked on the sources: the shim process
//! (`src/shim/`) imports neither the runtime, the daemon's side of the shim nor anything else only
//! berthd runs; the protocol (`src/shimapi/`) imports none of them either; the runtime reaches
//! shims only through `crate::shimclient`. (The compiler checks part of it too: everything in
//! `crate::shim` but the binary's entry points is private, so nothing can use its internals.)

use std::path::Path;

/// Paths the shim process and the protocol must not name.
const DAEMON_ONLY: &[&str] = &[
    "crate::runtime",
    "crate::shimclient",
    "crate::server",
    "crate::cri",
    "crate::image",
    "crate::network",
    "crate::store",
    "crate::streaming",
    "crate::admin",
];

/// Every `(file, forbidden path)` pair found under `dir`.
fn violations(dir: &Path, forbidden: &[&str]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            found.extend(violations(&path, forbidden));
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        // Comments may name the other side (documentation links); code may not.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for needle in forbidden {
            if code.contains(needle) {
                found.push((path.display().to_string(), needle.to_string()));
            }
        }
    }
    found
}

fn src(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir)
}

#[test]
fn the_shim_process_does_not_import_berthd() {
    // This file names the forbidden paths itself; it is the one exception.
    let found: Vec<_> = violations(&src("shim"), DAEMON_ONLY)
        .into_iter()
        .filter(|(file, _)| !file.ends_with("boundaries.rs"))
        .collect();
    assert!(
        found.is_empty(),
        "the shim process imports berthd's side: {found:?}"
    );
}

#[test]
fn the_protocol_imports_neither_side() {
    let mut forbidden = DAEMON_ONLY.to_vec();
    forbidden.push("crate::shim::");
    let found = violations(&src("shimapi"), &forbidden);
    assert!(
        found.is_empty(),
        "the shim protocol imports a side: {found:?}"
    );
}

#[test]
fn the_runtime_reaches_shims_only_through_the_client() {
    let found = violations(&src("runtime"), &["crate::shim::", "crate::shimapi"]);
    assert!(
        found.is_empty(),
        "the runtime bypasses crate::shimclient: {found:?}"
    );
}

#[test]
fn the_check_finds_a_forbidden_import() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("x.rs"), "use crate::runtime::Runtime;\n").expect("write");
    assert_eq!(
        violations(dir.path(), DAEMON_ONLY),
        vec![(
            dir.path().join("x.rs").display().to_string(),
            "crate::runtime".to_string()
        )]
    );
}
