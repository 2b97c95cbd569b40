//! The lifecycle events berth sends NRI plugins: the runtime's `NriHooks` seam implemented by
//! calling each subscribed plugin in index order. RunPodSandbox, CreateContainer,
//! StartContainer and UpdateContainer fail on a plugin's error or timeout; the other events
//! only log them. CreateContainer applies each plugin's adjustment to the spec (`adjust`);
//! updates plugins return for other containers are applied through the runtime.

use oci_spec::runtime::Spec;
use protobuf::MessageField;

use super::adaptation::Adaptation;
use super::adjust::Adjuster;
use super::{NriError, api, convert};
use crate::cri_api as cri;
use crate::runtime::nri_seam::{NewContainer, NriHold, NriHooks};
use crate::runtime::records::{ContainerRecord, SandboxRecord};

/// Builds a request message from a pod (and container).
macro_rules! request {
    ($ty:ty, $pod:expr) => {{
        let mut r = <$ty>::new();
        r.pod = MessageField::some(convert::pod($pod));
        r
    }};
    ($ty:ty, $pod:expr, $container:expr) => {{
        let mut r = <$ty>::new();
        r.pod = MessageField::some(convert::pod($pod));
        r.container = MessageField::some($container);
        r
    }};
}

impl Adaptation {
    /// Logs a failed event that cannot fail its operation.
    fn log_failure(event: &str, id: &str, result: Result<(), NriError>) {
        if let Err(e) = result {
            tracing::warn!(id, error = %e, "NRI {event}");
        }
    }
}

#[async_trait::async_trait]
impl NriHooks for Adaptation {
    async fn hold(&self) -> NriHold {
        Box::new(self.sync.clone().read_owned().await)
    }

    async fn run_pod_sandbox(&self, pod: &SandboxRecord) -> Result<(), NriError> {
        let req = request!(api::RunPodSandboxRequest, pod);
        for p in self.subscribed(api::Event::RUN_POD_SANDBOX) {
            self.ask(&p, "RunPodSandbox", |ctx| {
                p.client().run_pod_sandbox(ctx, &req)
            })
            .await?;
        }
        Ok(())
    }

    async fn stop_pod_sandbox(&self, pod: &SandboxRecord) {
        let req = request!(api::StopPodSandboxRequest, pod);
        for p in self.subscribed(api::Event::STOP_POD_SANDBOX) {
            let r = self.ask(&p, "StopPodSandbox", |ctx| {
                p.client().stop_pod_sandbox(ctx, &req)
            });
            Self::log_failure("StopPodSandbox", &pod.id, r.await.map(drop));
        }
    }

    async fn remove_pod_sandbox(&self, pod: &SandboxRecord) {
        let req = request!(api::RemovePodSandboxRequest, pod);
        for p in self.subscribed(api::Event::REMOVE_POD_SANDBOX) {
            let r = self.ask(&p, "RemovePodSandbox", |ctx| {
                p.client().remove_pod_sandbox(ctx, &req)
            });
            Self::log_failure("RemovePodSandbox", &pod.id, r.await.map(drop));
        }
    }

    async fn create_container(
        &self,
        pod: &SandboxRecord,
        container: NewContainer<'_>,
        spec: &mut Spec,
    ) -> Result<(), NriError> {
        let plugins = self.subscribed(api::Event::CREATE_CONTAINER);
        if plugins.is_empty() {
            return Ok(());
        }
        let req = request!(
            api::CreateContainerRequest,
            pod,
            convert::new_container(&pod.id, container, spec)
        );
        let mut adjuster = Adjuster::new(container.id, container.built_in);
        let mut updates = vec![];
        for p in plugins {
            let reply = self.ask(&p, "CreateContainer", |ctx| {
                p.client().create_container(ctx, &req)
            });
            let Some(reply) = reply.await? else { continue };
            if let Some(adjust) = reply.adjust.as_ref() {
                adjuster.apply(&p.id, adjust, spec)?;
            }
            updates.push((p.id.clone(), reply.update));
        }
        for (plugin, update) in updates {
            self.apply_updates(&plugin, update).await;
        }
        Ok(())
    }

    async fn post_create_container(&self, pod: &SandboxRecord, c: &ContainerRecord) {
        let req = request!(api::PostCreateContainerRequest, pod, convert::container(c));
        for p in self.subscribed(api::Event::POST_CREATE_CONTAINER) {
            let r = self.ask(&p, "PostCreateContainer", |ctx| {
                p.client().post_create_container(ctx, &req)
            });
            Self::log_failure("PostCreateContainer", &c.id, r.await.map(drop));
        }
    }

    async fn start_container(
        &self,
        pod: &SandboxRecord,
        c: &ContainerRecord,
    ) -> Result<(), NriError> {
        let req = request!(api::StartContainerRequest, pod, convert::container(c));
        for p in self.subscribed(api::Event::START_CONTAINER) {
            self.ask(&p, "StartContainer", |ctx| {
                p.client().start_container(ctx, &req)
            })
            .await?;
        }
        Ok(())
    }

    async fn post_start_container(&self, pod: &SandboxRecord, c: &ContainerRecord) {
        let req = request!(api::PostStartContainerRequest, pod, convert::container(c));
        for p in self.subscribed(api::Event::POST_START_CONTAINER) {
            let r = self.ask(&p, "PostStartContainer", |ctx| {
                p.client().post_start_container(ctx, &req)
            });
            Self::log_failure("PostStartContainer", &c.id, r.await.map(drop));
        }
    }

    async fn update_container(
        &self,
        pod: &SandboxRecord,
        c: &ContainerRecord,
        resources: cri::LinuxContainerResources,
    ) -> Result<cri::LinuxContainerResources, NriError> {
        let mut req = request!(api::UpdateContainerRequest, pod, convert::container(c));
        req.linux_resources = MessageField::some(convert::nri_resources(&resources));
        let mut resources = resources;
        for p in self.subscribed(api::Event::UPDATE_CONTAINER) {
            let reply = self.ask(&p, "UpdateContainer", |ctx| {
                p.client().update_container(ctx, &req)
            });
            let Some(reply) = reply.await? else { continue };
            let (own, others): (Vec<_>, Vec<_>) = reply
                .update
                .into_iter()
                .partition(|u| u.container_id == c.id);
            for u in own {
                if let Some(r) = u.linux.as_ref().and_then(|l| l.resources.as_ref()) {
                    resources = convert::cri_resources(&resources, r);
                }
            }
            self.apply_updates(&p.id, others).await;
        }
        Ok(resources)
    }

    async fn post_update_container(&self, pod: &SandboxRecord, c: &ContainerRecord) {
        let req = request!(api::PostUpdateContainerRequest, pod, convert::container(c));
        for p in self.subscribed(api::Event::POST_UPDATE_CONTAINER) {
            let r = self.ask(&p, "PostUpdateContainer", |ctx| {
                p.client().post_update_container(ctx, &req)
            });
            Self::log_failure("PostUpdateContainer", &c.id, r.await.map(drop));
        }
    }

    async fn stop_container(&self, pod: &SandboxRecord, c: &ContainerRecord) {
        let once = (self.stopped.lock().expect("stopped lock"))
            .entry(c.id.clone())
            .or_default()
            .clone();
        once.get_or_init(|| async {
            let req = request!(api::StopContainerRequest, pod, convert::container(c));
            for p in self.subscribed(api::Event::STOP_CONTAINER) {
                let r = self.ask(&p, "StopContainer", |ctx| {
                    p.client().stop_container(ctx, &req)
                });
                match r.await {
                    Ok(Some(reply)) => self.apply_updates(&p.id, reply.update).await,
                    Ok(None) => {}
                    Err(e) => Self::log_failure("StopContainer", &c.id, Err(e)),
                }
            }
        })
        .await;
    }

    async fn remove_container(&self, pod: &SandboxRecord, c: &ContainerRecord) {
        self.stopped.lock().expect("stopped lock").remove(&c.id);
        let req = request!(api::RemoveContainerRequest, pod, convert::container(c));
        for p in self.subscribed(api::Event::REMOVE_CONTAINER) {
            let r = self.ask(&p, "RemoveContainer", |ctx| {
                p.client().remove_container(ctx, &req)
            });
            Self::log_failure("RemoveContainer", &c.id, r.await.map(drop));
        }
    }
}

#[cfg(test)]
#[path = "hooks_tests.rs"]
mod tests;
