//! The seam through which pod and container lifecycle reaches NRI plugins (`crate::nri`): the
//! runtime calls one method at each lifecycle point. [`NoNri`] (NRI disabled) does nothing;
//! `crate::nri::Adaptation` calls the plugins; unit tests pass a recording fake.
//!
//! Where each hook runs, and what its error does:
//! - `run_pod_sandbox`: the shim and network are up, the record not yet written (the pod is not
//!   listed); an error unwinds the pod.
//! - `create_container`: the spec is built, nothing of it written; the hook adjusts the spec; an
//!   error unwinds the container. `post_create_container` once the record is written.
//! - `start_container` before the process is released (an error fails the start),
//!   `post_start_container` after.
//! - `update_container` before new resources are applied (a plugin may change them; an error
//!   fails the update), `post_update_container` after.
//! - `stop_pod_sandbox` once the pod's containers are stopped, before its network and shim go
//!   (only for a Ready pod: a second stop sends nothing); `stop_container` once per container,
//!   when its exit is recorded; `remove_*` after the removal. Their errors are only logged.
//!
//! [`NriHooks::hold`] keeps a plugin from synchronizing while held: RunPodSandbox and
//! CreateContainer hold it from their hook until their record is written, so a plugin that
//! connects meanwhile sees the new object either in its Synchronize or as an event.

use oci_spec::runtime::Spec;

use super::records::{ContainerRecord, SandboxRecord};
use crate::cri_api as api;
use crate::nri::NriError;

/// Held while an object's hook has run but its record is not yet written.
pub type NriHold = Box<dyn Send + Sync>;

/// A container CreateContainer is making (no record yet).
#[derive(Debug, Clone, Copy)]
pub struct NewContainer<'a> {
    pub id: &'a str,
    pub config: &'a api::ContainerConfig,
    /// berth's built-in executor runs it (no external OCI runtime).
    pub built_in: bool,
}

#[async_trait::async_trait]
pub trait NriHooks: Send + Sync {
    async fn hold(&self) -> NriHold;
    async fn run_pod_sandbox(&self, pod: &SandboxRecord) -> Result<(), NriError>;
    async fn stop_pod_sandbox(&self, pod: &SandboxRecord);
    async fn remove_pod_sandbox(&self, pod: &SandboxRecord);
    async fn create_container(
        &self,
        pod: &SandboxRecord,
        container: NewContainer<'_>,
        spec: &mut Spec,
    ) -> Result<(), NriError>;
    async fn post_create_container(&self, pod: &SandboxRecord, container: &ContainerRecord);
    async fn start_container(
        &self,
        pod: &SandboxRecord,
        container: &ContainerRecord,
    ) -> Result<(), NriError>;
    async fn post_start_container(&self, pod: &SandboxRecord, container: &ContainerRecord);
    /// Returns the resources to apply: `resources` as the plugins adjusted them.
    async fn update_container(
        &self,
        pod: &SandboxRecord,
        container: &ContainerRecord,
        resources: api::LinuxContainerResources,
    ) -> Result<api::LinuxContainerResources, NriError>;
    async fn post_update_container(&self, pod: &SandboxRecord, container: &ContainerRecord);
    /// Called for every recorded exit and again by StopContainer and RemoveContainer: an
    /// implementation tells the plugins once per container.
    async fn stop_container(&self, pod: &SandboxRecord, container: &ContainerRecord);
    async fn remove_container(&self, pod: &SandboxRecord, container: &ContainerRecord);
}

/// NRI disabled: every hook does nothing.
#[derive(Debug, Default)]
pub struct NoNri;

#[async_trait::async_trait]
impl NriHooks for NoNri {
    async fn hold(&self) -> NriHold {
        Box::new(())
    }
    async fn run_pod_sandbox(&self, _: &SandboxRecord) -> Result<(), NriError> {
        Ok(())
    }
    async fn stop_pod_sandbox(&self, _: &SandboxRecord) {}
    async fn remove_pod_sandbox(&self, _: &SandboxRecord) {}
    async fn create_container(
        &self,
        _: &SandboxRecord,
        _: NewContainer<'_>,
        _: &mut Spec,
    ) -> Result<(), NriError> {
        Ok(())
    }
    async fn post_create_container(&self, _: &SandboxRecord, _: &ContainerRecord) {}
    async fn start_container(
        &self,
        _: &SandboxRecord,
        _: &ContainerRecord,
    ) -> Result<(), NriError> {
        Ok(())
    }
    async fn post_start_container(&self, _: &SandboxRecord, _: &ContainerRecord) {}
    async fn update_container(
        &self,
        _: &SandboxRecord,
        _: &ContainerRecord,
        resources: api::LinuxContainerResources,
    ) -> Result<api::LinuxContainerResources, NriError> {
        Ok(resources)
    }
    async fn post_update_container(&self, _: &SandboxRecord, _: &ContainerRecord) {}
    async fn stop_container(&self, _: &SandboxRecord, _: &ContainerRecord) {}
    async fn remove_container(&self, _: &SandboxRecord, _: &ContainerRecord) {}
}
