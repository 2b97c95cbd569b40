//! A recording fake of the NRI seam: it notes each hook with its object's id, can fail the
//! next RunPodSandbox or CreateContainer, and adds `NRI=1` to the env of each container it
//! sees created.

use std::sync::Mutex;

use oci_spec::runtime::Spec;

use crate::cri_api as api;
use crate::nri::NriError;
use crate::runtime::nri_seam::{NewContainer, NriHold, NriHooks};
use crate::runtime::records::{ContainerRecord, SandboxRecord};

#[derive(Default)]
pub struct FakeNri {
    calls: Mutex<Vec<String>>,
    fail: Mutex<Option<&'static str>>,
}

impl FakeNri {
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// The next call of hook `name` fails as a plugin's refusal.
    pub fn fail_next(&self, name: &'static str) {
        *self.fail.lock().unwrap() = Some(name);
    }

    fn note(&self, name: &'static str, id: &str) -> Result<(), NriError> {
        self.calls.lock().unwrap().push(format!("{name} {id}"));
        let mut fail = self.fail.lock().unwrap();
        if *fail == Some(name) {
            *fail = None;
            return Err(NriError::Refused {
                name: "00-fake".into(),
                call: name,
                message: "induced failure".into(),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl NriHooks for FakeNri {
    async fn hold(&self) -> NriHold {
        Box::new(())
    }
    async fn run_pod_sandbox(&self, pod: &SandboxRecord) -> Result<(), NriError> {
        self.note("RunPodSandbox", &pod.id)
    }
    async fn stop_pod_sandbox(&self, pod: &SandboxRecord) {
        let _ = self.note("StopPodSandbox", &pod.id);
    }
    async fn remove_pod_sandbox(&self, pod: &SandboxRecord) {
        let _ = self.note("RemovePodSandbox", &pod.id);
    }
    async fn create_container(
        &self,
        _: &SandboxRecord,
        c: NewContainer<'_>,
        spec: &mut Spec,
    ) -> Result<(), NriError> {
        self.note("CreateContainer", c.id)?;
        if let Some(process) = spec.process_mut() {
            let mut env = process.env().clone().unwrap_or_default();
            env.push("NRI=1".into());
            process.set_env(Some(env));
        }
        Ok(())
    }
    async fn post_create_container(&self, _: &SandboxRecord, c: &ContainerRecord) {
        let _ = self.note("PostCreateContainer", &c.id);
    }
    async fn start_container(
        &self,
        _: &SandboxRecord,
        c: &ContainerRecord,
    ) -> Result<(), NriError> {
        self.note("StartContainer", &c.id)
    }
    async fn post_start_container(&self, _: &SandboxRecord, c: &ContainerRecord) {
        let _ = self.note("PostStartContainer", &c.id);
    }
    async fn update_container(
        &self,
        _: &SandboxRecord,
        c: &ContainerRecord,
        resources: api::LinuxContainerResources,
    ) -> Result<api::LinuxContainerResources, NriError> {
        self.note("UpdateContainer", &c.id)?;
        Ok(resources)
    }
    async fn post_update_container(&self, _: &SandboxRecord, c: &ContainerRecord) {
        let _ = self.note("PostUpdateContainer", &c.id);
    }
    async fn stop_container(&self, _: &SandboxRecord, c: &ContainerRecord) {
        let _ = self.note("StopContainer", &c.id);
    }
    async fn remove_container(&self, _: &SandboxRecord, c: &ContainerRecord) {
        let _ = self.note("RemoveContainer", &c.id);
    }
}
