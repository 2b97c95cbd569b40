//! Whether a configured OCI runtime can run containers on this host, found out by running one:
//! `/bin/sh -c true` from the host's `/usr` (and `/bin`, `/lib`, ... as the host has them) bound
//! read-only into an empty rootfs, in new mount and PID namespaces and a cgroup of its own
//! (cgroupfs path form, or `system.slice:berth:<name>` with `--systemd-cgroup`, as berth's
//! containers get). The OCI version the runtime implements (the `spec:` line of its `--version`)
//! is what berth writes into its bundles' `ociVersion` when it is older than berth's own: crun
//! 1.8 refuses a 1.2.0 `ociVersion` while running a 1.2 spec's 1.0 subset fine.
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
    /// The OCI runtime spec version it implements (`major.minor.patch`), when it says.
    pub spec_version: Option<(u32, u32, u32)>,
}

impl Features {
    /// The `ociVersion` a bundle for this runtime carries: berth's `own` (`1.2.0`), or the
    /// runtime's when that is older.
    pub fn oci_version(&self, own: &str) -> String {
        match (self.spec_version, parse_version(own)) {
            (Some(theirs), Some(ours)) if theirs < ours => {
                format!("{}.{}.{}", theirs.0, theirs.1, theirs.2)
            }
            _ => own.to_string(),
        }
    }
}

/// `1.0.2` (or `1.0.2-dev`) as numbers.
fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.trim();
    let v = v.split(['-', '+', ' ']).next()?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// The `spec: 1.0.0` line of `runc --version` / `crun --version`.
fn spec_line(output: &str) -> Option<(u32, u32, u32)> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("spec:"))
        .and_then(parse_version)
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
    let cgroup = match runtime.systemd_cgroup {
        true => format!("system.slice:berth:probe-{name}-{}", std::process::id()),
        false => format!("/berth/probe-{name}-{}", std::process::id()),
    };
    let result = run_probe(runtime, &id, &cgroup, scratch);
    let _ = runtime.delete(&id);
    if !runtime.systemd_cgroup {
        remove_cgroup(&cgroup);
    }
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
    let mut command = Command::new(&runtime.path);
    command.arg("--root").arg(&runtime.root);
    if runtime.systemd_cgroup {
        command.arg("--systemd-cgroup");
    }
    let mut child = command
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

/// The runtime's `features` (runc ≥ 1.1): which mount options it knows; and the spec version its
/// `--version` names.
fn features(runtime: &OciRuntime) -> Features {
    let version = Command::new(&runtime.path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| spec_line(&String::from_utf8_lossy(&o.stdout)));
    Features {
        spec_version: version,
        ..mount_features(runtime)
    }
}

fn mount_features(runtime: &OciRuntime) -> Features {
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
        spec_version: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_line_of_version_output_is_read() {
        let crun =
            "crun version 1.8.1\ncommit: abc\nrundir: /run/crun\nspec: 1.0.0\n+SYSTEMD +SELINUX\n";
        assert_eq!(spec_line(crun), Some((1, 0, 0)));
        let runc = "runc version 1.1.5\ncommit: v1.1.5\nspec: 1.0.2-dev\ngo: go1.19\n";
        assert_eq!(spec_line(runc), Some((1, 0, 2)));
        assert_eq!(spec_line("something 2.0\n"), None);
    }

    #[test]
    fn bundles_carry_the_older_of_the_two_versions() {
        let with = |v| Features {
            spec_version: v,
            ..Features::default()
        };
        assert_eq!(with(Some((1, 0, 0))).oci_version("1.2.0"), "1.0.0");
        assert_eq!(with(Some((1, 2, 1))).oci_version("1.2.0"), "1.2.0");
        assert_eq!(with(None).oci_version("1.2.0"), "1.2.0");
    }
}
