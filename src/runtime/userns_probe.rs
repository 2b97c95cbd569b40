//! Whether this host can run pods with their own user namespace: a new user namespace can be
//! created and given a mapping, and an overlay of an id-mapped layer on the filesystem of
//! berth's root directory can be mounted (what a container rootfs in such a pod needs); and
//! whether such a namespace can bind the host's `/sys` read-only (what a host-network pod in it
//! needs). Probed once at start; `Status` advertises `user_namespaces` and
//! `user_namespaces_host_network` from the results.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::snapshot::mount::{Overlay, mount_overlay_idmapped, unmount_path};
use crate::spec::IdMap;

static SUPPORTED: OnceLock<bool> = OnceLock::new();
static HOST_NETWORK: OnceLock<bool> = OnceLock::new();

/// Whether a host-network pod can have its own user namespace: user namespaces work and a new
/// one could bind the host's `/sys` read-only (the executor's way, as a pod's user namespace may
/// not mount a sysfs of the host's network namespace). False when the probe never ran.
pub fn user_namespaces_host_network_supported() -> bool {
    HOST_NETWORK.get().copied().unwrap_or(false)
}

/// The result of [`probe`]; false when it never ran.
pub fn user_namespaces_supported() -> bool {
    SUPPORTED.get().copied().unwrap_or(false)
}

/// Runs the probe once (later calls return the first result). `shim` is the `berth-shim` binary,
/// whose `pause` command holds the probe's namespace; `root_dir` is where rootfs layers live.
///
/// A container in a user namespace reaches its rootfs (under `state_dir`) and its pod's files
/// (under `root_dir`) as an unprivileged host id, so both must be traversable by others: berth
/// adds `g+x,o+x` to the two directories themselves (never `r`, so nothing is listed) and the
/// probe fails when an ancestor is not searchable, naming it.
pub fn probe(shim: &Path, root_dir: &Path, state_dir: &Path) -> bool {
    let supported = *SUPPORTED.get_or_init(|| {
        match traversable(&[root_dir, state_dir]).and_then(|()| try_probe(shim, root_dir)) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("user namespaces for pods are not available: {e}");
                false
            }
        }
    });
    HOST_NETWORK.get_or_init(|| {
        supported
            && probe_host_sys(shim, root_dir)
                .inspect_err(|e| {
                    tracing::warn!("host-network pods with a user namespace are not available: {e}")
                })
                .is_ok()
    });
    supported
}

/// Binds the host's `/sys` read-only in a new user and mount namespace, then runs
/// `berth-shim --help` there (which only proves the binding step succeeded).
fn probe_host_sys(shim: &Path, root_dir: &Path) -> Result<(), String> {
    let dir = root_dir.join("userns-sys-probe");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut cmd = Command::new(shim);
    cmd.arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let status = crate::sys::userns::spawn_with_host_sys_bound(&mut cmd, &dir)
        .and_then(|mut child| child.wait())
        .map_err(|e| format!("bind the host's /sys read-only in a new user namespace: {e}"));
    let _ = std::fs::remove_dir(&dir);
    match status? {
        s if s.success() => Ok(()),
        s => Err(format!("{} --help in the probe: {s}", shim.display())),
    }
}

fn traversable(dirs: &[&Path]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for dir in dirs {
        let meta = std::fs::metadata(dir).map_err(|e| format!("stat {}: {e}", dir.display()))?;
        let mode = meta.permissions().mode();
        if mode & 0o011 != 0o011 {
            let perms = std::fs::Permissions::from_mode(mode | 0o011);
            std::fs::set_permissions(dir, perms)
                .map_err(|e| format!("chmod g+x,o+x {}: {e}", dir.display()))?;
        }
        for ancestor in dir.ancestors().skip(1) {
            let meta = std::fs::metadata(ancestor)
                .map_err(|e| format!("stat {}: {e}", ancestor.display()))?;
            if meta.permissions().mode() & 0o001 == 0 {
                return Err(format!(
                    "{} (above {}) is not searchable by others (o+x): containers in a user namespace could not reach their root filesystem",
                    ancestor.display(),
                    dir.display()
                ));
            }
        }
    }
    Ok(())
}

fn try_probe(shim: &Path, root_dir: &Path) -> Result<(), String> {
    // `pause` lives until its stdin (a pipe held here) hangs up.
    let mut cmd = Command::new(shim);
    cmd.arg("pause")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = crate::sys::userns::spawn_in_new_userns(&mut cmd)
        .map_err(|e| format!("start {} in a new user namespace: {e}", shim.display()))?;
    let result = check(child.id(), root_dir);
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn check(pid: u32, root_dir: &Path) -> Result<(), String> {
    let map = IdMap {
        container: 0,
        host: 1 << 20,
        size: 65536,
    };
    for file in ["uid_map", "gid_map"] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, map.proc_line()).map_err(|e| format!("write {path}: {e}"))?;
    }
    let dir = root_dir.join("userns-probe");
    let _ = std::fs::remove_dir_all(&dir);
    super::dirs::private_dir(&dir, None).map_err(|e| e.to_string())?;
    let (lower, upper, work, merged) = (
        dir.join("lower"),
        dir.join("upper"),
        dir.join("work"),
        dir.join("merged"),
    );
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
    }
    std::fs::write(lower.join("file"), b"").map_err(|e| format!("write probe file: {e}"))?;
    let overlay = Overlay {
        lowers: vec![lower],
        upper,
        work,
        volatile: true,
    };
    let userns = Path::new(&format!("/proc/{pid}/ns/user")).to_path_buf();
    let mounted = mount_overlay_idmapped(
        &overlay,
        &merged,
        &userns,
        &dir.join("idmapped"),
        (map.host, map.host),
    );
    let owner = mounted.as_ref().ok().map(|()| {
        std::fs::metadata(merged.join("file")).map(|m| std::os::unix::fs::MetadataExt::uid(&m))
    });
    let _ = unmount_path(&merged);
    let _ = std::fs::remove_dir_all(&dir);
    mounted.map_err(|e| e.to_string())?;
    match owner {
        Some(Ok(uid)) if uid == map.host => Ok(()),
        Some(Ok(uid)) => Err(format!(
            "an id-mapped layer showed uid {uid}, not {}",
            map.host
        )),
        Some(Err(e)) => Err(format!("stat the probe file: {e}")),
        None => Err("the id-mapped overlay was not mounted".into()),
    }
}
