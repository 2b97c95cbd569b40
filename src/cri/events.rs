//! `GetContainerEvents`: a stream of container and sandbox lifecycle events with the statuses
//! kubelet's evented PLEG reads, one per event, in order.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;
use tonic::Status;

use super::{api, container, sandbox};
use crate::runtime::Runtime;
use crate::runtime::events::{Event, EventKind};

pub fn stream(
    runtime: Arc<Runtime>,
) -> impl futures::Stream<Item = Result<api::ContainerEventResponse, Status>> + Send + 'static {
    let mut events = runtime.subscribe();
    async_stream::stream! {
        loop {
            match events.recv().await {
                Ok(event) => yield Ok(response(&runtime, &event)),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "an event subscriber fell behind; events were dropped");
                }
                Err(RecvError::Closed) => break,
            }
        }
    }
}

/// The event with the pod's status and its containers' statuses as they are now (a deleted
/// object has none).
fn response(runtime: &Runtime, event: &Event) -> api::ContainerEventResponse {
    let kind = match event.kind {
        EventKind::Created => api::ContainerEventType::ContainerCreatedEvent,
        EventKind::Started => api::ContainerEventType::ContainerStartedEvent,
        EventKind::Stopped => api::ContainerEventType::ContainerStoppedEvent,
        EventKind::Deleted => api::ContainerEventType::ContainerDeletedEvent,
    };
    let pod_sandbox_status = runtime
        .sandbox_status(&event.sandbox_id)
        .ok()
        .map(|s| sandbox::to_status(&s));
    let containers_statuses = runtime
        .list_containers()
        .unwrap_or_default()
        .iter()
        .filter(|c| c.sandbox_id == event.sandbox_id)
        .map(container::to_status)
        .collect();
    api::ContainerEventResponse {
        container_id: event.id.clone(),
        container_event_type: kind as i32,
        created_at: event.at,
        pod_sandbox_status,
        containers_statuses,
    }
}
