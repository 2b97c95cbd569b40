//! `linux.seccomp`: the CRI seccomp choice (Unconfined, RuntimeDefault, Localhost) turned into
//! an OCI seccomp section. Profiles are read in the Docker/containerd file format (a superset of
//! OCI's: `archMap`, and `includes`/`excludes` by capability or architecture per entry), which
//! berth's own default profile, `seccomp_default.json`, also uses. Resolving a profile for a
//! container keeps the entries whose conditions the container's bounding capabilities and the
//! node's architecture meet.

use std::path::PathBuf;

use crate::cri_api::{
    LinuxContainerSecurityContext, SecurityProfile, security_profile::ProfileType,
};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSyscall,
};
use serde::Deserialize;

use super::SpecError;

/// berth's RuntimeDefault profile (see docs/security.md).
const DEFAULT_PROFILE: &str = include_str!("seccomp_default.json");

/// The seccomp confinement a container asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompChoice {
    /// No filter.
    Unconfined,
    /// berth's default profile.
    RuntimeDefault,
    /// A profile file on the node, read by the caller.
    Localhost(Box<SeccompProfile>),
}

/// Where a container's profile comes from: `Localhost(path)` still has to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompSource {
    Unconfined,
    RuntimeDefault,
    Localhost(PathBuf),
}

/// What the CRI security context asks for: the `seccomp` profile, else the deprecated
/// `seccomp_profile_path` (`runtime/default`, `docker/default`, `unconfined`,
/// `localhost/<path>`); nothing means unconfined, as under containerd. Privileged containers
/// are never confined.
#[allow(deprecated)] // older kubelets still send the string form
pub fn seccomp_source(
    sc: Option<&LinuxContainerSecurityContext>,
) -> Result<SeccompSource, SpecError> {
    let Some(sc) = sc else {
        return Ok(SeccompSource::Unconfined);
    };
    if sc.privileged {
        return Ok(SeccompSource::Unconfined);
    }
    let source = match &sc.seccomp {
        Some(profile) => from_profile(profile)?,
        None => match sc.seccomp_profile_path.as_str() {
            "" | "unconfined" => SeccompSource::Unconfined,
            "runtime/default" | "docker/default" => SeccompSource::RuntimeDefault,
            other => match other.strip_prefix("localhost/") {
                Some(path) => SeccompSource::Localhost(PathBuf::from(path)),
                None => return Err(SpecError::Seccomp(format!("unknown profile {other:?}"))),
            },
        },
    };
    if let SeccompSource::Localhost(path) = &source
        && !path.is_absolute()
    {
        let msg = format!("localhost profile {:?} is not an absolute path", path);
        return Err(SpecError::Seccomp(msg));
    }
    Ok(source)
}

fn from_profile(profile: &SecurityProfile) -> Result<SeccompSource, SpecError> {
    match ProfileType::try_from(profile.profile_type) {
        Ok(ProfileType::RuntimeDefault) => Ok(SeccompSource::RuntimeDefault),
        Ok(ProfileType::Unconfined) => Ok(SeccompSource::Unconfined),
        Ok(ProfileType::Localhost) => {
            let path = profile.localhost_ref.as_str();
            let path = path.strip_prefix("localhost/").unwrap_or(path);
            Ok(SeccompSource::Localhost(PathBuf::from(path)))
        }
        Err(_) => Err(SpecError::Seccomp(format!(
            "unknown profile type {}",
            profile.profile_type
        ))),
    }
}

/// A seccomp profile file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<Arch>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(default)]
    listener_path: Option<PathBuf>,
    #[serde(default)]
    syscalls: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Vec<Arch>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(default)]
    names: Vec<String>,
    /// Docker's older single-name form.
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

/// Docker's per-entry conditions. `minKernel` is accepted and not checked: berth needs a kernel
/// newer than any such bound in the profiles in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

impl SeccompProfile {
    /// Parses a profile file's JSON; `what` names it in errors.
    pub fn parse(json: &str, what: &str) -> Result<SeccompProfile, SpecError> {
        serde_json::from_str(json)
            .map_err(|e| SpecError::Seccomp(format!("parse profile {what}: {e}")))
    }

    /// berth's RuntimeDefault profile.
    pub fn runtime_default() -> SeccompProfile {
        SeccompProfile::parse(DEFAULT_PROFILE, "runtime/default")
            .expect("the embedded default seccomp profile parses")
    }

    /// The OCI section for a container holding the `bounding` capabilities (with or without
    /// `CAP_`) on a node of architecture `arch` (Go's names: `amd64`, `arm64`).
    pub fn resolve(&self, bounding: &[String], arch: &str) -> LinuxSeccomp {
        let native = native_arch(arch);
        let mut arches = self.architectures.clone();
        if let Some(map) = self
            .arch_map
            .iter()
            .find(|m| Some(m.architecture) == native)
        {
            arches = std::iter::once(map.architecture)
                .chain(map.sub_architectures.iter().copied())
                .collect();
        }
        let bare = |c: &str| {
            let upper = c.to_ascii_uppercase();
            upper.strip_prefix("CAP_").unwrap_or(&upper).to_string()
        };
        let held: Vec<String> = bounding.iter().map(|b| bare(b)).collect();
        let has_cap = |c: &String| held.contains(&bare(c));
        let applies = |e: &Entry| {
            e.includes.caps.iter().all(has_cap)
                && (e.includes.arches.is_empty() || e.includes.arches.iter().any(|a| a == arch))
                && (e.excludes.caps.is_empty() || !e.excludes.caps.iter().any(has_cap))
                && !e.excludes.arches.iter().any(|a| a == arch)
        };
        let syscalls: Vec<LinuxSyscall> = self
            .syscalls
            .iter()
            .filter(|e| applies(e))
            .map(|e| {
                let mut s = LinuxSyscall::default();
                let names = e.names.iter().chain(e.name.iter()).cloned().collect();
                s.set_names(names)
                    .set_action(e.action)
                    .set_errno_ret(e.errno_ret)
                    .set_args(e.args.clone().filter(|a| !a.is_empty()));
                s
            })
            .collect();
        let mut out = LinuxSeccomp::default();
        out.set_default_action(self.default_action)
            .set_default_errno_ret(self.default_errno_ret)
            .set_architectures((!arches.is_empty()).then_some(arches))
            .set_flags((!self.flags.is_empty()).then(|| self.flags.clone()))
            .set_listener_path(self.listener_path.clone())
            .set_syscalls((!syscalls.is_empty()).then_some(syscalls));
        out
    }
}

fn native_arch(arch: &str) -> Option<Arch> {
    match arch {
        "amd64" => Some(Arch::ScmpArchX86_64),
        "arm64" => Some(Arch::ScmpArchAarch64),
        _ => None,
    }
}

/// The node's architecture in Go's (and Docker profiles') names.
pub fn node_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `linux.seccomp` for `choice`, given the container's bounding set; `None` when privileged.
pub(super) fn section(
    choice: &SeccompChoice,
    privileged: bool,
    bounding: &[String],
) -> Option<LinuxSeccomp> {
    if privileged {
        return None;
    }
    match choice {
        SeccompChoice::Unconfined => None,
        SeccompChoice::RuntimeDefault => {
            Some(SeccompProfile::runtime_default().resolve(bounding, node_arch()))
        }
        SeccompChoice::Localhost(profile) => Some(profile.resolve(bounding, node_arch())),
    }
}

#[cfg(test)]
#[path = "seccomp_tests.rs"]
mod tests;
