//! Resource usage of containers and pods: cgroup counters, CPU rate between two samples, and
//! the writable layer's bytes and inodes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use super::records::{ContainerRecord, now_ns};
use super::{Result, Runtime, RuntimeError};
use crate::cgroup::{Cgroup, Stats};

/// One container's usage at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Unix nanoseconds.
    pub at: i64,
    pub cgroup: Stats,
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
        let cgroup = Cgroup::open(hierarchy, &c.cgroup)?.stats()?;
        let nano_cores = cgroup
            .cpu
            .as_ref()
            .and_then(|cpu| self.cpu_samples.rate(&c.id, at, cpu.usage_ns));
        let (layer_bytes, layer_inodes) = tree_usage(&c.rw_dir.join("upper"));
        Ok(Usage {
            at,
            cgroup,
            nano_cores,
            layer_bytes,
            layer_inodes,
        })
    }
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
