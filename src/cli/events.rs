//! `berth events`: berthd's `GetContainerEvents` stream, one line per event, until interrupted.

use std::io::Write as _;

use serde::Serialize;

use super::args::Output;
use super::{rfc3339, short_id};
use crate::client::CriClient;
use crate::cri::api;

/// One event as `-o json` prints it (one object per line); the keys are stable.
#[derive(Debug, PartialEq, Serialize)]
pub struct Line {
    pub time: String,
    /// `created`, `started`, `stopped` or `deleted`.
    pub event: &'static str,
    /// `container`, or `pod` for a pod sandbox's own event.
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    pub pod_id: String,
    pub pod_name: String,
    pub pod_namespace: String,
}

impl Line {
    pub fn from_event(e: &api::ContainerEventResponse) -> Line {
        let event = match api::ContainerEventType::try_from(e.container_event_type) {
            Ok(api::ContainerEventType::ContainerCreatedEvent) => "created",
            Ok(api::ContainerEventType::ContainerStartedEvent) => "started",
            Ok(api::ContainerEventType::ContainerStoppedEvent) => "stopped",
            Ok(api::ContainerEventType::ContainerDeletedEvent) => "deleted",
            Err(_) => "unknown",
        };
        let pod = e.pod_sandbox_status.as_ref();
        let pod_id = pod.map(|p| p.id.clone()).unwrap_or_default();
        let pod_meta = pod.and_then(|p| p.metadata.clone()).unwrap_or_default();
        let is_pod = !pod_id.is_empty() && pod_id == e.container_id;
        let name = if is_pod {
            pod_meta.name.clone()
        } else {
            e.containers_statuses
                .iter()
                .find(|c| c.id == e.container_id)
                .and_then(|c| c.metadata.as_ref())
                .map(|m| m.name.clone())
                .unwrap_or_default()
        };
        Line {
            time: rfc3339(e.created_at),
            event,
            kind: if is_pod { "pod" } else { "container" },
            id: e.container_id.clone(),
            name,
            pod_id,
            pod_name: pod_meta.name,
            pod_namespace: pod_meta.namespace,
        }
    }

    pub fn human(&self) -> String {
        let mut s = format!(
            "{} {:<9} {:<9} {}",
            self.time,
            self.kind,
            self.event,
            short_id(&self.id)
        );
        if !self.name.is_empty() {
            s += &format!(" name={}", self.name);
        }
        if self.kind == "container" && !self.pod_id.is_empty() {
            s += &format!(
                " pod={} ({}/{})",
                short_id(&self.pod_id),
                self.pod_namespace,
                self.pod_name
            );
        }
        s
    }
}

pub async fn events(client: &CriClient, out: Output) -> anyhow::Result<()> {
    let mut stream = client
        .runtime
        .clone()
        .get_container_events(api::GetEventsRequest {})
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        let line = Line::from_event(&event);
        let text = if out == Output::Json {
            serde_json::to_string(&line)?
        } else {
            line.human()
        };
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{text}")?;
        stdout.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Line;
    use crate::cri::api;

    fn pod_status() -> api::PodSandboxStatus {
        api::PodSandboxStatus {
            id: "pod123456789012345".into(),
            metadata: Some(api::PodSandboxMetadata {
                name: "web".into(),
                namespace: "prod".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_container_event_names_container_and_pod() {
        let e = api::ContainerEventResponse {
            container_id: "ctr123456789012345".into(),
            container_event_type: api::ContainerEventType::ContainerStartedEvent as i32,
            created_at: 0,
            pod_sandbox_status: Some(pod_status()),
            containers_statuses: vec![api::ContainerStatus {
                id: "ctr123456789012345".into(),
                metadata: Some(api::ContainerMetadata {
                    name: "app".into(),
                    attempt: 0,
                }),
                ..Default::default()
            }],
        };
        let line = Line::from_event(&e);
        assert_eq!(
            (line.kind, line.event, line.name.as_str()),
            ("container", "started", "app")
        );
        assert_eq!(
            line.human(),
            "1970-01-01T00:00:00Z container started   ctr1234567890 name=app pod=pod1234567890 (prod/web)"
        );
    }

    #[test]
    fn a_pod_event_is_marked_as_such() {
        let e = api::ContainerEventResponse {
            container_id: "pod123456789012345".into(),
            container_event_type: api::ContainerEventType::ContainerCreatedEvent as i32,
            created_at: 0,
            pod_sandbox_status: Some(pod_status()),
            containers_statuses: vec![],
        };
        let line = Line::from_event(&e);
        assert_eq!(
            (line.kind, line.event, line.name.as_str()),
            ("pod", "created", "web")
        );
    }
}
