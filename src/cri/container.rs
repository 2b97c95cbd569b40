//! CreateContainer, StartContainer, StopContainer, RemoveContainer, ContainerStatus,
//! ListContainers, ExecSync and ReopenContainerLog: CRI <-> runtime translation.

use std::collections::HashMap;

use super::api;
use crate::runtime::records::ContainerRecord;
use crate::runtime::{Runtime, RuntimeError};

pub async fn create(
    runtime: &std::sync::Arc<Runtime>,
    req: api::CreateContainerRequest,
) -> Result<api::CreateContainerResponse, RuntimeError> {
    super::record("pod_id", &req.pod_sandbox_id);
    let config = req
        .config
        .ok_or_else(|| RuntimeError::InvalidArgument("CreateContainer: no config".into()))?;
    super::metadata::check("CreateContainer", &config.labels, &config.annotations)?;
    let id = runtime
        .create_container(&req.pod_sandbox_id, config, req.sandbox_config)
        .await?;
    super::record("container_id", &id);
    Ok(api::CreateContainerResponse { container_id: id })
}

pub async fn start(
    runtime: &Runtime,
    req: api::StartContainerRequest,
) -> Result<api::StartContainerResponse, RuntimeError> {
    super::record("container_id", &req.container_id);
    runtime.start_container(&req.container_id).await?;
    Ok(api::StartContainerResponse {})
}

pub async fn stop(
    runtime: &Runtime,
    req: api::StopContainerRequest,
) -> Result<api::StopContainerResponse, RuntimeError> {
    super::record("container_id", &req.container_id);
    runtime
        .stop_container(&req.container_id, req.timeout)
        .await?;
    Ok(api::StopContainerResponse {})
}

pub async fn remove(
    runtime: &Runtime,
    req: api::RemoveContainerRequest,
) -> Result<api::RemoveContainerResponse, RuntimeError> {
    super::record("container_id", &req.container_id);
    runtime.remove_container(&req.container_id).await?;
    Ok(api::RemoveContainerResponse {})
}

pub fn status(
    runtime: &Runtime,
    req: api::ContainerStatusRequest,
) -> Result<api::ContainerStatusResponse, RuntimeError> {
    super::record("container_id", &req.container_id);
    let c = runtime.container_status(&req.container_id)?;
    let mut info = HashMap::new();
    if req.verbose {
        // The pod's handler: its containers all run with it ("" = the built-in executor).
        let handler = runtime
            .sandbox_status(&c.sandbox_id)
            .map(|s| s.runtime_handler)
            .unwrap_or_default();
        let detail = serde_json::json!({
            "pid": c.pid,
            "sandboxID": c.sandbox_id,
            "runtimeHandler": handler,
            "bundle": c.bundle,
            "cgroup": c.cgroup,
            "config": c.config,
        });
        info.insert("info".to_string(), detail.to_string());
    }
    Ok(api::ContainerStatusResponse {
        status: Some(to_status(&c)),
        info,
    })
}

/// The CRI status of a container record.
pub fn to_status(c: &ContainerRecord) -> api::ContainerStatus {
    let exit = c.exit.clone().unwrap_or_default();
    api::ContainerStatus {
        id: c.id.clone(),
        metadata: c.config.metadata.clone(),
        state: c.state.to_cri() as i32,
        created_at: c.created_at,
        started_at: c.started_at,
        finished_at: exit.finished_at,
        exit_code: exit.code,
        image: Some(image_spec(c)),
        image_ref: c.image_ref.clone(),
        reason: exit.reason,
        message: exit.message,
        labels: c.config.labels.clone(),
        annotations: c.config.annotations.clone(),
        mounts: mounts(c),
        log_path: c.log_path.display().to_string(),
        resources: c
            .config
            .linux
            .as_ref()
            .and_then(|l| l.resources.clone())
            .map(|r| api::ContainerResources {
                linux: Some(r),
                windows: None,
            }),
        image_id: c.image_id.clone(),
        user: c.user.as_ref().map(|u| api::ContainerUser {
            linux: Some(api::LinuxContainerUser {
                uid: i64::from(u.uid),
                gid: i64::from(u.gid),
                supplemental_groups: u
                    .supplemental_groups
                    .iter()
                    .map(|&g| i64::from(g))
                    .collect(),
            }),
        }),
        // The signal StopContainer sends first; RuntimeDefault (SIGTERM) for older records.
        stop_signal: c.stop_signal,
    }
}

pub fn list(
    runtime: &Runtime,
    req: api::ListContainersRequest,
) -> Result<api::ListContainersResponse, RuntimeError> {
    let filter = req.filter.unwrap_or_default();
    let containers = runtime
        .list_containers()?
        .into_iter()
        .filter(|c| filter.id.is_empty() || c.id.starts_with(&filter.id))
        .filter(|c| {
            filter.pod_sandbox_id.is_empty() || c.sandbox_id.starts_with(&filter.pod_sandbox_id)
        })
        .filter(|c| {
            filter
                .state
                .as_ref()
                .is_none_or(|f| f.state == c.state.to_cri() as i32)
        })
        .filter(|c| super::labels_match(&filter.label_selector, &c.config.labels))
        .map(|c| api::Container {
            id: c.id.clone(),
            pod_sandbox_id: c.sandbox_id.clone(),
            metadata: c.config.metadata.clone(),
            image: Some(image_spec(&c)),
            image_ref: c.image_ref.clone(),
            state: c.state.to_cri() as i32,
            created_at: c.created_at,
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
            image_id: c.image_id.clone(),
        })
        .collect();
    Ok(api::ListContainersResponse { containers })
}

pub async fn exec_sync(
    runtime: &Runtime,
    req: api::ExecSyncRequest,
) -> Result<api::ExecSyncResponse, RuntimeError> {
    super::record("container_id", &req.container_id);
    let out = runtime
        .exec_sync(&req.container_id, req.cmd, req.timeout)
        .await?;
    Ok(api::ExecSyncResponse {
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code: out.exit_code,
    })
}

pub async fn reopen_log(
    runtime: &Runtime,
    req: api::ReopenContainerLogRequest,
) -> Result<api::ReopenContainerLogResponse, RuntimeError> {
    super::record("container_id", &req.container_id);
    runtime.reopen_log(&req.container_id).await?;
    Ok(api::ReopenContainerLogResponse {})
}

/// The container's CRI mounts; an image volume's reports the image id it mounted in
/// `image.image_ref`.
fn mounts(c: &ContainerRecord) -> Vec<api::Mount> {
    let mut mounts = c.config.mounts.clone();
    for m in mounts.iter_mut() {
        let volume = c
            .image_volumes
            .iter()
            .find(|v| v.container_path == m.container_path);
        if let (Some(v), Some(image)) = (volume, m.image.as_mut()) {
            image.image_ref = v.image_id.clone();
        }
    }
    mounts
}

/// The image as the container's config named it, with the resolved id in `user_specified_image`
/// left as kubelet sent it.
fn image_spec(c: &ContainerRecord) -> api::ImageSpec {
    let mut spec = c.config.image.clone().unwrap_or_default();
    spec.image = c.image_id.clone();
    if spec.user_specified_image.is_empty() {
        spec.user_specified_image = c.image_name.clone();
    }
    spec
}

pub async fn update_resources(
    runtime: &Runtime,
    req: api::UpdateContainerResourcesRequest,
) -> Result<api::UpdateContainerResourcesResponse, RuntimeError> {
    super::record("container_id", &req.container_id);
    let linux = req.linux.ok_or_else(|| {
        RuntimeError::InvalidArgument("UpdateContainerResources: no linux resources".into())
    })?;
    runtime.update_resources(&req.container_id, linux).await?;
    Ok(api::UpdateContainerResourcesResponse {})
}
