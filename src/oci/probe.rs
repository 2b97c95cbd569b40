//! Whether a configured OCI runtime can run containers on this host, found out by running one:
//! `/bin/sh -c true` from the host's `/usr` (and `/bin`, `/lib`, ... as the host has them) bound
//! read-only into an empty rootfs, in new mount and PID namespaces and a cgroup of its own
//! (cgroupfs path form, as berth's containers get).
//! `crun`, for one, refuses a hybrid cgroup v1/v2 host whose unified hierarchy has controllers;
//! the probe reports the runtime's own words. It also reads the runtime's `features` (when it
//! has that command) for the handler features berth advertises.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::OciRuntime;

/// How long a probe container may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// What a working runtime offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// It knows the `rro` mount option (recursive read-only, which also needs Linux 5.12).
    pub recursive_read_only_mounts: bool,
}

/// Runs a probe container named `berth-probe-<name>` with `runtime`, using `scratch` (created,
/// then removed) as its bundle. `Err` says why the runtime cannot run containers here.
pub fn check(runtime: &OciRuntime, name: &str, scratch: &Path) -> Result<Features, String> {
    if !runtime.path.is_file() {
        return Err(format!("{} does not exist", runtime.path.display()));
    }
    std::fs::create_dir_all(scratch).map_err(|e| format!("create {}: {e}", scratch.display()))?;
    let id = format!("berth-probe-{name}");
    // berthd's pid in the name: test daemons run side by side.
    let cgroup = format!("/berth/probe-{name}-{}", std::process::id());
    let result = run_probe(runtime, &id, &cgroup, scratch);
    let _ = runtime.delete(&id);
    remove_cgroup(&cgroup);
    let _ = std::fs::remove_dir_all(scratch);
    result.map(|()| features(runtime))
}

fn run_probe(runtime: &OciRuntime, id: &str, cgroup: &str, bundle: &Path) -> Result<(), String> {
    let rootfs = bundle.join("rootfs");
    let mut mounts = vec![serde_json::json!({
        "destination": "/proc", "type": "proc", "source": "proc",
    })];
    // The mount points the runtime mounts on in a read-only root: crun (unlike runc) does not
    // create /dev and fails with "open /dev directory in <rootfs>".
    for dir in ["dev", "proc"] {
        let path = rootfs.join(dir);
        std::fs::create_dir_all(&path).map_err(|e| format!("create {}: {e}", path.display()))?;
    }
    for dir in ["usr", "bin", "sbin", "lib", "lib32", "lib64"] {
        let host = Path::new("/").join(dir);
        match std::fs::read_link(&host) {
            // merged /usr: the same symlink in the rootfs
            Ok(target) => std::os::unix::fs::symlink(&target, rootfs.join(dir))
                .map_err(|e| format!("link {dir} in {}: {e}", rootfs.display()))?,
            Err(_) if host.is_dir() => mounts.push(serde_json::json!({
                "destination": host, "type": "bind", "source": host,
                "options": ["rbind", "ro"],
            })),
            Err(_) => {}
        }
    }
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "root": { "path": rootfs, "readonly": true },
        "process": {
            "args": ["/bin/sh", "-c", "true"],
            "cwd": "/",
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "user": { "uid": 0, "gid": 0 },
        },
        "mounts": mounts,
        "linux": {
            "namespaces": [{ "type": "mount" }, { "type": "pid" }],
            "cgroupsPath": cgroup,
            "rootfsPropagation": "rslave",
        },
    });
    let file = bundle.join("config.json");
    std::fs::write(&file, config.to_string())
        .map_err(|e| format!("write {}: {e}", file.display()))?;
    let mut child = Command::new(&runtime.path)
        .arg("--root")
        .arg(&runtime.root)
        .arg("run")
        .arg("--bundle")
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {}: {e}", runtime.path.display()))?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "a probe container did not finish in {} s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("wait for {}: {e}", runtime.path.display())),
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("wait for {}: {e}", runtime.path.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = super::last_error_line(&stderr).unwrap_or_else(|| output.status.to_string());
    Err(format!("a probe container failed: {message}"))
}

/// Removes what is left of the probe's cgroup in every hierarchy (a runtime that failed half
/// way may leave it).
fn remove_cgroup(cgroup: &str) {
    let rel = cgroup.trim_start_matches('/');
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(rel));
    for entry in entries.flatten() {
        let _ = std::fs::remove_dir(entry.path().join(rel));
    }
}

/// The runtime's `features` (runc ≥ 1.1): which mount options it knows.
fn features(runtime: &OciRuntime) -> Features {
    let output = Command::new(&runtime.path)
        .arg("features")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let Some(output) = output.ok().filter(|o| o.status.success()) else {
        return Features::default();
    };
    let parsed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let knows = |option: &str| {
        parsed["mountOptions"]
            .as_array()
            .is_some_and(|all| all.iter().any(|o| o == option))
    };
    Features {
        recursive_read_only_mounts: knows("rro"),
    }
}
