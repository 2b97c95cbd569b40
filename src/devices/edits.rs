//! CDI container edits applied to a container's OCI spec. Pure: the host lookups were done when
//! the devices were resolved ([`Step::nodes`]). What the pod's runtime handler cannot carry out is
//! refused, naming the device, rather than dropped: OCI hooks and Intel RDT need an external OCI
//! runtime (runc), and moving host network interfaces is not supported at all.

use std::path::{Component, Path};

use oci_spec::runtime::{
    Hook, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxIntelRdt, Mount, Spec,
};

use super::error::CdiError;
use super::host::HostNode;
use super::schema::{self, ContainerEdits};
use crate::spec::raw_env;

/// The edits of one requested device (or of its spec file's common part), ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The requested device these edits come for, named in errors.
    pub device: String,
    pub edits: ContainerEdits,
    /// `edits.device_nodes` completed from the host, in the same order.
    pub nodes: Vec<HostNode>,
}

/// Who runs the container: what it can do with the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler<'a> {
    /// berth's built-in executor: no hooks, no Intel RDT.
    BuiltIn,
    /// An external OCI runtime (runc, crun) by handler name.
    External(&'a str),
}

/// Applies `steps` in order to `spec`.
pub fn apply(spec: &mut Spec, steps: &[Step], handler: Handler) -> Result<(), CdiError> {
    for step in steps {
        check(step, handler)?;
    }
    for step in steps {
        apply_one(spec, step);
    }
    Ok(())
}

/// Refuses an edit the handler (or berth) cannot carry out.
fn check(step: &Step, handler: Handler) -> Result<(), CdiError> {
    let refuse = |why: String| {
        Err(CdiError::Inject {
            name: step.device.clone(),
            why,
        })
    };
    let e = &step.edits;
    if let Some(n) = e.net_devices.first() {
        return refuse(format!(
            "its spec moves host network interface {:?} into the container (netDevices), \
             which berth does not support",
            n.host_interface_name
        ));
    }
    if let Some(rdt) = &e.intel_rdt
        && (rdt.schemata.is_some() || rdt.enable_monitoring)
    {
        return refuse(
            "its spec sets intelRdt schemata or enableMonitoring, which the OCI runtime spec \
             version berth writes (1.2.0) cannot carry"
                .into(),
        );
    }
    if handler == Handler::BuiltIn {
        let needs_runtime = |what: &str| {
            refuse(format!(
                "its spec needs {what}, which the built-in runtime handler does not support; \
                 run the pod with an OCI runtime handler such as runc"
            ))
        };
        if let Some(h) = e.hooks.first() {
            return needs_runtime(&format!("an OCI {} hook ({})", h.hook_name, h.path));
        }
        if e.intel_rdt.is_some() {
            return needs_runtime("Intel RDT (intelRdt)");
        }
    }
    Ok(())
}

fn apply_one(spec: &mut Spec, step: &Step) {
    let e = &step.edits;
    add_env(spec, &e.env);
    let process_ids = spec
        .process()
        .as_ref()
        .map(|p| (p.user().uid(), p.user().gid()));
    for node in &step.nodes {
        add_device(spec, node, process_ids);
    }
    if !e.mounts.is_empty() {
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for m in &e.mounts {
            let destination = Path::new(&m.container_path);
            mounts.retain(|old| old.destination() != destination);
            let bind = schema::is_bind(m);
            let mut mount = Mount::default();
            mount
                .set_destination(destination.to_path_buf())
                .set_source(Some(m.host_path.clone().into()))
                .set_typ(Some(if bind {
                    "bind".into()
                } else {
                    m.typ.clone().unwrap_or_default()
                }))
                .set_options((!m.options.is_empty()).then(|| m.options.clone()));
            mounts.push(mount);
        }
        // Parents before children, otherwise in order.
        mounts.sort_by_key(|m| depth(m.destination()));
        spec.set_mounts(Some(mounts));
    }
    for h in &e.hooks {
        add_hook(spec, h);
    }
    if let Some(rdt) = &e.intel_rdt {
        let mut out = LinuxIntelRdt::default();
        out.set_clos_id(rdt.clos_id.clone())
            .set_l3_cache_schema(rdt.l3_cache_schema.clone())
            .set_mem_bw_schema(rdt.mem_bw_schema.clone())
            .set_enable_cmt(rdt.enable_cmt.then_some(true))
            .set_enable_mbm(rdt.enable_mbm.then_some(true));
        if let Some(linux) = spec.linux_mut() {
            linux.set_intel_rdt(Some(out));
        }
    }
    let gids: Vec<u32> = e
        .additional_gids
        .iter()
        .copied()
        .filter(|g| *g != 0)
        .collect();
    if let (false, Some(process)) = (gids.is_empty(), spec.process_mut()) {
        let mut user = process.user().clone();
        let mut all = user.additional_gids().clone().unwrap_or_default();
        for gid in gids {
            if !all.contains(&gid) {
                all.push(gid);
            }
        }
        user.set_additional_gids(Some(all));
        process.set_user(user);
    }
}

/// Number of normal components: `/` 0, `/dev` 1, `/dev/x` 2.
fn depth(path: &Path) -> usize {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// Sets each `NAME=value`, replacing an entry of the same name (also in the exact-bytes
/// annotation, when the spec has one).
fn add_env(spec: &mut Spec, env: &[String]) {
    if env.is_empty() {
        return;
    }
    let set = |list: &mut Vec<Vec<u8>>| {
        for entry in env {
            let key = entry.split('=').next().unwrap_or_default();
            let same = |e: &Vec<u8>| e.split(|b| *b == b'=').next() == Some(key.as_bytes());
            match list.iter_mut().find(|e| same(e)) {
                Some(old) => *old = entry.as_bytes().to_vec(),
                None => list.push(entry.as_bytes().to_vec()),
            }
        }
    };
    if let Some(process) = spec.process_mut() {
        let mut list: Vec<Vec<u8>> = process
            .env()
            .iter()
            .flatten()
            .map(|e| e.as_bytes().to_vec())
            .collect();
        set(&mut list);
        let text = list
            .into_iter()
            .map(|e| String::from_utf8_lossy(&e).into_owned());
        process.set_env(Some(text.collect()));
    }
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    if let Some(exact) = annotations.get(raw_env::ANNOTATION)
        && let Some(mut list) = raw_env::decode(exact)
    {
        set(&mut list);
        let (_, encoded) = raw_env::split(&list);
        // Still not all UTF-8 (the CRI entry that made it is still there).
        if let Some(encoded) = encoded {
            annotations.insert(raw_env::ANNOTATION.into(), encoded);
            spec.set_annotations(Some(annotations));
        }
    }
}

/// Adds (or replaces, by path) a device node and allows its access in the device cgroup.
fn add_device(spec: &mut Spec, node: &HostNode, process_ids: Option<(u32, u32)>) {
    let Some(linux) = spec.linux_mut() else {
        return;
    };
    let (uid, gid) = process_ids.unwrap_or_default();
    let mut device = LinuxDevice::default();
    device
        .set_path(node.path.clone())
        .set_typ(node.typ)
        .set_major(node.major)
        .set_minor(node.minor)
        .set_file_mode(node.file_mode)
        .set_uid(node.uid.or((uid > 0).then_some(uid)))
        .set_gid(node.gid.or((gid > 0).then_some(gid)));
    let mut devices = linux.devices().clone().unwrap_or_default();
    devices.retain(|d| d.path() != &node.path);
    devices.push(device);
    linux.set_devices(Some(devices));
    let Some(access) = node.access.clone() else {
        return;
    };
    if node.typ == LinuxDeviceType::P {
        return;
    }
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(true)
        .set_typ(Some(if node.typ == LinuxDeviceType::B {
            LinuxDeviceType::B
        } else {
            LinuxDeviceType::C
        }))
        .set_major(Some(node.major))
        .set_minor(Some(node.minor))
        .set_access(Some(access));
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut rules = resources.devices().clone().unwrap_or_default();
    rules.push(rule);
    resources.set_devices(Some(rules));
    linux.set_resources(Some(resources));
}

#[allow(deprecated)] // `prestart`: deprecated in OCI, still a CDI hook name runc honours
fn add_hook(spec: &mut Spec, h: &schema::Hook) {
    let mut hook = Hook::default();
    hook.set_path(h.path.clone().into())
        .set_args((!h.args.is_empty()).then(|| h.args.clone()))
        .set_env((!h.env.is_empty()).then(|| h.env.clone()))
        .set_timeout(h.timeout);
    let mut hooks = spec.hooks().clone().unwrap_or_default();
    let list = match h.hook_name.as_str() {
        "prestart" => hooks.prestart().clone(),
        "createRuntime" => hooks.create_runtime().clone(),
        "createContainer" => hooks.create_container().clone(),
        "startContainer" => hooks.start_container().clone(),
        "poststart" => hooks.poststart().clone(),
        _ => hooks.poststop().clone(),
    };
    let mut list = list.unwrap_or_default();
    list.push(hook);
    let list = Some(list);
    match h.hook_name.as_str() {
        "prestart" => hooks.set_prestart(list),
        "createRuntime" => hooks.set_create_runtime(list),
        "createContainer" => hooks.set_create_container(list),
        "startContainer" => hooks.set_start_container(list),
        "poststart" => hooks.set_poststart(list),
        _ => hooks.set_poststop(list),
    };
    spec.set_hooks(Some(hooks));
}

#[cfg(test)]
#[path = "edits_tests.rs"]
mod tests;
