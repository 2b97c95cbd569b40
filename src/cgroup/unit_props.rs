//! A container's limits as systemd unit properties: what systemd owns in a scope's cgroup
//! (`cpu.weight`, `cpu.max`, `memory.max`, `pids.max`, `cpuset.*`...) is set through the unit,
//! so systemd keeps it when it re-applies the unit's settings; what it has no property for
//! (hugetlb, other `unified` files such as `memory.oom.group`, the device program) berth writes
//! into the delegated cgroup itself. Pure: the D-Bus side is `systemd.rs`.

use std::collections::BTreeMap;

use super::resources::{
    effective_period, effective_quota, effective_shares, shares_to_weight, v2_swap_max,
};
use super::{CgroupError, Resources};

/// systemd's "infinity" for a `t` property.
pub const INFINITY: u64 = u64::MAX;
/// The CFS period the kernel and systemd use when none is given, in microseconds.
const DEFAULT_PERIOD_US: u64 = 100_000;

/// One property's value, as its D-Bus type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `t`
    U64(u64),
    /// `b`
    Bool(bool),
    /// `s`
    Str(String),
    /// `ay` (a CPU or NUMA node bitmask)
    Bytes(Vec<u8>),
    /// `au` (process ids)
    U32s(Vec<u32>),
}

pub type Property = (&'static str, Value);

/// The unit properties for `r`, and the rest of `r` berth writes into the cgroup itself.
pub fn split(cgroup: &str, r: &Resources) -> Result<(Vec<Property>, Resources), CgroupError> {
    let invalid = |reason: String| CgroupError::InvalidResources {
        cgroup: cgroup.to_string(),
        reason,
    };
    if r.oom_kill_disable == Some(true) {
        return Err(CgroupError::Unsupported {
            cgroup: cgroup.to_string(),
            what: "disabling the OOM killer on cgroup v2".into(),
        });
    }
    let mut props = Vec::new();
    if let Some(shares) = effective_shares(r) {
        props.push(("CPUWeight", Value::U64(shares_to_weight(shares))));
    }
    let period = effective_period(r);
    if let Some(quota) = effective_quota(r) {
        props.push((
            "CPUQuotaPerSecUSec",
            Value::U64(quota_per_sec(quota, period)),
        ));
    }
    if let Some(period) = period {
        props.push(("CPUQuotaPeriodUSec", Value::U64(period)));
    }
    if let Some(cpus) = &r.cpuset_cpus {
        props.push(("AllowedCPUs", Value::Bytes(bitmask(cpus).map_err(invalid)?)));
    }
    if let Some(mems) = &r.cpuset_mems {
        props.push((
            "AllowedMemoryNodes",
            Value::Bytes(bitmask(mems).map_err(invalid)?),
        ));
    }
    if let Some(limit) = r.memory_limit {
        props.push(("MemoryMax", Value::U64(bytes(limit))));
    }
    if let Some(swap) = v2_swap_max(r.memory_limit, r.memory_swap).map_err(invalid)? {
        let swap = if swap == "max" {
            INFINITY
        } else {
            swap.parse().unwrap_or(INFINITY)
        };
        props.push(("MemorySwapMax", Value::U64(swap)));
    }
    if let Some(limit) = r.pids_limit {
        props.push((
            "TasksMax",
            Value::U64(if limit > 0 { limit as u64 } else { INFINITY }),
        ));
    }
    let mut unified = BTreeMap::new();
    for (key, value) in &r.unified {
        match unified_property(key) {
            Some(name) => {
                let v = parse_max(value).ok_or_else(|| {
                    invalid(format!(
                        "unified {key} = {value:?} is not a number or \"max\""
                    ))
                })?;
                props.push((name, Value::U64(v)));
            }
            None => {
                unified.insert(key.clone(), value.clone());
            }
        }
    }
    let rest = Resources {
        hugepage_limits: r.hugepage_limits.clone(),
        unified,
        devices: r.devices.clone(),
        ..Resources::default()
    };
    Ok((props, rest))
}

/// The property for a `unified` file systemd owns, if it has one.
fn unified_property(key: &str) -> Option<&'static str> {
    Some(match key {
        "cpu.weight" => "CPUWeight",
        "memory.min" => "MemoryMin",
        "memory.low" => "MemoryLow",
        "memory.high" => "MemoryHigh",
        "memory.max" => "MemoryMax",
        "memory.swap.max" => "MemorySwapMax",
        "pids.max" => "TasksMax",
        _ => return None,
    })
}

fn parse_max(value: &str) -> Option<u64> {
    match value.trim() {
        "max" => Some(INFINITY),
        v => v.parse().ok(),
    }
}

fn bytes(limit: i64) -> u64 {
    u64::try_from(limit).unwrap_or(INFINITY)
}

/// CPU time per second of wall time: quota/period, rounded up to 10 ms as systemd stores it (a
/// quota below that would otherwise be lost). Unlimited (-1) is infinity.
fn quota_per_sec(quota: i64, period: Option<u64>) -> u64 {
    let Ok(quota) = u64::try_from(quota) else {
        return INFINITY;
    };
    let period = period.unwrap_or(DEFAULT_PERIOD_US).max(1);
    let per_sec = quota.saturating_mul(1_000_000) / period;
    per_sec.div_ceil(10_000).saturating_mul(10_000)
}

/// A cpuset list (`0-3,6`) as systemd's bitmask: bit `n % 8` of byte `n / 8` is CPU `n`.
pub fn bitmask(list: &str) -> Result<Vec<u8>, String> {
    let mut mask = Vec::new();
    let bad = || format!("cpuset list {list:?} is not like 0-3,6");
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo, hi),
            None => (part, part),
        };
        let lo: usize = lo.trim().parse().map_err(|_| bad())?;
        let hi: usize = hi.trim().parse().map_err(|_| bad())?;
        if lo > hi || hi >= 8192 {
            return Err(bad());
        }
        for n in lo..=hi {
            if mask.len() <= n / 8 {
                mask.resize(n / 8 + 1, 0);
            }
            mask[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::DeviceRule;

    fn props(r: &Resources) -> BTreeMap<&'static str, Value> {
        split("/c", r).unwrap().0.into_iter().collect()
    }

    #[test]
    fn what_systemd_owns_becomes_properties() {
        let r = Resources {
            cpu_shares: Some(1024),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            cpuset_cpus: Some("0-1,9".into()),
            cpuset_mems: Some("0".into()),
            memory_limit: Some(64 << 20),
            memory_swap: Some(96 << 20),
            pids_limit: Some(100),
            ..Resources::default()
        };
        let p = props(&r);
        assert_eq!(p["CPUWeight"], Value::U64(39));
        assert_eq!(p["CPUQuotaPerSecUSec"], Value::U64(500_000));
        assert_eq!(p["CPUQuotaPeriodUSec"], Value::U64(100_000));
        assert_eq!(p["AllowedCPUs"], Value::Bytes(vec![0b11, 0b10]));
        assert_eq!(p["AllowedMemoryNodes"], Value::Bytes(vec![1]));
        assert_eq!(p["MemoryMax"], Value::U64(64 << 20));
        assert_eq!(p["MemorySwapMax"], Value::U64(32 << 20));
        assert_eq!(p["TasksMax"], Value::U64(100));
        let (_, rest) = split("/c", &r).unwrap();
        assert_eq!(rest, Resources::default(), "nothing left for cgroupfs");
    }

    #[test]
    fn unlimited_is_infinity_and_unset_is_absent() {
        let p = props(&Resources {
            cpu_quota: Some(-1),
            memory_limit: Some(-1),
            pids_limit: Some(0),
            cpu_shares: Some(0),
            ..Resources::default()
        });
        assert_eq!(p["CPUQuotaPerSecUSec"], Value::U64(INFINITY));
        assert_eq!(p["MemoryMax"], Value::U64(INFINITY));
        assert_eq!(p["TasksMax"], Value::U64(INFINITY));
        assert!(!p.contains_key("CPUWeight"), "shares 0 is CRI's unset");
        assert!(props(&Resources::default()).is_empty());
    }

    #[test]
    fn small_quotas_round_up_to_systemds_10ms() {
        assert_eq!(quota_per_sec(1_000, Some(100_000)), 10_000);
        assert_eq!(quota_per_sec(25_000, None), 250_000);
        assert_eq!(quota_per_sec(20_000, Some(50_000)), 400_000);
    }

    #[test]
    fn the_rest_stays_for_the_delegated_cgroup() {
        let mut unified = BTreeMap::new();
        unified.insert("memory.oom.group".to_string(), "1".to_string());
        unified.insert("memory.high".to_string(), "max".to_string());
        unified.insert("cpu.idle".to_string(), "1".to_string());
        let r = Resources {
            hugepage_limits: vec![("2MB".into(), 0)],
            unified,
            devices: Some(vec![DeviceRule {
                allow: false,
                kind: 'a',
                major: None,
                minor: None,
                access: "rwm".into(),
            }]),
            ..Resources::default()
        };
        let (p, rest) = split("/c", &r).unwrap();
        assert_eq!(p, vec![("MemoryHigh", Value::U64(INFINITY))]);
        assert_eq!(rest.hugepage_limits, r.hugepage_limits);
        assert_eq!(rest.devices, r.devices);
        assert_eq!(
            rest.unified.keys().collect::<Vec<_>>(),
            ["cpu.idle", "memory.oom.group"]
        );
    }

    #[test]
    fn contradictions_and_garbage_are_invalid() {
        let bad = [
            Resources {
                memory_limit: Some(100),
                memory_swap: Some(50),
                ..Resources::default()
            },
            Resources {
                cpuset_cpus: Some("3-1".into()),
                ..Resources::default()
            },
            Resources {
                cpuset_cpus: Some("x".into()),
                ..Resources::default()
            },
            Resources {
                unified: [("memory.max".to_string(), "lots".to_string())].into(),
                ..Resources::default()
            },
        ];
        for r in bad {
            let err = split("/c", &r).unwrap_err();
            assert!(
                matches!(err, CgroupError::InvalidResources { .. }),
                "{r:?}: {err}"
            );
        }
        let err = split(
            "/c",
            &Resources {
                oom_kill_disable: Some(true),
                ..Resources::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, CgroupError::Unsupported { .. }));
    }
}
