//! What one test berthd has on the host, seen from outside: its shims (by `--dir`), the
//! processes in its pods' cgroup parent, mounts, pod and container dirs, cgroups, cached CNI
//! attachments. Crash tests compare it with what the CRI API lists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A snapshot of a test berthd's footprint. Ids are pod or container ids.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Footprint {
    /// Pod ids of running `berth-shim serve` processes whose `--dir` is under `state/pods`.
    pub shims: BTreeSet<String>,
    /// Container ids (the cgroup leaf) of processes in the cgroup parent.
    pub processes: BTreeSet<String>,
    /// Ids owning a mount under the test's dir (`state/pods/<id>/..`, `state/containers/<id>/..`),
    /// besides the shared pins dir itself; other mounts are listed by path.
    pub mounts: BTreeSet<String>,
    /// Ids of `state/pods/*` and `root/pods/*`.
    pub pod_dirs: BTreeSet<String>,
    /// Ids of `state/containers/*` and `root/containers/*`.
    pub container_dirs: BTreeSet<String>,
    /// Leaf cgroups (container ids) under the cgroup parent, in any hierarchy.
    pub cgroups: BTreeSet<String>,
    /// Pod ids with a cached CNI attachment (`root/network/<id>.json`).
    pub cni_cache: BTreeSet<String>,
}

impl Footprint {
    /// Reads the footprint of the berthd in `dir` whose pods use `cgroup_parent` (e.g.
    /// `/berth-chaos-42`; empty to skip cgroups and processes).
    pub fn read(dir: &Path, cgroup_parent: &str) -> Footprint {
        let state_pods = dir.join("state/pods");
        let mut f = Footprint::default();
        for (_, shim_dir) in shims() {
            if shim_dir.parent() == Some(state_pods.as_path()) {
                f.shims.insert(name(&shim_dir));
            }
        }
        for m in super::mounts_under(dir) {
            let path = PathBuf::from(&m);
            if path == state_pods {
                continue;
            }
            let owner = [
                "state/pods",
                "state/containers",
                "root/pods",
                "root/containers",
            ]
            .iter()
            .find_map(|base| {
                let rest = path.strip_prefix(dir.join(base)).ok()?;
                Some(
                    rest.components()
                        .next()?
                        .as_os_str()
                        .to_string_lossy()
                        .into_owned(),
                )
            });
            f.mounts.insert(owner.unwrap_or(m));
        }
        for base in ["state/pods", "root/pods"] {
            f.pod_dirs.extend(entries(&dir.join(base)));
        }
        for base in ["state/containers", "root/containers"] {
            f.container_dirs.extend(entries(&dir.join(base)));
        }
        f.cni_cache = entries(&dir.join("root/network"))
            .into_iter()
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .collect();
        if !cgroup_parent.is_empty() {
            for root in cgroup_roots() {
                f.cgroups.extend(
                    entries(&root.join(cgroup_parent.trim_start_matches('/')))
                        .into_iter()
                        .filter(|n| {
                            root.join(cgroup_parent.trim_start_matches('/'))
                                .join(n)
                                .is_dir()
                        }),
                );
            }
            f.processes = processes_in(cgroup_parent);
        }
        f
    }
}

/// Polls the footprint until `ok` holds (shims exit half a second after their Shutdown reply);
/// panics with the last one after 10 s.
pub async fn eventually(
    dir: &Path,
    cgroup_parent: &str,
    what: &str,
    ok: impl Fn(&Footprint) -> bool,
) -> Footprint {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let f = Footprint::read(dir, cgroup_parent);
        if ok(&f) {
            return f;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {f:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn name(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// Names in `dir` (none when it does not exist).
fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Every `berth-shim serve` on the host, with its `--dir`.
pub fn shims() -> Vec<(i32, PathBuf)> {
    let mut out = vec![];
    for pid in entries(Path::new("/proc"))
        .iter()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.len() < 2 || !args[0].ends_with("berth-shim") || args[1] != "serve" {
            continue;
        }
        if let Some(at) = args.iter().position(|a| a == "--dir") {
            out.push((pid, PathBuf::from(&args[at + 1])));
        }
    }
    out
}

/// The cgroup hierarchies' mount points (every v1 hierarchy, or the v2 root).
pub fn cgroup_roots() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .collect()
}

/// Container ids (the leaf under `parent`) of every process in a cgroup below `parent`.
fn processes_in(parent: &str) -> BTreeSet<String> {
    let prefix = format!("{}/", parent.trim_end_matches('/'));
    let mut out = BTreeSet::new();
    for pid in entries(Path::new("/proc"))
        .iter()
        .filter(|p| p.parse::<i32>().is_ok())
    {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            continue;
        };
        for line in text.lines() {
            let path = line.splitn(3, ':').nth(2).unwrap_or("");
            if let Some(rest) = path.strip_prefix(&prefix) {
                out.insert(rest.split('/').next().unwrap_or("").to_string());
            }
        }
    }
    out
}

/// A cgroup parent for a test's pods, `/<prefix>-<test pid>`; removed (once empty) when dropped,
/// after the test's `Daemon` when declared before it, also when the test fails.
pub struct CgroupParent(pub String);

impl CgroupParent {
    pub fn new(prefix: &str) -> CgroupParent {
        CgroupParent(format!("/{prefix}-{}", std::process::id()))
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        remove_cgroup_parent(&self.0);
    }
}

/// Removes the (empty) cgroup parent a test's pods used, in every hierarchy.
fn remove_cgroup_parent(parent: &str) {
    for root in cgroup_roots() {
        let dir = root.join(parent.trim_start_matches('/'));
        for leaf in entries(&dir) {
            let _ = std::fs::remove_dir(dir.join(leaf));
        }
        let _ = std::fs::remove_dir(&dir);
    }
}

/// Mounts a tmpfs of `size` (mount's `size=` option, e.g. "256m") at `at`, creating it.
pub fn mount_tmpfs(at: &Path, size: &str) {
    std::fs::create_dir_all(at).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "mount a tmpfs on {} (needs root)",
        at.display()
    );
}

/// Unmounts a tmpfs when dropped (declare it before the daemon using it, so it goes after).
pub struct Tmpfs(pub PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
