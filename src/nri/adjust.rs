//! NRI container adjustments applied to a new container's OCI spec, plugin by plugin in index
//! order. Each adjusted item (an annotation, an env variable, a mount destination, a resource
//! field, the args...) belongs to the first plugin that touches it; another plugin touching it
//! too is a conflict, refused as NRI defines. A key or destination with a leading `-` removes
//! the item. What berth cannot apply (namespaces, seccomp, sysctls, net devices, scheduler, RDT,
//! I/O priority, memory policy, CDI devices) is refused, naming it, rather than dropped.

use std::collections::HashMap;

use oci_spec::runtime::{
    Hook, LinuxDevice, LinuxDeviceType, LinuxPids, LinuxResources, Mount, PosixRlimitBuilder, Spec,
};

use super::NriError;
use super::api;

/// The adjustments of one container so far, with who made each.
pub struct Adjuster<'a> {
    container: &'a str,
    /// berth's built-in executor runs the container: it runs no OCI hooks and keeps the
    /// container in berth's own cgroup, so hooks and a cgroups path are refused, not dropped.
    built_in: bool,
    owners: HashMap<String, String>,
}

impl<'a> Adjuster<'a> {
    pub fn new(container: &'a str, built_in: bool) -> Self {
        Adjuster {
            container,
            built_in,
            owners: HashMap::new(),
        }
    }

    /// Claims `what` for `plugin`; a conflict if another plugin has it.
    fn claim(&mut self, plugin: &str, what: String) -> Result<(), NriError> {
        match self.owners.get(&what) {
            Some(first) if first != plugin => Err(NriError::Conflict {
                container: self.container.to_string(),
                what,
                first: first.clone(),
                second: plugin.to_string(),
            }),
            _ => {
                self.owners.insert(what, plugin.to_string());
                Ok(())
            }
        }
    }

    fn refuse(&self, plugin: &str, why: String) -> NriError {
        NriError::Adjustment {
            plugin: plugin.to_string(),
            container: self.container.to_string(),
            why,
        }
    }

    /// Applies `plugin`'s adjustment `adj` to `spec`.
    pub fn apply(
        &mut self,
        plugin: &str,
        adj: &api::ContainerAdjustment,
        spec: &mut Spec,
    ) -> Result<(), NriError> {
        if !adj.CDI_devices.is_empty() {
            return Err(self.refuse(plugin, "CDI devices cannot be injected by NRI".into()));
        }
        super::checks::adjustment(adj).map_err(|why| self.refuse(plugin, why))?;
        let mut annotations = spec.annotations().clone().unwrap_or_default();
        for (key, value) in &adj.annotations {
            let (name, remove) = removal(key);
            self.claim(plugin, format!("annotation {name:?}"))?;
            match remove {
                true => annotations.remove(name),
                false => annotations.insert(name.to_string(), value.clone()),
            };
        }
        spec.set_annotations(Some(annotations));
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for m in &adj.mounts {
            let (dest, remove) = removal(&m.destination);
            self.claim(plugin, format!("mount {dest}"))?;
            mounts.retain(|x| x.destination().to_str() != Some(dest));
            if !remove {
                let mut mount = Mount::default();
                mount
                    .set_destination(dest.into())
                    .set_typ(Some(m.type_.clone()).filter(|t| !t.is_empty()))
                    .set_source(Some(m.source.clone().into()))
                    .set_options(Some(m.options.clone()));
                mounts.push(mount);
            }
        }
        spec.set_mounts(Some(mounts));
        self.process(plugin, adj, spec)?;
        if let Some(h) = adj.hooks.as_ref() {
            if self.built_in && has_hooks(h) {
                return Err(self.refuse(plugin, BUILT_IN_HOOKS.into()));
            }
            add_hooks(spec, h);
        }
        if let Some(linux) = adj.linux.as_ref() {
            self.linux(plugin, linux, spec)?;
        }
        Ok(())
    }

    /// Env, args and rlimits.
    fn process(
        &mut self,
        plugin: &str,
        adj: &api::ContainerAdjustment,
        spec: &mut Spec,
    ) -> Result<(), NriError> {
        let mut process = spec.process().clone().unwrap_or_default();
        let mut env = process.env().clone().unwrap_or_default();
        for kv in &adj.env {
            let (name, remove) = removal(&kv.key);
            self.claim(plugin, format!("env {name}"))?;
            env.retain(|e| e.split('=').next() != Some(name));
            if !remove {
                env.push(format!("{name}={}", kv.value));
            }
        }
        process.set_env(Some(env));
        if !adj.args.is_empty() {
            self.claim(plugin, "args".into())?;
            // A first empty argument asks to replace them all, as NRI defines.
            let args: Vec<String> = match adj.args.first().map(String::as_str) {
                Some("") => adj.args[1..].to_vec(),
                _ => adj.args.clone(),
            };
            process.set_args(Some(args));
        }
        let mut rlimits = process.rlimits().clone().unwrap_or_default();
        for r in &adj.rlimits {
            let typ = (r.type_.parse())
                .map_err(|_| self.refuse(plugin, format!("unknown rlimit {:?}", r.type_)))?;
            self.claim(plugin, format!("rlimit {}", r.type_))?;
            rlimits.retain(|x| x.typ() != typ);
            let limit = PosixRlimitBuilder::default()
                .typ(typ)
                .hard(r.hard)
                .soft(r.soft)
                .build()
                .map_err(|e| self.refuse(plugin, format!("rlimit {}: {e}", r.type_)))?;
            rlimits.push(limit);
        }
        process.set_rlimits(Some(rlimits).filter(|r| !r.is_empty()));
        spec.set_process(Some(process));
        Ok(())
    }

    fn linux(
        &mut self,
        plugin: &str,
        adj: &api::LinuxContainerAdjustment,
        spec: &mut Spec,
    ) -> Result<(), NriError> {
        let unsupported = [
            ("namespaces", !adj.namespaces.is_empty()),
            ("seccomp policy", adj.seccomp_policy.is_some()),
            ("sysctls", !adj.sysctl.is_empty()),
            ("net devices", !adj.net_devices.is_empty()),
            ("scheduler", adj.scheduler.is_some()),
            ("RDT", adj.rdt.is_some()),
            ("I/O priority", adj.io_priority.is_some()),
            ("memory policy", adj.memory_policy.is_some()),
        ];
        if let Some((what, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(self.refuse(plugin, format!("berth does not adjust {what}")));
        }
        if let Some(oom) = adj.oom_score_adj.as_ref() {
            self.claim(plugin, "oom_score_adj".into())?;
            let value = i32::try_from(oom.value)
                .map_err(|_| self.refuse(plugin, format!("oom_score_adj {}", oom.value)))?;
            if let Some(p) = spec.process_mut() {
                p.set_oom_score_adj(Some(value));
            }
        }
        let mut linux = spec.linux().clone().unwrap_or_default();
        if !adj.cgroups_path.is_empty() {
            if self.built_in {
                return Err(self.refuse(plugin, BUILT_IN_CGROUPS.into()));
            }
            self.claim(plugin, "cgroups path".into())?;
            linux.set_cgroups_path(Some(adj.cgroups_path.clone().into()));
        }
        let mut devices = linux.devices().clone().unwrap_or_default();
        for d in &adj.devices {
            let (path, remove) = removal(&d.path);
            self.claim(plugin, format!("device {path}"))?;
            devices.retain(|x| x.path().to_str() != Some(path));
            if !remove {
                devices.push(self.device(plugin, path, d)?);
            }
        }
        linux.set_devices(Some(devices).filter(|d| !d.is_empty()));
        if let Some(r) = adj.resources.as_ref() {
            let mut resources = linux.resources().clone().unwrap_or_default();
            self.resources(plugin, r, &mut resources)?;
            linux.set_resources(Some(resources));
        }
        spec.set_linux(Some(linux));
        Ok(())
    }

    fn device(
        &self,
        plugin: &str,
        path: &str,
        d: &api::LinuxDevice,
    ) -> Result<LinuxDevice, NriError> {
        let typ = match d.type_.as_str() {
            "c" | "u" => LinuxDeviceType::C,
            "b" => LinuxDeviceType::B,
            "p" => LinuxDeviceType::P,
            other => return Err(self.refuse(plugin, format!("device {path}: type {other:?}"))),
        };
        let mut device = LinuxDevice::default();
        device
            .set_path(path.into())
            .set_typ(typ)
            .set_major(d.major)
            .set_minor(d.minor)
            .set_file_mode(d.file_mode.as_ref().map(|m| m.value))
            .set_uid(d.uid.as_ref().map(|u| u.value))
            .set_gid(d.gid.as_ref().map(|g| g.value));
        Ok(device)
    }

    fn resources(
        &mut self,
        plugin: &str,
        r: &api::LinuxResources,
        out: &mut LinuxResources,
    ) -> Result<(), NriError> {
        if let Some(c) = r.cpu.as_ref() {
            let mut cpu = out.cpu().clone().unwrap_or_default();
            if let Some(v) = c.shares.as_ref() {
                self.claim(plugin, "cpu shares".into())?;
                cpu.set_shares(Some(v.value));
            }
            if let Some(v) = c.quota.as_ref() {
                self.claim(plugin, "cpu quota".into())?;
                cpu.set_quota(Some(v.value));
            }
            if let Some(v) = c.period.as_ref() {
                self.claim(plugin, "cpu period".into())?;
                cpu.set_period(Some(v.value));
            }
            if !c.cpus.is_empty() {
                self.claim(plugin, "cpuset cpus".into())?;
                cpu.set_cpus(Some(c.cpus.clone()));
            }
            if !c.mems.is_empty() {
                self.claim(plugin, "cpuset mems".into())?;
                cpu.set_mems(Some(c.mems.clone()));
            }
            out.set_cpu(Some(cpu));
        }
        if let Some(m) = r.memory.as_ref() {
            let mut memory = out.memory().unwrap_or_default();
            if let Some(v) = m.limit.as_ref() {
                self.claim(plugin, "memory limit".into())?;
                memory.set_limit(Some(v.value));
            }
            if let Some(v) = m.swap.as_ref() {
                self.claim(plugin, "memory swap".into())?;
                memory.set_swap(Some(v.value));
            }
            if let Some(v) = m.reservation.as_ref() {
                self.claim(plugin, "memory reservation".into())?;
                memory.set_reservation(Some(v.value));
            }
            out.set_memory(Some(memory));
        }
        if let Some(p) = r.pids.as_ref() {
            self.claim(plugin, "pids limit".into())?;
            let mut pids = LinuxPids::default();
            pids.set_limit(p.limit);
            out.set_pids(Some(pids));
        }
        if !r.unified.is_empty() {
            let mut unified = out.unified().clone().unwrap_or_default();
            for (k, v) in &r.unified {
                self.claim(plugin, format!("unified {k}"))?;
                unified.insert(k.clone(), v.clone());
            }
            out.set_unified(Some(unified));
        }
        Ok(())
    }
}

/// `("name", true)` for `"-name"`.
fn removal(key: &str) -> (&str, bool) {
    match key.strip_prefix('-') {
        Some(name) => (name, true),
        None => (key, false),
    }
}

const BUILT_IN_HOOKS: &str = "OCI hooks: berth's built-in executor runs none \
    (use a runtime handler backed by runc or crun)";
const BUILT_IN_CGROUPS: &str = "a cgroups path: berth's built-in executor keeps the container \
    in berth's cgroup (use a runtime handler backed by runc or crun)";

fn has_hooks(h: &api::Hooks) -> bool {
    hook_lists(h).iter().any(|list| !list.is_empty())
}

/// Every hook list of an adjustment, one per OCI hook point.
#[allow(deprecated)] // `prestart`: deprecated in OCI, still an NRI hook list
pub(super) fn hook_lists(h: &api::Hooks) -> [&Vec<api::Hook>; 6] {
    [
        &h.prestart,
        &h.create_runtime,
        &h.create_container,
        &h.start_container,
        &h.poststart,
        &h.poststop,
    ]
}

/// Appends the plugin's hooks (hooks accumulate: no owner).
#[allow(deprecated)] // `prestart`: deprecated in OCI, still an NRI hook list
fn add_hooks(spec: &mut Spec, h: &api::Hooks) {
    let mut hooks = spec.hooks().clone().unwrap_or_default();
    let convert = |list: &[api::Hook]| -> Vec<Hook> {
        list.iter()
            .map(|h| {
                let mut hook = Hook::default();
                hook.set_path(h.path.clone().into())
                    .set_args(Some(h.args.clone()).filter(|a| !a.is_empty()))
                    .set_env(Some(h.env.clone()).filter(|e| !e.is_empty()))
                    .set_timeout(h.timeout.as_ref().map(|t| t.value));
                hook
            })
            .collect()
    };
    let join = |old: &Option<Vec<Hook>>, new: &[api::Hook]| -> Option<Vec<Hook>> {
        let mut all = old.clone().unwrap_or_default();
        all.extend(convert(new));
        Some(all).filter(|a| !a.is_empty())
    };
    hooks.set_prestart(join(hooks.prestart(), &h.prestart));
    hooks.set_create_runtime(join(hooks.create_runtime(), &h.create_runtime));
    hooks.set_create_container(join(hooks.create_container(), &h.create_container));
    hooks.set_start_container(join(hooks.start_container(), &h.start_container));
    hooks.set_poststart(join(hooks.poststart(), &h.poststart));
    hooks.set_poststop(join(hooks.poststop(), &h.poststop));
    spec.set_hooks(Some(hooks));
}

#[cfg(test)]
#[path = "adjust_tests.rs"]
mod tests;
