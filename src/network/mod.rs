//! Pod networking: the CNI seam the runtime calls (`PodNetwork`), berth's own CNI invoker behind
//! it (`cni`), and the pod's DNS and hosts files (`dns`).
//!
//! The runtime only sees [`PodNetwork`]: attach a pod's pinned network namespace to the node's
//! network (CNI ADD), detach it (CNI DEL, from the cached attachment so it works after a restart
//! and after the config changed), list what is attached (startup GC), and whether a network
//! config is loaded at all (`Status` NetworkReady).

pub mod cache;
pub mod capabilities;
pub mod cni;
pub mod conf;
pub mod dns;
pub mod error;
pub mod invoke;
pub mod result;

use std::path::PathBuf;

use futures::future::BoxFuture;

pub use capabilities::{Bandwidth, DnsCapability, PortMapping, RuntimeConfig};
pub use error::NetworkError;

/// The interface name CNI creates in the pod (kubelet and every runtime use `eth0`).
pub const POD_IFNAME: &str = "eth0";

/// What attaching one pod needs to know.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attachment {
    /// The sandbox id (`CNI_CONTAINERID`, `K8S_POD_INFRA_CONTAINER_ID`).
    pub sandbox_id: String,
    /// The pod's pinned network namespace (`CNI_NETNS`).
    pub netns: PathBuf,
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: String,
    /// Capability arguments, passed only to plugins that declare them.
    pub runtime_config: RuntimeConfig,
}

/// The pod's addresses as CNI reported them: the primary one first (IPv4 when there is one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIps(pub Vec<String>);

/// Whether pods can be networked now, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// Empty when ready; else what is missing (no config, a plugin not installed, ...).
    pub message: String,
}

/// The boundary between the runtime and the node's network plugins.
pub trait PodNetwork: Send + Sync {
    /// Whether a valid network config is loaded (rechecked on every call: cheap).
    fn readiness(&self) -> Readiness;
    /// CNI ADD of the pod into the current network config. On error the caller still detaches.
    fn attach<'a>(&'a self, pod: &'a Attachment) -> BoxFuture<'a, Result<PodIps, NetworkError>>;
    /// CNI DEL with the config and result cached at attach time. Idempotent: a pod that is not
    /// attached (never was, or already detached) is fine; a netns that is gone is fine.
    fn detach<'a>(&'a self, sandbox_id: &'a str) -> BoxFuture<'a, Result<(), NetworkError>>;
    /// Sandbox ids that have a cached attachment (ADD done or begun, DEL not finished).
    fn attached(&self) -> Result<Vec<String>, NetworkError>;
}
