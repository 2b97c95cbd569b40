//! The shim's own cgroup: it leaves berthd's (whose service unit would otherwise take the shims,
//! and with them the pods, down when berthd stops) for [`SHIM_CGROUP`], shared by every shim, in
//! every hierarchy, and on a hybrid host in the unified one too (where systemd tracks units). It
//! moves itself (and its pause process) after reporting ready, on a blocking thread: a v1
//! `cgroup.procs` write may wait 5–20 ms for the kernel, and the pod's start need not wait.

use crate::cgroup::{Cgroup, CgroupError, Hierarchy, Mode};

/// The cgroupfs path every pod shim lives in.
pub const SHIM_CGROUP: &str = "/berth-shims";

/// Moves the processes `pids` (the shim, its pause process) into [`SHIM_CGROUP`].
pub(crate) fn move_to_shim_cgroup(pids: &[i32]) -> Result<(), CgroupError> {
    let hierarchy = Hierarchy::detect()?;
    let cgroup = Cgroup::create(&hierarchy, SHIM_CGROUP)?;
    for pid in pids {
        cgroup.add_process(*pid)?;
    }
    if hierarchy.mode() == Mode::V1 {
        let unified = std::path::Path::new("/sys/fs/cgroup/unified");
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
            for pid in pids {
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
