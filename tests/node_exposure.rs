//! A local unprivileged user on the node (`nobody`) cannot read what berth keeps (the metadata
//! database with every container's environment, the OCI specs, logs), cannot list the pulled
//! layers, and cannot run a setuid-root binary that an image or a container put on disk (the class
//! of containerd's CVE-2021-41103 and CVE-2024-25621). A walk of berthd's root and state
//! directories with a pod, a container, a pulled image and logs present finds nothing open to
//! others beyond a commented allow-list. Root; local registry; `setpriv`, `python3`.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::node_image::push_node_image;
use common::pods::*;

/// Runs `args` as uid and gid 65534 with no supplementary groups and no capabilities. setpriv
/// itself still holds root's capabilities when it calls `execve` (so its path lookup would ignore
/// directory modes): a shell it starts, which holds none, runs `args`.
fn as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["sh", "-c", "exec \"$0\" \"$@\""])
        .args(args)
        .output()
        .expect("run setpriv (util-linux)")
}

/// A fixture with a running container of the node image that has planted a setuid-root binary
/// in its writable layer (`/tmp/suid`), and whose log has a line.
async fn running(name: &str) -> (Fixture, String) {
    let image = push_node_image();
    let mut f = fixture(name, "library/busybox:latest").await;
    pull(&mut f.cri, &image).await;
    let script = "cp /bin/id-suid /tmp/suid && chmod 4755 /tmp/suid && echo planted && sleep 1000";
    let config = container_config(name, &image, &["sh", "-c", script]);
    let id = start_container(&mut f.cri, &f.pod, config).await;
    let log = f.daemon.dir.path().join(format!("logs/{name}/0.log"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("planted")) {
        assert!(std::time::Instant::now() < deadline, "{name} did not start");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (f, id)
}

#[tokio::test]
async fn a_local_user_cannot_read_berths_files_or_run_its_setuid_binaries() {
    let (mut f, id) = running("exposure").await;
    let dir = f.daemon.dir.path().to_path_buf();
    let (root, state) = (dir.join("root"), dir.join("state"));

    // The setuid copies the attack would run: one in a pulled layer, one in the container's
    // writable layer, and the image's own seen through the container's mounted rootfs.
    let layer_suid = std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("bin/id-suid"))
        .find(|p| p.exists())
        .expect("a snapshot holds bin/id-suid");
    let mut escapes = Vec::new();
    let targets: Vec<PathBuf> = vec![
        layer_suid,
        root.join(format!("containers/{id}/upper/tmp/suid")),
        state.join(format!("containers/{id}/rootfs/bin/id-suid")),
    ];
    for t in &targets {
        // As root the file is there and setuid-root: the attack is real.
        let meta = std::fs::metadata(t).unwrap_or_else(|e| panic!("{}: {e}", t.display()));
        assert_eq!(
            (meta.uid(), meta.mode() & 0o4000),
            (0, 0o4000),
            "{}",
            t.display()
        );
        let out = as_nobody(&[t.to_str().unwrap(), "-u"]);
        let euid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() || !euid.is_empty() {
            escapes.push(format!("ran {} and got euid {euid:?}", t.display()));
        }
    }
    // Sanity of the helper: nobody can run a binary it may run.
    let out = as_nobody(&["/usr/bin/id", "-u"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "65534");

    let log = dir.join("logs/exposure/0.log");
    let reads = [
        root.join("meta.redb"),
        state.join(format!("containers/{id}/config.json")),
        log.clone(),
        state.join(format!("pods/{}/shim.log", f.pod.id)),
    ];
    for file in &reads {
        assert!(file.exists(), "{}", file.display());
        let out = as_nobody(&["cat", file.to_str().unwrap()]);
        if out.status.success() || !out.stdout.is_empty() {
            escapes.push(format!("read {}", file.display()));
        }
    }
    for listing in [root.join("snapshots"), root.join("content"), root.clone()] {
        let out = as_nobody(&["ls", listing.to_str().unwrap()]);
        if out.status.success() || !out.stdout.is_empty() {
            escapes.push(format!("listed {}", listing.display()));
        }
    }
    assert!(escapes.is_empty(), "nobody:\n{}", escapes.join("\n"));
    // Container logs are 0640 as under containerd: kubelet and root read them.
    assert_eq!(std::fs::metadata(&log).unwrap().mode() & 0o777, 0o640);
    remove_pod(&mut f.cri, &f.pod.id).await;
}

/// Paths (relative to the test dir, with ids as `<pod>`, `<ctr>`, `<n>`) whose own permission
/// bits may give others something, and why.
const OPEN_TO_OTHERS: &[(&str, &str)] = &[
    // Searchable (0711), never listable: containers of a user-namespace pod reach their rootfs
    // and pod files below these as an unprivileged host id.
    ("root", "0711"),
    ("state", "0711"),
    ("root/pods", "0711"),
    ("state/pods", "0711"),
    ("state/containers", "0711"),
];

/// Paths that may be group-writable: the CRI socket (0660 root:root, as containerd's).
const GROUP_WRITABLE: &[&str] = &["state/berth.sock"];

/// Where the walk does not descend: the contents belong to an image or a container (a layer's
/// `/tmp` is 1777), or to another filesystem mounted there (the rootfs overlay, the pod's shm
/// tmpfs 1777, namespace pins). Only whether others can reach them is checked.
fn is_foreign(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    matches!(
        parts.as_slice(),
        ["root", "snapshots", _]
            | ["root", "containers", _, "upper" | "work"]
            | ["state", "containers", _, "rootfs"]
            | ["state", "pods", _, "shm" | "ns"]
    )
}

#[tokio::test]
async fn nothing_under_berths_dirs_is_open_to_others_beyond_the_allow_list() {
    let (mut f, id) = running("walk").await;
    let dir = f.daemon.dir.path().to_path_buf();
    let ids = [(f.pod.id.clone(), "<pod>"), (id.clone(), "<ctr>")];
    let mut problems = Vec::new();
    let mut seen = 0;
    for top in ["root", "state"] {
        walk(&dir, &dir.join(top), true, &ids, &mut problems, &mut seen);
    }
    assert!(seen > 40, "walked only {seen} paths");
    assert!(
        problems.is_empty(),
        "open to others:\n{}",
        problems.join("\n")
    );
    remove_pod(&mut f.cri, &f.pod.id).await;
}

/// Checks `path` and below; `reachable`: every directory above it is searchable by others.
fn walk(
    base: &Path,
    path: &Path,
    reachable: bool,
    ids: &[(String, &str)],
    problems: &mut Vec<String>,
    seen: &mut usize,
) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.file_type().is_symlink() {
        return;
    }
    *seen += 1;
    let mut rel = path.strip_prefix(base).unwrap().display().to_string();
    for (id, name) in ids {
        rel = rel.replace(id.as_str(), name);
    }
    if rel.starts_with("root/snapshots/") || rel.starts_with("root/content/blobs/sha256/") {
        let (head, _) = rel.rsplit_once('/').unwrap();
        rel = format!("{head}/<n>");
    }
    let mode = meta.permissions().mode() & 0o7777;
    let allowed = OPEN_TO_OTHERS.iter().find(|(p, _)| *p == rel);
    let foreign = is_foreign(&rel);
    let writable =
        mode & 0o022 != 0 && !GROUP_WRITABLE.contains(&rel.as_str()) || mode & 0o002 != 0;
    if writable && !foreign {
        problems.push(format!("{rel} {mode:04o}: writable by group or others"));
    }
    if reachable && mode & 0o007 != 0 {
        match allowed {
            Some((_, want)) if format!("{mode:04o}") == *want => {}
            _ => problems.push(format!("{rel} {mode:04o}: reachable and open to others")),
        }
    }
    if meta.is_dir() && !foreign {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for entry in entries {
            let below = reachable && mode & 0o001 != 0;
            walk(base, &entry, below, ids, problems, seen);
        }
    }
}
