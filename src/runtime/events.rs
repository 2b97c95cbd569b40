//! Lifecycle events of containers and sandboxes, for kubelet's evented PLEG
//! (`GetContainerEvents`). Every subscriber that keeps up sees every event, in order.

use tokio::sync::broadcast;

use super::Runtime;
use super::records::now_ns;

/// Events buffered per subscriber before a slow one starts losing the oldest.
pub const EVENT_BUFFER: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Started,
    Stopped,
    Deleted,
}

/// Something happened to a container (or, with `id == sandbox_id`, to a pod sandbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: String,
    pub sandbox_id: String,
    pub kind: EventKind,
    /// Unix nanoseconds.
    pub at: i64,
}

impl Runtime {
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub(super) fn emit(&self, id: &str, sandbox_id: &str, kind: EventKind) {
        // No subscriber is not an error.
        let _ = self.events.send(Event {
            id: id.to_string(),
            sandbox_id: sandbox_id.to_string(),
            kind,
            at: now_ns(),
        });
    }
}
