//! The pod shims' cgroup: berthd moves each new shim (and its pause process) out of its own
//! cgroup, whose service unit would otherwise take the shims, and with them the pods, down when
//! berthd stops, into [`SHIM_CGROUP`], shared by every shim, in every hierarchy, and on a hybrid
//! host in the unified one too (where systemd tracks units). berthd does it on a spare thread once
//! the shim is up: a v1 `cgroup.procs` write may wait 5–20 ms for the kernel, and the pod's start
//! need not wait; and the shim itself carries no cgroup code or thread for it.

use crate::cgroup::{Cgroup, CgroupError, Hierarchy, Mode};

/// The cgroupfs path every pod shim lives in.
pub const SHIM_CGROUP: &str = "/berth-shims";

/// Moves the shim `shim_pid` and its pause process, if it has one, into [`SHIM_CGROUP`].
pub fn move_shim(hierarchy: &Hierarchy, shim_pid: i32) -> Result<(), CgroupError> {
    let mut pids = vec![shim_pid];
    pids.extend(children(shim_pid).into_iter().filter(|pid| is_pause(*pid)));
    let cgroup = Cgroup::create(hierarchy, SHIM_CGROUP)?;
    for pid in &pids {
        cgroup.add_process(*pid)?;
    }
    if hierarchy.mode() == Mode::V1 {
        let unified = hierarchy.root().join("unified");
        if unified.join("cgroup.procs").exists() {
            let dir = unified.join(SHIM_CGROUP.trim_start_matches('/'));
            match std::fs::create_dir(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(CgroupError::Create {
                        path: dir,
                        source: e,
                    });
                }
                _ => {}
            }
            let procs = dir.join("cgroup.procs");
            for pid in &pids {
                let value = pid.to_string();
                std::fs::write(&procs, &value).map_err(|source| CgroupError::Write {
                    path: procs.clone(),
                    value,
                    source,
                })?;
            }
        }
    }
    Ok(())
}

/// Whether `pid` runs `berth-shim pause` (and not a container, which has a cgroup of its own).
fn is_pause(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).nth(1) == Some(b"pause"))
}

/// The children of every thread of `pid`.
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}
