//! The CDI spec file format (versions 0.3.0 to 1.1.0, YAML or JSON): its types, parsing with
//! unknown fields refused, and the checks a file must pass before any of its devices is offered.
//! Spec files are hostile input: every name, path, device type and permission is checked here.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path};

use serde::Deserialize;

use super::names::{check_device_name, parse_kind};

/// The newest CDI spec version berth reads.
pub const CURRENT_VERSION: &str = "1.1.0";

/// Every released version, oldest first. 0.1.0 and 0.2.0 read as 0.3.0 (the first tagged
/// release); a file declaring a version must not use fields added after it.
const VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.1.0",
];

/// Hook names the OCI runtime spec defines.
pub const HOOK_NAMES: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// One CDI spec file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpecFile {
    pub cdi_version: String,
    /// `vendor/class`.
    pub kind: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub devices: Vec<Device>,
    /// Applied once when any device of this file is injected.
    #[serde(default)]
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Device {
    pub name: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerEdits {
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub device_nodes: Vec<DeviceNode>,
    #[serde(default)]
    pub net_devices: Vec<NetDevice>,
    #[serde(default)]
    pub hooks: Vec<Hook>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub intel_rdt: Option<IntelRdt>,
    #[serde(default, rename = "additionalGids")]
    pub additional_gids: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceNode {
    /// Inside the container.
    pub path: String,
    /// On the host; `path` when absent (0.5.0).
    #[serde(default)]
    pub host_path: Option<String>,
    /// `b`, `c`, `u` or `p`; taken from the host node when absent.
    #[serde(default, rename = "type")]
    pub typ: Option<String>,
    #[serde(default)]
    pub major: Option<i64>,
    #[serde(default)]
    pub minor: Option<i64>,
    /// Permission bits (Go's `os.FileMode`: only the low 9 bits are used).
    #[serde(default)]
    pub file_mode: Option<u32>,
    /// cgroup access, a subset of `rwm`; empty or absent = `rwm`, `none` = no access rule.
    #[serde(default)]
    pub permissions: Option<String>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default)]
    pub options: Vec<String>,
    /// 0.4.0.
    #[serde(default, rename = "type")]
    pub typ: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Hook {
    pub hook_name: String,
    pub path: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub timeout: Option<i64>,
}

/// 0.7.0; `schemata` and `enableMonitoring` 1.1.0, `enableCMT`/`enableMBM` before it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntelRdt {
    #[serde(default, rename = "closID")]
    pub clos_id: Option<String>,
    #[serde(default)]
    pub l3_cache_schema: Option<String>,
    #[serde(default)]
    pub mem_bw_schema: Option<String>,
    #[serde(default)]
    pub schemata: Option<Vec<String>>,
    #[serde(default)]
    pub enable_monitoring: bool,
    #[serde(default, rename = "enableCMT")]
    pub enable_cmt: bool,
    #[serde(default, rename = "enableMBM")]
    pub enable_mbm: bool,
}

/// 1.1.0: a host interface moved into the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetDevice {
    pub host_interface_name: String,
    pub name: String,
}

impl ContainerEdits {
    pub fn is_empty(&self) -> bool {
        self == &ContainerEdits::default()
    }

    /// Appends `other`'s edits (a later Intel RDT setting replaces an earlier one).
    pub fn append(&mut self, other: &ContainerEdits) {
        self.env.extend(other.env.iter().cloned());
        self.device_nodes.extend(other.device_nodes.iter().cloned());
        self.net_devices.extend(other.net_devices.iter().cloned());
        self.hooks.extend(other.hooks.iter().cloned());
        self.mounts.extend(other.mounts.iter().cloned());
        if other.intel_rdt.is_some() {
            self.intel_rdt.clone_from(&other.intel_rdt);
        }
        self.additional_gids.extend(&other.additional_gids);
    }
}

/// Parses a spec file: JSON when `path` ends in `.json`, else YAML.
pub fn parse(path: &Path, text: &str) -> Result<SpecFile, String> {
    let spec: SpecFile = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())?
    };
    validate(&spec)?;
    Ok(spec)
}

/// Checks a parsed spec: version, kind, device names (unique), and every edit.
pub fn validate(spec: &SpecFile) -> Result<(), String> {
    let declared = version_index(&spec.cdi_version)
        .ok_or_else(|| format!("unknown cdiVersion {:?}", spec.cdi_version))?;
    let needed = required_version(spec);
    if needed > declared {
        return Err(format!(
            "cdiVersion {} is too old for the fields used: at least {} is needed",
            spec.cdi_version, VERSIONS[needed]
        ));
    }
    let old_rdt = |e: &ContainerEdits| {
        e.intel_rdt
            .as_ref()
            .is_some_and(|r| r.enable_cmt || r.enable_mbm)
    };
    let mut all_edits = spec.devices.iter().map(|d| &d.container_edits);
    if declared >= index("1.1.0") && (old_rdt(&spec.container_edits) || all_edits.any(old_rdt)) {
        return Err("intelRdt: enableCMT and enableMBM were removed in CDI 1.1.0".into());
    }
    parse_kind(&spec.kind)?;
    if spec.devices.is_empty() {
        return Err("no devices".into());
    }
    let mut seen = HashSet::new();
    for d in &spec.devices {
        check_device_name(&d.name)?;
        if !seen.insert(d.name.as_str()) {
            return Err(format!("device {:?} is defined twice", d.name));
        }
        if d.container_edits.is_empty() {
            return Err(format!("device {:?} has no container edits", d.name));
        }
        validate_edits(&d.container_edits).map_err(|e| format!("device {:?}: {e}", d.name))?;
    }
    validate_edits(&spec.container_edits).map_err(|e| format!("containerEdits: {e}"))
}

fn version_index(v: &str) -> Option<usize> {
    let v = v.strip_prefix('v').unwrap_or(v);
    VERSIONS.iter().position(|known| *known == v)
}

fn index(v: &str) -> usize {
    version_index(v).expect("a known version")
}

/// The oldest version that has every field the spec uses.
fn required_version(spec: &SpecFile) -> usize {
    let mut edits = vec![&spec.container_edits];
    edits.extend(spec.devices.iter().map(|d| &d.container_edits));
    let mut needed = index("0.3.0");
    let mut need = |v: &str| needed = needed.max(index(v));
    for e in &edits {
        if e.intel_rdt
            .as_ref()
            .is_some_and(|r| r.schemata.is_some() || r.enable_monitoring)
            || !e.net_devices.is_empty()
        {
            need("1.1.0");
        }
        if e.intel_rdt.is_some() || !e.additional_gids.is_empty() {
            need("0.7.0");
        }
        if e.device_nodes.iter().any(|n| n.host_path.is_some()) {
            need("0.5.0");
        }
        if e.mounts.iter().any(|m| m.typ.is_some()) {
            need("0.4.0");
        }
    }
    let annotated =
        !spec.annotations.is_empty() || spec.devices.iter().any(|d| !d.annotations.is_empty());
    let dotted_class = spec
        .kind
        .split_once('/')
        .is_some_and(|(_, c)| c.contains('.'));
    if annotated || dotted_class {
        need("0.6.0");
    }
    if spec
        .devices
        .iter()
        .any(|d| d.name.starts_with(|c: char| c.is_ascii_digit()))
    {
        need("0.5.0");
    }
    needed
}

/// A bind mount: type `bind`, or a `bind`/`rbind` option.
pub fn is_bind(m: &Mount) -> bool {
    m.typ.as_deref() == Some("bind") || m.options.iter().any(|o| o == "bind" || o == "rbind")
}

/// An absolute path without `..` (and, being text from a file, no NUL).
pub fn check_path(what: &str, path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if path.is_empty() || !p.is_absolute() {
        return Err(format!("{what} {path:?} is not an absolute path"));
    }
    if path.contains('\0') {
        return Err(format!("{what} {path:?} contains a NUL byte"));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{what} {path:?} contains \"..\""));
    }
    Ok(())
}

fn check_env(what: &str, env: &[String]) -> Result<(), String> {
    for e in env {
        if e.find('=').is_none_or(|i| i == 0) || e.contains('\0') {
            return Err(format!("{what} {e:?} is not NAME=value"));
        }
    }
    Ok(())
}

fn validate_edits(e: &ContainerEdits) -> Result<(), String> {
    check_env("env", &e.env)?;
    for n in &e.device_nodes {
        check_path("device node path", &n.path)?;
        if let Some(host) = &n.host_path {
            check_path("device node hostPath", host)?;
        }
        match n.typ.as_deref() {
            None | Some("") | Some("b" | "c" | "u" | "p") => {}
            Some(t) => return Err(format!("device node {}: invalid type {t:?}", n.path)),
        }
        for (what, v) in [("major", n.major), ("minor", n.minor)] {
            if v.is_some_and(|v| !(0..=i64::from(u32::MAX)).contains(&v)) {
                return Err(format!("device node {}: {what} out of range", n.path));
            }
        }
        match n.permissions.as_deref() {
            None | Some("" | "none") => {}
            Some(p) if p.chars().all(|c| "rwm".contains(c)) => {}
            Some(p) => return Err(format!("device node {}: invalid permissions {p:?}", n.path)),
        }
    }
    for m in &e.mounts {
        check_path("mount containerPath", &m.container_path)?;
        let on = &m.container_path;
        if m.options.iter().any(|o| o.is_empty() || o.contains('\0')) {
            return Err(format!("mount on {on}: invalid options {:?}", m.options));
        }
        if is_bind(m) {
            check_path("mount hostPath", &m.host_path)?;
            continue;
        }
        match m.typ.as_deref() {
            Some("tmpfs") => {}
            None | Some("" | "none") => {
                return Err(format!(
                    "mount on {on}: neither a bind mount nor a filesystem type"
                ));
            }
            Some(t) => {
                return Err(format!(
                    "mount on {on}: filesystem type {t:?} is not allowed (bind mounts and tmpfs are)"
                ));
            }
        }
    }
    for h in &e.hooks {
        if !HOOK_NAMES.contains(&h.hook_name.as_str()) {
            return Err(format!("invalid hook name {:?}", h.hook_name));
        }
        check_path("hook path", &h.path)?;
        check_env("hook env", &h.env)?;
        if h.timeout.is_some_and(|t| t <= 0) {
            return Err(format!(
                "hook {}: timeout must be greater than zero",
                h.path
            ));
        }
    }
    if let Some(rdt) = &e.intel_rdt
        && let Some(clos) = rdt.clos_id.as_deref()
        && clos != "/"
        && (clos.len() >= 4096 || clos == "." || clos == ".." || clos.contains(['/', '\n', '\0']))
    {
        return Err(format!("intelRdt: invalid closID {clos:?}"));
    }
    let mut hosts = HashSet::new();
    let mut names = HashSet::new();
    for n in &e.net_devices {
        if n.host_interface_name.is_empty() || n.name.is_empty() {
            return Err("netDevices: empty interface name".into());
        }
        if !hosts.insert(&n.host_interface_name) || !names.insert(&n.name) {
            return Err(format!(
                "netDevices: {} is given twice",
                n.host_interface_name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
