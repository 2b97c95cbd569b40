//! Checks on what a plugin's adjustment carries, before any of it reaches the spec: strings
//! that a process or the kernel cannot take (NUL bytes, env names with `=`), paths that are not
//! absolute or climb with `..` (mount destinations, devices, hooks), rlimits whose soft value
//! exceeds the hard one, an `oom_score_adj` outside the kernel's range, cpusets that are not CPU
//! lists, unified keys that are paths and negative sizes. Each refusal names the item.

use std::path::{Component, Path};

use super::api;

/// Why `adj` cannot be applied, if it cannot.
pub(super) fn adjustment(adj: &api::ContainerAdjustment) -> Result<(), String> {
    for (key, value) in &adj.annotations {
        no_nul("annotation", key)?;
        no_nul(&format!("annotation {key:?}"), value)?;
    }
    for kv in &adj.env {
        let name = kv.key.strip_prefix('-').unwrap_or(&kv.key);
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            return Err(format!(
                "env name {name:?}: empty, or holds '=' or a NUL byte"
            ));
        }
        no_nul(&format!("env {name}"), &kv.value)?;
    }
    for arg in &adj.args {
        no_nul("args", arg)?;
    }
    for m in &adj.mounts {
        let dest = m.destination.strip_prefix('-').unwrap_or(&m.destination);
        absolute("mount destination", dest)?;
        no_nul(&format!("mount {dest} source"), &m.source)?;
        no_nul(&format!("mount {dest} type"), &m.type_)?;
        for o in &m.options {
            no_nul(&format!("mount {dest} option"), o)?;
        }
    }
    for r in &adj.rlimits {
        if r.soft > r.hard {
            return Err(format!(
                "rlimit {}: soft {} above hard {}",
                r.type_, r.soft, r.hard
            ));
        }
    }
    if let Some(h) = adj.hooks.as_ref() {
        hooks(h)?;
    }
    if let Some(l) = adj.linux.as_ref() {
        linux(l)?;
    }
    Ok(())
}

fn hooks(h: &api::Hooks) -> Result<(), String> {
    for hook in super::adjust::hook_lists(h).into_iter().flatten() {
        absolute("hook", &hook.path)?;
        for s in hook.args.iter().chain(&hook.env) {
            no_nul(&format!("hook {}", hook.path), s)?;
        }
    }
    Ok(())
}

fn linux(l: &api::LinuxContainerAdjustment) -> Result<(), String> {
    if let Some(oom) = l.oom_score_adj.as_ref()
        && !(-1000..=1000).contains(&oom.value)
    {
        return Err(format!(
            "oom_score_adj {} is outside -1000..=1000",
            oom.value
        ));
    }
    no_nul("cgroups path", &l.cgroups_path)?;
    for d in &l.devices {
        absolute("device", d.path.strip_prefix('-').unwrap_or(&d.path))?;
    }
    let Some(r) = l.resources.as_ref() else {
        return Ok(());
    };
    if let Some(cpu) = r.cpu.as_ref() {
        for (what, list) in [("cpuset cpus", &cpu.cpus), ("cpuset mems", &cpu.mems)] {
            if !list
                .chars()
                .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
            {
                return Err(format!("{what} {list:?} is not a list like 0-3,6"));
            }
        }
        if let Some(q) = cpu.quota.as_ref()
            && q.value < -1
        {
            return Err(format!("cpu quota {} is below -1", q.value));
        }
    }
    if let Some(m) = r.memory.as_ref() {
        for (what, v) in [
            ("memory limit", &m.limit),
            ("memory swap", &m.swap),
            ("memory reservation", &m.reservation),
        ] {
            if let Some(v) = v.as_ref()
                && v.value < -1
            {
                return Err(format!("{what} {} is below -1", v.value));
            }
        }
    }
    for (key, value) in &r.unified {
        if !crate::cgroup::valid_unified_key(key) {
            return Err(format!("unified {key:?} is not a cgroup control file name"));
        }
        no_nul(&format!("unified {key}"), value)?;
    }
    Ok(())
}

fn no_nul(what: &str, s: &str) -> Result<(), String> {
    match s.contains('\0') {
        true => Err(format!("{what} {s:?} holds a NUL byte")),
        false => Ok(()),
    }
}

/// An absolute path without `..` or NUL bytes.
fn absolute(what: &str, path: &str) -> Result<(), String> {
    no_nul(what, path)?;
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "{what} {path:?} is not an absolute path without '..'"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
