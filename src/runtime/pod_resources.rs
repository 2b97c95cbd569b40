//! UpdatePodSandboxResources (in-place pod resize): the pod's own cgroup, its cgroup parent,
//! gets the pod's new totals, and the sandbox record keeps what was asked for.
//!
//! Kubelet sends `resources` (the sum of its containers' limits) and `overhead` (the pod's
//! RuntimeClass overhead). The pod cgroup's limit is their sum, for each limit `resources` sets:
//! an overhead alone never limits a pod that has no limit of its own. CPU shares are requests and
//! always add up. cpusets and `unified` settings come from `resources` only. A pod without a
//! cgroup parent of its own shares berth's tree with other pods and cannot be resized. A request
//! that leaves `overhead` (or `resources`) out keeps the one the pod was given before.

use crate::cgroup::{Cgroup, Hierarchy, Resources, expand_slice, is_slice_name};
use crate::cri_api as api;

use super::records::SandboxState;
use super::{Result, Runtime, RuntimeError};

/// The kernel's range of v1 `cpu.shares`.
const MIN_SHARES: u64 = 2;
const MAX_SHARES: u64 = 262_144;

impl Runtime {
    /// Validates the request, writes the totals into the pod's cgroup (creating it when no
    /// container made it yet), then records `overhead` and `resources` in the sandbox's config,
    /// where verbose PodSandboxStatus shows them and a restarted berthd finds them.
    pub fn update_pod_resources(
        &self,
        id: &str,
        overhead: Option<api::LinuxContainerResources>,
        resources: Option<api::LinuxContainerResources>,
    ) -> Result<()> {
        if id.is_empty() {
            return Err(RuntimeError::InvalidArgument(
                "pod sandbox id is empty".into(),
            ));
        }
        if overhead.is_none() && resources.is_none() {
            return Err(RuntimeError::InvalidArgument(
                "neither overhead nor resources given: nothing to update".into(),
            ));
        }
        for (what, r) in [("overhead", &overhead), ("resources", &resources)] {
            if let Some(r) = r {
                validate(r).map_err(|e| RuntimeError::InvalidArgument(format!("{what}: {e}")))?;
            }
        }
        let sandbox = self.sandbox(id)?;
        if sandbox.state != SandboxState::Ready {
            return Err(RuntimeError::SandboxNotReady(sandbox.id.clone()));
        }
        let path = pod_cgroup(&sandbox.config)?
            .ok_or_else(|| RuntimeError::NoPodCgroup(sandbox.id.clone()))?;
        let hierarchy = self
            .cgroups
            .as_ref()
            .ok_or(RuntimeError::NoCgroupHierarchy)?;
        // A part the request leaves out is the one the pod was given before.
        let kept = sandbox.config.linux.as_ref();
        let overhead = overhead.or_else(|| kept.and_then(|l| l.overhead.clone()));
        let resources = resources.or_else(|| kept.and_then(|l| l.resources.clone()));
        let totals = resize(
            hierarchy,
            &path,
            overhead.as_ref(),
            resources.as_ref(),
            self.host.swap_controller,
        )?;
        tracing::info!(pod_id = %sandbox.id, cgroup = %path, ?totals, "pod resources updated");
        self.update_sandbox(&sandbox.id, |s| {
            let linux = s.config.linux.get_or_insert_with(Default::default);
            linux.overhead = overhead;
            linux.resources = resources;
        })?;
        Ok(())
    }
}

/// Writes the pod's totals into its cgroup at `path`, creating it when no container made it
/// yet, and returns what was written. Nothing is written when no limit is set.
fn resize(
    hierarchy: &Hierarchy,
    path: &str,
    overhead: Option<&api::LinuxContainerResources>,
    resources: Option<&api::LinuxContainerResources>,
    swap_controller: bool,
) -> Result<Resources> {
    let mut totals = pod_totals(overhead, resources);
    if !swap_controller {
        totals.memory_swap = None;
    }
    if totals != Resources::default() {
        Cgroup::create(hierarchy, path)?.apply(&totals)?;
    }
    Ok(totals)
}

/// The pod's own cgroup: its cgroup parent (a systemd slice name as the slice's directory), or
/// `None` when it has none and its containers live in berth's shared tree.
pub(crate) fn pod_cgroup(config: &api::PodSandboxConfig) -> Result<Option<String>> {
    let parent = config
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.trim_end_matches('/'))
        .filter(|p| !p.is_empty());
    match parent {
        None => Ok(None),
        Some(p) if is_slice_name(p) => Ok(Some(expand_slice(p)?)),
        Some(p) => Ok(Some(p.to_string())),
    }
}

/// Rejects values no cgroup can take: negative sizes and weights, a quota below -1, an
/// `oom_score_adj` out of the kernel's range, cpusets that are not CPU lists.
fn validate(r: &api::LinuxContainerResources) -> std::result::Result<(), String> {
    let checks: [(&str, i64, i64); 5] = [
        ("cpu_period", r.cpu_period, 0),
        ("cpu_quota", r.cpu_quota, -1),
        ("cpu_shares", r.cpu_shares, 0),
        ("memory_limit_in_bytes", r.memory_limit_in_bytes, 0),
        (
            "memory_swap_limit_in_bytes",
            r.memory_swap_limit_in_bytes,
            -1,
        ),
    ];
    for (field, value, min) in checks {
        if value < min {
            return Err(format!("{field} {value} is below {min}"));
        }
    }
    if r.cpu_period != 0 && !(1_000..=1_000_000).contains(&r.cpu_period) {
        return Err(format!(
            "cpu_period {} is outside 1000..=1000000 microseconds",
            r.cpu_period
        ));
    }
    if !(-1000..=1000).contains(&r.oom_score_adj) {
        return Err(format!(
            "oom_score_adj {} is outside -1000..=1000",
            r.oom_score_adj
        ));
    }
    for (field, list) in [
        ("cpuset_cpus", &r.cpuset_cpus),
        ("cpuset_mems", &r.cpuset_mems),
    ] {
        if !list
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
        {
            return Err(format!("{field} {list:?} is not a list like 0-3,6"));
        }
    }
    if let Some(h) = r.hugepage_limits.iter().find(|h| h.page_size.is_empty()) {
        return Err(format!("a hugepage limit of {} has no page size", h.limit));
    }
    Ok(())
}

/// The pod cgroup's limits: `resources` plus `overhead` (see the module comment).
fn pod_totals(
    overhead: Option<&api::LinuxContainerResources>,
    resources: Option<&api::LinuxContainerResources>,
) -> Resources {
    let none = api::LinuxContainerResources::default();
    let o = overhead.unwrap_or(&none);
    let r = resources.unwrap_or(&none);
    let positive = |v: i64| u64::try_from(v).ok().filter(|v| *v > 0);
    let mut out = Resources::default();

    let period = positive(r.cpu_period).or(positive(o.cpu_period));
    out.cpu_period = period;
    out.cpu_quota = match r.cpu_quota {
        -1 => Some(-1),
        q if q > 0 => {
            // The overhead's quota, rescaled when it was given for another period.
            let extra = match (positive(o.cpu_quota), positive(o.cpu_period), period) {
                (Some(q), Some(op), Some(p)) if op != p => q.saturating_mul(p) / op,
                (Some(q), _, _) => q,
                (None, _, _) => 0,
            };
            Some(q.saturating_add(i64::try_from(extra).unwrap_or(i64::MAX)))
        }
        _ => None,
    };
    let shares = positive(r.cpu_shares).unwrap_or(0) + positive(o.cpu_shares).unwrap_or(0);
    out.cpu_shares = (shares > 0).then(|| shares.clamp(MIN_SHARES, MAX_SHARES));
    out.cpuset_cpus = Some(r.cpuset_cpus.clone()).filter(|s| !s.is_empty());
    out.cpuset_mems = Some(r.cpuset_mems.clone()).filter(|s| !s.is_empty());

    let plus_overhead = |mine: i64, theirs: i64| match mine {
        -1 => Some(-1),
        m if m > 0 => Some(m.saturating_add(theirs.max(0))),
        _ => None,
    };
    out.memory_limit = plus_overhead(r.memory_limit_in_bytes, o.memory_limit_in_bytes);
    out.memory_swap = plus_overhead(r.memory_swap_limit_in_bytes, o.memory_swap_limit_in_bytes);
    out.hugepage_limits = r
        .hugepage_limits
        .iter()
        .map(|h| {
            let extra = o
                .hugepage_limits
                .iter()
                .filter(|x| x.page_size == h.page_size)
                .map(|x| x.limit)
                .sum::<u64>();
            (h.page_size.clone(), h.limit.saturating_add(extra))
        })
        .collect();
    out.unified = r.unified.clone().into_iter().collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(quota: i64, period: i64, shares: i64, memory: i64) -> api::LinuxContainerResources {
        api::LinuxContainerResources {
            cpu_quota: quota,
            cpu_period: period,
            cpu_shares: shares,
            memory_limit_in_bytes: memory,
            ..Default::default()
        }
    }

    #[test]
    fn totals_add_the_overhead_to_each_limit_the_pod_has() {
        let r = res(200_000, 100_000, 1024, 256 << 20);
        let o = res(10_000, 100_000, 102, 32 << 20);
        let t = pod_totals(Some(&o), Some(&r));
        assert_eq!(t.cpu_quota, Some(210_000));
        assert_eq!(t.cpu_period, Some(100_000));
        assert_eq!(t.cpu_shares, Some(1126));
        assert_eq!(t.memory_limit, Some(288 << 20));
        assert_eq!(t.memory_swap, None);
        assert_eq!(t.pids_limit, None);
        assert_eq!(t.devices, None, "the device policy is never touched");
    }

    #[test]
    fn an_overhead_alone_sets_no_limit_and_other_periods_are_rescaled() {
        let o = res(10_000, 50_000, 2, 32 << 20);
        let t = pod_totals(Some(&o), Some(&res(0, 0, 0, 0)));
        assert_eq!((t.cpu_quota, t.memory_limit), (None, None));
        assert_eq!(t.cpu_shares, Some(2), "shares are requests: they add up");
        let t = pod_totals(Some(&o), Some(&res(100_000, 100_000, 0, -1)));
        assert_eq!(
            t.cpu_quota,
            Some(120_000),
            "10ms per 50ms is 20ms per 100ms"
        );
        assert_eq!(t.memory_limit, Some(-1));
        let t = pod_totals(None, Some(&res(-1, 0, 1, 0)));
        assert_eq!(t.cpu_quota, Some(-1), "-1 lifts the quota");
        assert_eq!(
            t.cpu_shares,
            Some(MIN_SHARES),
            "clamped to the kernel's range"
        );
    }

    #[test]
    fn nonsense_is_rejected_with_the_field_named() {
        for (bad, field) in [
            (res(0, 0, 0, -5), "memory_limit_in_bytes"),
            (res(-2, 0, 0, 0), "cpu_quota"),
            (res(0, -1, 0, 0), "cpu_period"),
            (res(0, 10, 0, 0), "cpu_period"),
            (res(0, 0, -3, 0), "cpu_shares"),
        ] {
            let err = validate(&bad).unwrap_err();
            assert!(err.contains(field), "{err}");
        }
        let mut bad = res(0, 0, 0, 0);
        bad.cpuset_cpus = "0-1;rm".into();
        assert!(validate(&bad).unwrap_err().contains("cpuset_cpus"));
        bad.cpuset_cpus = "0-1,3".into();
        bad.oom_score_adj = 5000;
        assert!(validate(&bad).unwrap_err().contains("oom_score_adj"));
        assert_eq!(validate(&res(-1, 100_000, 2, 1 << 20)), Ok(()));
    }

    #[test]
    fn the_pod_cgroup_is_its_parent_or_none() {
        let with = |parent: &str| api::PodSandboxConfig {
            linux: Some(api::LinuxPodSandboxConfig {
                cgroup_parent: parent.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(pod_cgroup(&api::PodSandboxConfig::default()).unwrap(), None);
        assert_eq!(pod_cgroup(&with("")).unwrap(), None);
        assert_eq!(
            pod_cgroup(&with("/kubepods/burstable/pod1/")).unwrap(),
            Some("/kubepods/burstable/pod1".into())
        );
        assert_eq!(
            pod_cgroup(&with("kubepods-burstable-pod1.slice")).unwrap(),
            Some("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice".into())
        );
    }

    /// A fake cgroup v2 root offering cpu and memory, with the pod's directory already made.
    fn fake_v2(pod: &str) -> (tempfile::TempDir, Hierarchy) {
        let root = tempfile::tempdir().unwrap();
        let write = |rel: &str, file: &str, content: &str| {
            let dir = root.path().join(rel);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(file), content).unwrap();
        };
        write("", "cgroup.controllers", "cpu memory\n");
        write("", "cgroup.subtree_control", "cpu memory\n");
        write("kubepods", "cgroup.subtree_control", "cpu memory\n");
        for (file, content) in [
            ("cgroup.subtree_control", ""),
            ("cpu.max", "max 100000\n"),
            ("cpu.weight", "100\n"),
            ("memory.max", "max\n"),
            ("memory.swap.max", "max\n"),
        ] {
            write(pod, file, content);
        }
        let h = Hierarchy::at(root.path(), crate::cgroup::Mode::V2).unwrap();
        (root, h)
    }

    #[test]
    fn a_resize_writes_the_v2_files_of_the_pod_cgroup() {
        let (root, h) = fake_v2("kubepods/pod1");
        let read = |file: &str| {
            std::fs::read_to_string(root.path().join("kubepods/pod1").join(file)).unwrap()
        };
        let r = res(150_000, 100_000, 1024, 256 << 20);
        let o = res(50_000, 100_000, 0, 16 << 20);
        let t = resize(&h, "/kubepods/pod1", Some(&o), Some(&r), false).unwrap();
        assert_eq!(t.memory_swap, None, "no swap controller: swap untouched");
        assert_eq!(read("cpu.max").trim(), "200000 100000");
        assert_eq!(read("memory.max").trim(), (272u64 << 20).to_string());
        assert_eq!(
            read("cpu.weight").trim(),
            "39",
            "1024 shares as a v2 weight"
        );
        assert_eq!(read("memory.swap.max").trim(), "max");

        // Only an overhead and no limit of the pod's own: nothing written.
        std::fs::write(root.path().join("kubepods/pod1/cpu.max"), "max 100000\n").unwrap();
        let t = resize(&h, "/kubepods/pod1", Some(&res(1000, 0, 0, 0)), None, true).unwrap();
        assert_eq!(t, Resources::default());
        assert_eq!(read("cpu.max").trim(), "max 100000");
    }

    #[test]
    fn a_limit_without_its_controller_fails_naming_it() {
        let (root, h) = fake_v2("kubepods/pod2");
        std::fs::remove_file(root.path().join("kubepods/pod2/memory.max")).unwrap();
        let err = resize(
            &h,
            "/kubepods/pod2",
            None,
            Some(&res(0, 0, 0, 1 << 20)),
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("memory"), "{err}");
    }
}
