//! Pod sandboxes and containers: their records and state machines (`records`), the operations
//! kubelet drives (one file per family), and the seams they use: each pod's shim
//! (`crate::shimclient`), the pod network (`crate::network::PodNetwork`) and the host's mounts
//! and cgroups (`host`). `tests` runs the state machines over fakes of all of them, without root.
//!
//! Crash safety: every creation, stop and removal writes an intent (`intents`) before its first
//! side effect; `recovery` (whose top lists the restart assumptions) undoes or finishes them.

mod cdi;
mod container;
mod container_plan;
mod container_query;
mod container_stop;
mod devices;
pub mod dirs;
pub mod error;
pub mod events;
mod exits;
pub mod handlers;
pub mod host;
pub(crate) mod image_etc;
pub mod image_volumes;
pub mod intents;
pub mod metrics;
pub mod net_dev;
pub mod nri_seam;
pub mod pod_cidr;
mod pod_resources;
pub mod records;
mod recovery;
mod sandbox;
mod sandbox_network;
mod sandbox_plan;
mod security;
pub mod stats;
mod stop_signal;
mod streaming;
mod teardown;
#[cfg(test)]
pub(crate) mod tests;
mod undo;
pub mod userns_probe;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::cgroup::Hierarchy;
use crate::image::service::ImageService;
use crate::network::PodNetwork;
use crate::shimclient::{PodShim, ShimLauncher};
use crate::store::{Store, Table};
pub use error::RuntimeError;
use records::{ContainerRecord, SandboxRecord};

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Where the runtime keeps things and what the node offers.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    pub root_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Configured external runtime handlers beside the built-in one (""), checked.
    pub handlers: Vec<handlers::Handler>,
    /// The node's CDI specs (`ContainerConfig.cdi_devices`, `cdi.k8s.io/*` annotations).
    pub cdi: Arc<crate::devices::Registry>,
    /// Who makes pod and container cgroups (kubelet's `cgroupDriver` matches it).
    pub cgroup_driver: crate::cgroup::Driver,
    /// Handlers ([`crate::DEFAULT_HANDLER`] for the built-in executor) whose privileged
    /// containers do not get the host's devices (`privileged_without_host_devices`).
    pub without_host_devices: Vec<String>,
}

pub struct Runtime {
    settings: RuntimeSettings,
    db: Arc<Store>,
    images: Arc<ImageService>,
    launcher: Arc<dyn ShimLauncher>,
    /// The pod network (CNI) seam.
    network: Arc<dyn PodNetwork>,
    /// Mounts and cgroups (the seam that needs root).
    effects: Arc<dyn host::HostOps>,
    shims: Mutex<HashMap<String, Arc<dyn PodShim>>>,
    cgroups: Option<Hierarchy>,
    host: crate::spec::Host,
    /// Container ids as their exits are recorded (StopContainer waits on it).
    exited: broadcast::Sender<String>,
    /// Sandbox and container names being created right now.
    reserved: Mutex<HashSet<String>>,
    events: broadcast::Sender<events::Event>,
    cpu_samples: stats::CpuSamples,
    /// The pod CIDR from kubelet's `UpdateRuntimeConfig`.
    pub pod_cidr: pod_cidr::PodCidr,
    /// NRI plugins' lifecycle hooks (`nri_seam::NoNri` when NRI is off).
    nri: Arc<dyn nri_seam::NriHooks>,
}

impl Runtime {
    pub fn new(
        settings: RuntimeSettings,
        db: Arc<Store>,
        images: Arc<ImageService>,
        launcher: Arc<dyn ShimLauncher>,
        network: Arc<dyn PodNetwork>,
        nri: Arc<dyn nri_seam::NriHooks>,
    ) -> Arc<Runtime> {
        let cgroups = match Hierarchy::detect() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "no cgroup hierarchy: containers cannot be created");
                None
            }
        };
        let effects = Arc::new(host::RealHost {
            cgroups: cgroups.clone(),
        });
        Runtime::assemble(
            settings, db, images, launcher, network, effects, cgroups, nri,
        )
    }

    /// A runtime over the given seams (`new` passes the real ones; unit tests pass fakes).
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        settings: RuntimeSettings,
        db: Arc<Store>,
        images: Arc<ImageService>,
        launcher: Arc<dyn ShimLauncher>,
        network: Arc<dyn PodNetwork>,
        effects: Arc<dyn host::HostOps>,
        cgroups: Option<Hierarchy>,
        nri: Arc<dyn nri_seam::NriHooks>,
    ) -> Arc<Runtime> {
        let host = crate::spec::Host {
            cgroup_v2: cgroups
                .as_ref()
                .is_some_and(|h| h.mode() == crate::cgroup::Mode::V2),
            swap_controller: false,
            hugetlb_controller: cgroups
                .as_ref()
                .is_some_and(|h| h.has_controller("hugetlb")),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            capabilities: bounding_capabilities(),
        };
        Arc::new(Runtime {
            settings,
            db,
            images,
            launcher,
            network,
            effects,
            shims: Mutex::default(),
            cgroups,
            host,
            exited: broadcast::channel(1024).0,
            reserved: Mutex::default(),
            events: broadcast::channel(events::EVENT_BUFFER).0,
            cpu_samples: stats::CpuSamples::default(),
            pod_cidr: pod_cidr::PodCidr::default(),
            nri,
        })
    }

    /// Whether pods can be networked (`Status` NetworkReady).
    pub fn network_readiness(&self) -> crate::network::Readiness {
        self.network.readiness()
    }

    /// How many pod shims berthd is connected to.
    pub fn shim_count(&self) -> usize {
        self.shims.lock().expect("shims lock").len()
    }

    fn shim(&self, sandbox_id: &str) -> Result<Arc<dyn PodShim>> {
        self.shims
            .lock()
            .expect("shims lock")
            .get(sandbox_id)
            .cloned()
            .ok_or_else(|| RuntimeError::ShimNotRunning(sandbox_id.to_string()))
    }

    /// Reserves a name for the duration of a creation; released when the guard drops.
    fn reserve(&self, name: String) -> Result<Reservation<'_>> {
        let mut reserved = self.reserved.lock().expect("reserved lock");
        if !reserved.insert(name.clone()) {
            return Err(RuntimeError::NameReserved(name));
        }
        Ok(Reservation {
            runtime: self,
            name,
        })
    }

    fn sandboxes(&self) -> Result<Vec<SandboxRecord>> {
        let rows: Vec<(String, SandboxRecord)> = self.db.read(|r| r.list(Table::Sandboxes))?;
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }

    fn containers(&self) -> Result<Vec<ContainerRecord>> {
        let rows: Vec<(String, ContainerRecord)> = self.db.read(|r| r.list(Table::Containers))?;
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }

    /// A sandbox by full id or unique id prefix.
    fn sandbox(&self, id: &str) -> Result<SandboxRecord> {
        self.find(Table::Sandboxes, id, "pod sandbox")
    }

    /// A container by full id or unique id prefix.
    fn container(&self, id: &str) -> Result<ContainerRecord> {
        self.find(Table::Containers, id, "container")
    }

    /// The one record of `table` whose id is `id`, or else starts with it. The exact id, as
    /// kubelet always sends it, is one lookup; only a prefix (crictl) scans the table.
    fn find<T: serde::de::DeserializeOwned>(
        &self,
        table: Table,
        id: &str,
        what: &'static str,
    ) -> Result<T> {
        if id.is_empty() {
            return Err(RuntimeError::InvalidArgument(format!("{what} id is empty")));
        }
        if let Some(record) = self.db.read(|r| r.get(table, id))? {
            return Ok(record);
        }
        let rows: Vec<(String, T)> = self.db.read(|r| r.list(table))?;
        let mut matches: Vec<T> = rows
            .into_iter()
            .filter(|(key, _)| key.starts_with(id))
            .map(|(_, record)| record)
            .collect();
        match matches.len() {
            0 => Err(RuntimeError::NotFound {
                what,
                id: id.to_string(),
            }),
            1 => Ok(matches.remove(0)),
            _ => Err(RuntimeError::Ambiguous {
                what,
                id: id.to_string(),
            }),
        }
    }

    /// Applies `f` to a stored sandbox record in one transaction.
    fn update_sandbox(
        &self,
        id: &str,
        f: impl FnOnce(&mut SandboxRecord),
    ) -> Result<SandboxRecord> {
        Ok(self.db.write(|w| {
            let mut record: SandboxRecord =
                w.get(Table::Sandboxes, id)?
                    .ok_or_else(|| crate::store::StoreError::Missing {
                        table: Table::Sandboxes,
                        key: id.to_string(),
                    })?;
            f(&mut record);
            w.put(Table::Sandboxes, id, &record)?;
            Ok(record)
        })?)
    }

    /// Applies `f` to a stored container record in one transaction.
    fn update_container(
        &self,
        id: &str,
        f: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord> {
        Ok(self.db.write(|w| {
            let mut record: ContainerRecord =
                w.get(Table::Containers, id)?
                    .ok_or_else(|| crate::store::StoreError::Missing {
                        table: Table::Containers,
                        key: id.to_string(),
                    })?;
            f(&mut record);
            w.put(Table::Containers, id, &record)?;
            Ok(record)
        })?)
    }

    /// Chain ids of every container's image and image volumes: their snapshots must outlive
    /// image removal.
    pub fn snapshots_in_use(&self) -> Result<HashSet<crate::image::Digest>> {
        Ok(self
            .containers()?
            .iter()
            .flat_map(|c| {
                let volumes = c.image_volumes.iter().flat_map(|v| v.chain_ids.iter());
                std::iter::once(&c.chain_id).chain(volumes)
            })
            .filter_map(|c| c.parse().ok())
            .collect())
    }
}

/// A name reserved while its object is created.
struct Reservation<'a> {
    runtime: &'a Runtime,
    name: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.runtime
            .reserved
            .lock()
            .expect("reserved lock")
            .remove(&self.name);
    }
}

/// The capabilities in berthd's bounding set (`CapBnd` of `/proc/self/status`); `None` when it
/// cannot be read.
fn bounding_capabilities() -> Option<oci_spec::runtime::Capabilities> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))?
        .trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    let held = crate::spec::ALL_CAPS
        .into_iter()
        .filter(|c| mask & (1u64 << crate::spec::capability_number(*c)) != 0);
    Some(held.collect())
}
