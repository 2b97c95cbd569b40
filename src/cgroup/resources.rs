//! The limits berth writes into a cgroup, and the pure conversions between v1 and v2 units.
//!
//! Values follow the OCI runtime spec (and so CRI): memory and swap in bytes with `-1` meaning
//! unlimited, swap as the memory+swap total, CPU shares in v1 units. A `0` for shares, quota or
//! period means "not set", as CRI sends it.

use std::collections::BTreeMap;

use oci_spec::runtime::LinuxResources;

use super::devices::DeviceRule;

/// Resource limits for one cgroup; `None` leaves the kernel's current value alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Relative CPU weight in v1 shares (2..=262144); converted to `cpu.weight` on v2.
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period; negative means unlimited.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<u64>,
    /// CPUs the tasks may run on, in cpuset list syntax (`0-3,6`).
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the tasks may allocate from, in list syntax.
    pub cpuset_mems: Option<String>,
    /// Memory limit in bytes; `-1` is unlimited.
    pub memory_limit: Option<i64>,
    /// Memory plus swap limit in bytes (OCI semantics); `-1` is unlimited.
    pub memory_swap: Option<i64>,
    /// Maximum number of tasks; zero or negative is unlimited.
    pub pids_limit: Option<i64>,
    /// Hugetlb limits as (page size as the kernel names it, e.g. `2MB`, bytes). Skipped when the
    /// host offers no hugetlb controller: kubelet sends one for every host page size regardless.
    pub hugepage_limits: Vec<(String, u64)>,
    /// Raw cgroup v2 files to write (`memory.high` = `…`); rejected on v1.
    pub unified: BTreeMap<String, String>,
    /// v1 only: disable the OOM killer (`memory.oom_control`); v2 has no equivalent.
    pub oom_kill_disable: Option<bool>,
    /// The device policy (OCI rules, in order); `None` leaves it alone. Written once, into a
    /// new cgroup: v1 `devices.deny`/`devices.allow`, v2 an attached device program.
    pub devices: Option<Vec<DeviceRule>>,
}

impl From<&LinuxResources> for Resources {
    fn from(spec: &LinuxResources) -> Resources {
        let cpu = spec.cpu().as_ref();
        let memory = spec.memory().as_ref();
        Resources {
            cpu_shares: cpu.and_then(|c| c.shares()),
            cpu_quota: cpu.and_then(|c| c.quota()),
            cpu_period: cpu.and_then(|c| c.period()),
            cpuset_cpus: cpu.and_then(|c| c.cpus().clone()),
            cpuset_mems: cpu.and_then(|c| c.mems().clone()),
            memory_limit: memory.and_then(|m| m.limit()),
            memory_swap: memory.and_then(|m| m.swap()),
            pids_limit: spec.pids().as_ref().map(|p| p.limit()),
            hugepage_limits: spec
                .hugepage_limits()
                .iter()
                .flatten()
                .map(|h| (h.page_size().clone(), u64::try_from(h.limit()).unwrap_or(0)))
                .collect(),
            unified: spec
                .unified()
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            oom_kill_disable: memory.and_then(|m| m.disable_oom_killer()),
            devices: spec
                .devices()
                .as_ref()
                .map(|rules| rules.iter().map(DeviceRule::from).collect()),
        }
    }
}

/// v1 CPU shares to v2 `cpu.weight`: the range 2..=262144 maps linearly onto 1..=10000.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// The shares to write, or `None` when unset (`0` is how CRI says unset).
pub(crate) fn effective_shares(r: &Resources) -> Option<u64> {
    r.cpu_shares.filter(|&s| s != 0)
}

/// The quota to write, or `None` when unset; any negative value becomes `-1` (unlimited).
pub(crate) fn effective_quota(r: &Resources) -> Option<i64> {
    r.cpu_quota.filter(|&q| q != 0).map(|q| q.max(-1))
}

/// The period to write, or `None` when unset.
pub(crate) fn effective_period(r: &Resources) -> Option<u64> {
    r.cpu_period.filter(|&p| p != 0)
}

/// The `pids.max` value: a positive count, or `max`.
pub(crate) fn pids_max(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

/// A v2 byte limit: `-1` (or any negative) is `max`.
pub(crate) fn v2_bytes(limit: i64) -> String {
    if limit < 0 {
        "max".to_string()
    } else {
        limit.to_string()
    }
}

/// v2 `memory.swap.max` from OCI's memory+swap total: swap alone is `swap - memory`.
/// `Ok(None)` when no swap limit is requested.
pub(crate) fn v2_swap_max(
    memory: Option<i64>,
    swap: Option<i64>,
) -> Result<Option<String>, String> {
    let Some(swap) = swap else { return Ok(None) };
    if swap < 0 {
        return Ok(Some("max".to_string()));
    }
    match memory {
        Some(memory) if memory >= 0 => {
            if swap < memory {
                Err(format!(
                    "memory+swap limit {swap} is below the memory limit {memory}"
                ))
            } else {
                Ok(Some((swap - memory).to_string()))
            }
        }
        _ => Err(format!(
            "memory+swap limit {swap} needs a memory limit to convert to cgroup v2"
        )),
    }
}

/// Whether a hugepage size is a plain kernel name (`2MB`, `1GB`, `64KB`), safe in a file name.
pub(crate) fn valid_page_size(size: &str) -> bool {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && ["KB", "MB", "GB"].contains(&unit)
}

/// Whether a unified key names a plain control file (`memory.high`), not a path.
pub(crate) fn valid_unified_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    key.contains('.')
        && !key.starts_with('.')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'_' || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight_table() {
        for (shares, weight) in [
            (0, 1),
            (2, 1),
            (3, 1),
            (28, 1),
            (29, 2),
            (102, 4),
            (1024, 39),
            (2048, 79),
            (262_144, 10_000),
            (1_000_000, 10_000),
        ] {
            assert_eq!(shares_to_weight(shares), weight, "shares {shares}");
        }
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(v2_swap_max(Some(100), None), Ok(None));
        assert_eq!(v2_swap_max(Some(100), Some(-1)), Ok(Some("max".into())));
        assert_eq!(v2_swap_max(None, Some(-1)), Ok(Some("max".into())));
        assert_eq!(v2_swap_max(Some(100), Some(100)), Ok(Some("0".into())));
        assert_eq!(v2_swap_max(Some(100), Some(300)), Ok(Some("200".into())));
        assert!(v2_swap_max(Some(100), Some(50)).is_err());
        assert!(v2_swap_max(None, Some(50)).is_err());
        assert!(v2_swap_max(Some(-1), Some(50)).is_err());
    }

    #[test]
    fn zero_means_unset_and_negative_means_unlimited() {
        let r = Resources {
            cpu_shares: Some(0),
            cpu_quota: Some(-5),
            cpu_period: Some(0),
            ..Resources::default()
        };
        assert_eq!(effective_shares(&r), None);
        assert_eq!(effective_quota(&r), Some(-1));
        assert_eq!(effective_period(&r), None);
        assert_eq!(pids_max(0), "max");
        assert_eq!(pids_max(-1), "max");
        assert_eq!(pids_max(7), "7");
        assert_eq!(v2_bytes(-1), "max");
        assert_eq!(v2_bytes(4096), "4096");
    }

    #[test]
    fn names_that_would_escape_the_cgroup_are_invalid() {
        assert!(valid_page_size("2MB"));
        assert!(valid_page_size("1GB"));
        assert!(valid_page_size("64KB"));
        assert!(!valid_page_size("2M"));
        assert!(!valid_page_size("MB"));
        assert!(!valid_page_size("../2MB"));
        assert!(valid_unified_key("memory.high"));
        assert!(valid_unified_key("io.bfq.weight"));
        assert!(!valid_unified_key("../x.y"));
        assert!(!valid_unified_key("a/b.c"));
        assert!(!valid_unified_key("nodot"));
    }

    #[test]
    fn from_oci_spec_resources() {
        let json = r#"{
            "memory": {"limit": 1048576, "swap": 2097152, "disableOOMKiller": true},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
            "pids": {"limit": 64},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "unified": {"memory.high": "900000"}
        }"#;
        let spec: LinuxResources = serde_json::from_str(json).unwrap();
        let r = Resources::from(&spec);
        assert_eq!(r.memory_limit, Some(1_048_576));
        assert_eq!(r.memory_swap, Some(2_097_152));
        assert_eq!(r.oom_kill_disable, Some(true));
        assert_eq!(r.cpu_shares, Some(512));
        assert_eq!(r.cpu_quota, Some(50_000));
        assert_eq!(r.cpu_period, Some(100_000));
        assert_eq!(r.cpuset_cpus.as_deref(), Some("0-1"));
        assert_eq!(r.cpuset_mems.as_deref(), Some("0"));
        assert_eq!(r.pids_limit, Some(64));
        assert_eq!(r.hugepage_limits, vec![("2MB".to_string(), 4_194_304)]);
        assert_eq!(r.unified["memory.high"], "900000");
    }
}
