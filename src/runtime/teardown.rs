//! Host-level teardown of what a pod or container may have left behind when berthd was killed
//! while making it: shim processes found by their pod directory, every mount under a directory
//! (unmounted through `super::host`), directory trees. Each function is idempotent and touches
//! only what it is pointed at, which the callers take from berth's own records and directories.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::host::HostOps;
use super::{Result, RuntimeError};

/// How long killed shim processes may take to disappear.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Detaches every mount at or below `dir`, the latest first (stacked mounts included).
pub(super) fn unmount_under(host: &dyn HostOps, dir: &Path) -> Result<()> {
    for _ in 0..8 {
        let mounts = host.mounts_under(dir);
        if mounts.is_empty() {
            return Ok(());
        }
        for target in mounts.iter().rev() {
            host.unmount(target)
                .map_err(RuntimeError::io(format!("unmount {}", target.display())))?;
        }
    }
    match host.mounts_under(dir).first() {
        None => Ok(()),
        Some(left) => Err(RuntimeError::StaysMounted(left.clone())),
    }
}

/// `berth-shim serve` processes (the shim, its starting parent, its user-namespace helper)
/// whose `--dir` is `pod_dir`, or with `pod_dir` `None` any directory; with their dirs.
pub(super) fn shim_processes(pod_dir: Option<&Path>) -> Vec<(i32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, shim_dir(pid)?)))
        .filter(|(_, dir)| pod_dir.is_none_or(|p| p == dir))
        .collect()
}

/// The `--dir` of process `pid` when it is a `berth-shim serve`.
fn shim_dir(pid: i32) -> Option<PathBuf> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let binary = Path::new(std::str::from_utf8(args.first()?).ok()?);
    if binary.file_name()? != "berth-shim" || *args.get(1)? != b"serve" {
        return None;
    }
    let at = args.iter().position(|a| *a == b"--dir")?;
    let dir = std::str::from_utf8(args.get(at + 1)?).ok()?;
    Some(PathBuf::from(dir))
}

/// SIGKILLs every shim process serving `pod_dir` and its process group (which holds the pod's
/// pause process), until none is left. A shim still starting may fork once more: the scan
/// repeats until it comes back empty.
pub(super) async fn kill_shims(pod_dir: &Path) -> Result<()> {
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let pids = shim_processes(Some(pod_dir));
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(RuntimeError::Timeout {
                action: format!("kill the shim of {}", pod_dir.display()),
                seconds: KILL_WAIT.as_secs() as i64,
            });
        }
        for (pid, _) in pids {
            let pid = Pid::from_raw(pid);
            // The shim leads its own session and group (setsid); a parent still starting it
            // is in berthd's old group, which is not signalled.
            if nix::unistd::getpgid(Some(pid)) == Ok(pid) {
                let _ = killpg(pid, Signal::SIGKILL);
            }
            let _ = kill(pid, Signal::SIGKILL);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Removes a directory tree; missing is fine. Mounts inside must be gone first.
pub(super) fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(RuntimeError::io(format!("remove {}", dir.display()))(e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_processes_are_recognised_by_their_dir_only() {
        // This test process is no shim, whatever its arguments.
        let me = std::process::id() as i32;
        assert!(shim_dir(me).is_none());
        assert!(shim_processes(Some(Path::new("/nonexistent/pods/x"))).is_empty());
    }

    #[test]
    fn no_mounts_under_a_fresh_dir() {
        let dir = tempfile::tempdir().unwrap();
        let host = super::super::host::RealHost { cgroups: None };
        assert!(host.mounts_under(dir.path()).is_empty());
        unmount_under(&host, dir.path()).unwrap();
    }
}
