//! Resource usage of containers and pods: cgroup counters, CPU rate between two samples, and
//! the writable layer's bytes and inodes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use super::records::{ContainerRecord, now_ns};
use super::{Result, Runtime, RuntimeError};
use crate::cgroup::{Cgroup, Pressure, Stats};

/// One container's usage at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Unix nanoseconds.
    pub at: i64,
    pub cgroup: Stats,
    /// PSI of the container's cgroup (cgroup v2 only; all `None` on v1).
    pub pressure: Pressure,
    /// CPU use since the previous sample of the same container, in nanocores.
    pub nano_cores: Option<u64>,
    pub layer_bytes: u64,
    pub layer_inodes: u64,
}

/// The previous CPU sample of each container: (time, cumulative usage).
#[derive(Default)]
pub struct CpuSamples(Mutex<HashMap<String, (i64, u64)>>);

impl CpuSamples {
    /// Records a sample and returns the rate since the previous one.
    fn rate(&self, id: &str, at: i64, usage_ns: u64) -> Option<u64> {
        let mut samples = self.0.lock().expect("cpu samples lock");
        let previous = samples.insert(id.to_string(), (at, usage_ns));
        let (then, before) = previous?;
        let elapsed = u128::try_from(at.checked_sub(then)?)
            .ok()
            .filter(|e| *e > 0)?;
        let used = u128::from(usage_ns.checked_sub(before)?);
        u64::try_from(used * 1_000_000_000 / elapsed).ok()
    }

    pub fn forget(&self, id: &str) {
        self.0.lock().expect("cpu samples lock").remove(id);
    }
}

impl Runtime {
    /// Usage of one container now.
    pub fn container_usage(&self, c: &ContainerRecord) -> Result<Usage> {
        let hierarchy = self
            .cgroups
            .as_ref()
            .ok_or(RuntimeError::NoCgroupHierarchy)?;
        let at = now_ns();
        let group = Cgroup::open(hierarchy, &c.cgroup)?;
        let cgroup = group.stats()?;
        let pressure = pressure_of(&group);
        let nano_cores = cgroup
            .cpu
            .as_ref()
            .and_then(|cpu| self.cpu_samples.rate(&c.id, at, cpu.usage_ns));
        let (layer_bytes, layer_inodes) = tree_usage(&c.rw_dir.join("upper"));
        Ok(Usage {
            at,
            cgroup,
            pressure,
            nano_cores,
            layer_bytes,
            layer_inodes,
        })
    }
}

impl Runtime {
    /// PSI of a pod's own cgroup (its cgroup parent). Unknown (all `None`) for a pod without a
    /// cgroup parent of its own, whose containers sit in berth's shared tree.
    pub fn pod_pressure(&self, sandbox: &super::records::SandboxRecord) -> Pressure {
        let (Some(hierarchy), Ok(Some(path))) = (
            self.cgroups.as_ref(),
            super::pod_resources::pod_cgroup(&sandbox.config),
        ) else {
            return Pressure::default();
        };
        Cgroup::open(hierarchy, &path)
            .map(|g| pressure_of(&g))
            .unwrap_or_default()
    }
}

/// A cgroup's PSI; a file the kernel filled with something unreadable is logged and left out
/// (stats stay available without it).
fn pressure_of(group: &Cgroup) -> Pressure {
    group.pressure().unwrap_or_else(|e| {
        tracing::warn!(cgroup = %group.path(), error = %e, "pressure stall information unreadable");
        Pressure::default()
    })
}

/// Bytes of regular files and number of entries below `dir` (symlinks not followed).
fn tree_usage(dir: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut inodes = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            inodes += 1;
            if meta.is_dir() {
                pending.push(entry.path());
            } else if meta.is_file() {
                bytes += meta.len();
            }
        }
    }
    (bytes, inodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_rate_needs_two_samples() {
        let s = CpuSamples::default();
        assert_eq!(s.rate("c", 1_000_000_000, 0), None);
        // half a core: 0.5 s of CPU in 1 s
        assert_eq!(s.rate("c", 2_000_000_000, 500_000_000), Some(500_000_000));
        assert_eq!(
            s.rate("c", 2_000_000_000, 600_000_000),
            None,
            "no time passed"
        );
        s.forget("c");
        assert_eq!(s.rate("c", 3_000_000_000, 700_000_000), None);
    }

    #[test]
    fn tree_usage_counts_files_and_entries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), b"12345").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("l")).unwrap();
        assert_eq!(tree_usage(dir.path()), (5, 3));
    }
}
