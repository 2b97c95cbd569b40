//! What a RUN step's container may do. Its spec ([`spec`], pure) gives it berth's container
//! defaults: the default capability set (docs/security.md), no new privileges, berth's
//! RuntimeDefault seccomp profile, the default device policy, new mount, pid, ipc, uts and
//! network namespaces (loopback only; the host's network when the build asks for it). Its
//! cgroup ([`StepCgroup`]) is its own, under berth's cgroup parent, limited by `build.*`, and
//! killed and removed when the step ends or is cancelled.

use std::path::Path;

use nix::sys::signal::Signal;
use oci_spec::runtime::{
    Capabilities, LinuxCapabilities, LinuxCpu, LinuxMemory, LinuxNamespaceType, LinuxPids,
    LinuxResources, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};

use super::BuildError;
use crate::cgroup::{Cgroup, Driver, Hierarchy, Resources};
use crate::config::BuildConfig;

/// The CFS period the `build.cpus` quota is measured in, in microseconds.
const CPU_PERIOD: u64 = 100_000;

/// How a RUN step's container is made.
pub struct Isolation<'a> {
    pub limits: &'a BuildConfig,
    /// The host's network instead of a network namespace of its own.
    pub network_host: bool,
    /// `linux.cgroupsPath` of the step's cgroup.
    pub cgroup: Option<String>,
}

/// What runs: argv, environment, working directory, user.
pub struct Command<'a> {
    pub args: &'a [String],
    pub env: &'a [String],
    pub cwd: &'a str,
    pub user: &'a crate::spec::ResolvedUser,
}

/// The OCI spec of a RUN step's container on `rootfs`.
pub fn spec(command: &Command<'_>, rootfs: &Path, iso: &Isolation<'_>) -> Result<Spec, BuildError> {
    let bad = |e: oci_spec::OciSpecError| BuildError::Run(format!("step spec: {e}"));
    let caps: Capabilities = crate::spec::DEFAULT_CAPS.into_iter().collect();
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(caps.clone()))
        .set_effective(Some(caps.clone()))
        .set_permitted(Some(caps.clone()))
        .set_inheritable(Some(Capabilities::new()))
        .set_ambient(Some(Capabilities::new()));
    let user = command.user;
    let process = ProcessBuilder::default()
        .args(command.args.to_vec())
        .env(command.env.to_vec())
        .cwd(match command.cwd {
            "" => "/".to_string(),
            cwd => cwd.to_string(),
        })
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(user.additional_gids.clone())
                .build()
                .map_err(bad)?,
        )
        .capabilities(capabilities)
        .no_new_privileges(true)
        .terminal(false)
        .build()
        .map_err(bad)?;
    let mut spec = Spec::default();
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path(rootfs)
            .readonly(false)
            .build()
            .map_err(bad)?,
    ));
    spec.set_hostname(Some("berth-build".into()));
    let bounding: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
    let seccomp =
        crate::spec::SeccompProfile::runtime_default().resolve(&bounding, crate::spec::node_arch());
    if let Some(linux) = spec.linux_mut() {
        if let Some(namespaces) = linux.namespaces_mut() {
            // No cgroup namespace: the v1 cgroup mounts need none, and the step sees its own
            // cgroup through /proc/self/cgroup like a container without one.
            namespaces.retain(|n| {
                n.typ() != LinuxNamespaceType::Cgroup
                    && (n.typ() != LinuxNamespaceType::Network || !iso.network_host)
            });
        }
        linux.set_seccomp(Some(seccomp));
        linux.set_resources(Some(resources(iso.limits)));
        linux.set_cgroups_path(iso.cgroup.as_ref().map(Into::into));
    }
    Ok(spec)
}

/// The `build.*` limits and the default device policy, as OCI resources.
fn resources(limits: &BuildConfig) -> LinuxResources {
    let mut out = LinuxResources::default();
    out.set_devices(Some(crate::spec::default_device_rules()));
    if limits.memory > 0 {
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(i64::try_from(limits.memory).unwrap_or(i64::MAX)));
        out.set_memory(Some(memory));
    }
    if limits.cpus > 0.0 {
        let mut cpu = LinuxCpu::default();
        cpu.set_quota(Some((limits.cpus * CPU_PERIOD as f64).ceil() as i64))
            .set_period(Some(CPU_PERIOD));
        out.set_cpu(Some(cpu));
    }
    if limits.pids > 0 {
        let mut pids = LinuxPids::default();
        pids.set_limit(limits.pids);
        out.set_pids(Some(pids));
    }
    out
}

/// A RUN step's own cgroup: on drop every process in it is killed and it is removed.
pub struct StepCgroup {
    cgroup: Cgroup,
    driver: Driver,
}

impl StepCgroup {
    /// Makes the cgroup of a step under berth's default cgroup parent, limited by `limits`.
    pub fn create(driver: Driver, limits: &BuildConfig) -> Result<StepCgroup, BuildError> {
        let bad = |e: crate::cgroup::CgroupError| BuildError::Run(format!("step cgroup: {e}"));
        let id = format!("build-{:016x}", rand::random::<u64>());
        let path = driver.container_path("", &id).map_err(bad)?;
        let hierarchy = Hierarchy::detect().map_err(bad)?;
        let cgroup = Cgroup::create(&hierarchy, &path).map_err(bad)?;
        let made = StepCgroup { cgroup, driver };
        made.cgroup
            .apply_new(&Resources::from(&resources(limits)))
            .map_err(bad)?;
        Ok(made)
    }

    /// What the step's spec says as `linux.cgroupsPath`.
    pub fn oci_path(&self) -> String {
        self.driver.oci_path(&self.cgroup.path())
    }
}

impl Drop for StepCgroup {
    fn drop(&mut self) {
        // The helper removes it when the step ends; this is for a helper that could not.
        if !self.cgroup.exists() {
            return;
        }
        if let Err(e) = self.cgroup.kill_all(Signal::SIGKILL) {
            tracing::warn!(cgroup = %self.cgroup.path(), error = %e, "kill a build step");
        }
        if let Err(e) = self.cgroup.delete() {
            tracing::warn!(cgroup = %self.cgroup.path(), error = %e, "remove a build step's cgroup");
        }
    }
}

/// The resources the step's cgroup takes when its process enters it (the runner's side).
pub fn entry_resources(spec: &Spec) -> Resources {
    spec.linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .map(Resources::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(network_host: bool) -> Spec {
        let user = crate::spec::ResolvedUser {
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
        };
        let command = Command {
            args: &["true".to_string()],
            env: &[],
            cwd: "",
            user: &user,
        };
        let limits = BuildConfig::default();
        let iso = Isolation {
            limits: &limits,
            network_host,
            cgroup: Some("/berth/build-1".into()),
        };
        spec(&command, Path::new("/rootfs"), &iso).unwrap()
    }

    #[test]
    fn a_step_gets_the_container_defaults_and_no_host_network() {
        let spec = build(false);
        let process = spec.process().as_ref().unwrap();
        assert_eq!(process.no_new_privileges(), Some(true));
        let caps = process.capabilities().as_ref().unwrap();
        assert_eq!(
            caps.bounding().as_ref().unwrap().len(),
            crate::spec::DEFAULT_CAPS.len()
        );
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_some());
        let namespaces: Vec<_> = linux
            .namespaces()
            .iter()
            .flatten()
            .map(|n| n.typ())
            .collect();
        assert!(namespaces.contains(&LinuxNamespaceType::Network));
        let resources = linux.resources().as_ref().unwrap();
        assert_eq!(
            resources.pids().as_ref().map(|p| p.limit()),
            Some(BuildConfig::default().pids)
        );
        assert!(resources.memory().is_some() && resources.cpu().is_some());
        assert!(!resources.devices().as_ref().unwrap().is_empty());
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/berth/build-1"))
        );
    }

    #[test]
    fn network_host_keeps_the_hosts_network() {
        let spec = build(true);
        let linux = spec.linux().as_ref().unwrap();
        assert!(
            !linux
                .namespaces()
                .iter()
                .flatten()
                .any(|n| n.typ() == LinuxNamespaceType::Network)
        );
    }
}
