//! Usage read back from a cgroup, in the units CRI's container stats use.
//!
//! A section is `None` when the host does not offer its controller (no `pids` hierarchy, or a
//! v2 cgroup without the memory controller enabled).

/// What one cgroup has used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub pids: Option<PidsStats>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Cumulative CPU time of every task, in nanoseconds.
    pub usage_ns: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Charged memory, page cache included.
    pub usage_bytes: u64,
    /// Usage minus inactive file cache: what kubelet evicts on.
    pub working_set_bytes: u64,
    /// Anonymous memory (v1 `total_rss`, v2 `anon`).
    pub rss_bytes: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
    /// How many tasks the kernel's OOM killer killed in this cgroup.
    pub oom_kills: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PidsStats {
    /// Tasks (threads included) in the cgroup and its descendants.
    pub current: u64,
}

/// Usage minus inactive file pages, never below zero.
pub(crate) fn working_set(usage: u64, inactive_file: u64) -> u64 {
    usage.saturating_sub(inactive_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_set_subtracts_inactive_file_without_wrapping() {
        assert_eq!(working_set(1000, 300), 700);
        assert_eq!(working_set(100, 300), 0);
    }
}
