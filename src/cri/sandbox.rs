//! RunPodSandbox, StopPodSandbox, RemovePodSandbox, PodSandboxStatus, ListPodSandbox and
//! UpdatePodSandboxResources: CRI <-> runtime translation.

use std::collections::HashMap;

use super::api;
use crate::runtime::records::{SandboxRecord, SandboxState};
use crate::runtime::{Runtime, RuntimeError};

pub async fn run(
    runtime: &std::sync::Arc<Runtime>,
    req: api::RunPodSandboxRequest,
) -> Result<api::RunPodSandboxResponse, RuntimeError> {
    let config = req
        .config
        .ok_or_else(|| RuntimeError::InvalidArgument("RunPodSandbox: no config".into()))?;
    super::metadata::check("RunPodSandbox", &config.labels, &config.annotations)?;
    let id = runtime.run_sandbox(config, &req.runtime_handler).await?;
    super::record("pod_id", &id);
    Ok(api::RunPodSandboxResponse { pod_sandbox_id: id })
}

pub async fn stop(
    runtime: &Runtime,
    req: api::StopPodSandboxRequest,
) -> Result<api::StopPodSandboxResponse, RuntimeError> {
    super::record("pod_id", &req.pod_sandbox_id);
    runtime.stop_sandbox(&req.pod_sandbox_id).await?;
    Ok(api::StopPodSandboxResponse {})
}

pub async fn remove(
    runtime: &Runtime,
    req: api::RemovePodSandboxRequest,
) -> Result<api::RemovePodSandboxResponse, RuntimeError> {
    super::record("pod_id", &req.pod_sandbox_id);
    runtime.remove_sandbox(&req.pod_sandbox_id).await?;
    Ok(api::RemovePodSandboxResponse {})
}

/// In-place pod resize: the pod cgroup gets the new totals (`crate::runtime::pod_resources`).
pub fn update_resources(
    runtime: &Runtime,
    req: api::UpdatePodSandboxResourcesRequest,
) -> Result<api::UpdatePodSandboxResourcesResponse, RuntimeError> {
    super::record("pod_id", &req.pod_sandbox_id);
    runtime.update_pod_resources(&req.pod_sandbox_id, req.overhead, req.resources)?;
    Ok(api::UpdatePodSandboxResourcesResponse {})
}

pub fn status(
    runtime: &Runtime,
    req: api::PodSandboxStatusRequest,
) -> Result<api::PodSandboxStatusResponse, RuntimeError> {
    super::record("pod_id", &req.pod_sandbox_id);
    let record = runtime.sandbox_status(&req.pod_sandbox_id)?;
    let mut info = HashMap::new();
    if req.verbose {
        let detail = serde_json::json!({
            "config": record.config,
            "runtimeHandler": record.runtime_handler,
            "podDir": record.pod_dir,
            "namespaces": record.namespaces,
            "hostname": record.hostname,
            "ips": record.ips,
        });
        info.insert("info".to_string(), detail.to_string());
    }
    Ok(api::PodSandboxStatusResponse {
        status: Some(to_status(&record)),
        info,
        containers_statuses: vec![],
        timestamp: crate::runtime::records::now_ns(),
    })
}

/// The CRI status of a sandbox record.
pub fn to_status(record: &SandboxRecord) -> api::PodSandboxStatus {
    let config = &record.config;
    let namespace_options = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone());
    api::PodSandboxStatus {
        id: record.id.clone(),
        metadata: config.metadata.clone(),
        state: state(record) as i32,
        created_at: record.created_at,
        network: Some(api::PodSandboxNetworkStatus {
            ip: record.ips.first().cloned().unwrap_or_default(),
            additional_ips: record
                .ips
                .iter()
                .skip(1)
                .map(|ip| api::PodIp { ip: ip.clone() })
                .collect(),
        }),
        linux: Some(api::LinuxPodSandboxStatus {
            namespaces: Some(api::Namespace {
                options: namespace_options,
            }),
        }),
        labels: config.labels.clone(),
        annotations: config.annotations.clone(),
        runtime_handler: record.runtime_handler.clone(),
    }
}

pub fn list(
    runtime: &Runtime,
    req: api::ListPodSandboxRequest,
) -> Result<api::ListPodSandboxResponse, RuntimeError> {
    let filter = req.filter.unwrap_or_default();
    let items = runtime
        .list_sandboxes()?
        .into_iter()
        .filter(|s| filter.id.is_empty() || s.id.starts_with(&filter.id))
        .filter(|s| {
            filter
                .state
                .as_ref()
                .is_none_or(|f| f.state == state(s) as i32)
        })
        .filter(|s| super::labels_match(&filter.label_selector, &s.config.labels))
        .map(|s| api::PodSandbox {
            id: s.id.clone(),
            metadata: s.config.metadata.clone(),
            state: state(&s) as i32,
            created_at: s.created_at,
            labels: s.config.labels.clone(),
            annotations: s.config.annotations.clone(),
            runtime_handler: s.runtime_handler.clone(),
        })
        .collect();
    Ok(api::ListPodSandboxResponse { items })
}

fn state(record: &SandboxRecord) -> api::PodSandboxState {
    match record.state {
        SandboxState::Ready => api::PodSandboxState::SandboxReady,
        SandboxState::NotReady => api::PodSandboxState::SandboxNotready,
    }
}
