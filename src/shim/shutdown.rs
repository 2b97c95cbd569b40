//! Shutdown: SIGKILL every container and wait for the reaper (then an external runtime forgets
//! it), kill the pause process, unmount
//! and delete the namespace pins, then let the serving loop stop (after the reply went out) and
//! the process exit.

use std::sync::Arc;
use std::time::Duration;

use super::containers::{delete_in_runner, kill_and_wait};
use super::error::ContainerError;
use super::supervisor::Supervisor;

/// How long the pause process may take to be reaped after SIGKILL.
const PAUSE_WAIT: Duration = Duration::from_secs(5);

/// Takes the pod down. New work is refused from the start; the process exits even when a step
/// failed (the first failure is returned, the pins are removed regardless).
pub(crate) async fn shutdown(sup: &Arc<Supervisor>) -> Result<(), ContainerError> {
    let ids = {
        let mut table = sup.table();
        table.closing = true;
        table.ids()
    };
    tracing::info!(containers = ids.len(), "shutting down");
    let mut first = None;
    for id in &ids {
        let killed = kill_and_wait(sup, id).await;
        if let Err(e) = killed.and(delete_in_runner(sup, id).await) {
            tracing::warn!(container_id = id, "shutdown: {e}");
            first.get_or_insert(e);
        }
    }
    if let Err(e) = sup.remove_pins() {
        tracing::warn!("shutdown: {e}");
        first.get_or_insert(ContainerError::Pins(e));
    }
    if tokio::time::timeout(PAUSE_WAIT, sup.pause_exited())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: the pause process was not reaped within {PAUSE_WAIT:?}");
    }
    sup.request_exit();
    first.map_or(Ok(()), Err)
}
