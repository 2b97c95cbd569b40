//! [`ShimClient`] as the runtime's shim seam ([`super::PodShim`], [`super::ShimLauncher`]): starts real `berth-shim serve` processes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tracing::Instrument as _;

use super::client::{EventStream, ShimClient, StreamInputs, StreamOutputs};
use super::seam::{PodShim, ShimLauncher, ShimResult};
use crate::shimapi::{
    ContainerState, CreateContainer, ExecOutput, ShimInfo, ShimOptions, StreamStart,
};

/// Starts `berth-shim serve` processes from one binary.
pub struct Launcher {
    binary: PathBuf,
}

impl Launcher {
    pub fn new(binary: PathBuf) -> Launcher {
        Launcher { binary }
    }
}

impl ShimLauncher for Launcher {
    fn spawn<'a>(
        &'a self,
        pod_id: &'a str,
        pod_dir: &'a Path,
        options: &'a ShimOptions,
    ) -> BoxFuture<'a, ShimResult<Arc<dyn PodShim>>> {
        Box::pin(
            async move {
                let client = ShimClient::spawn(&self.binary, pod_id, pod_dir, options).await?;
                Ok(Arc::new(client) as Arc<dyn PodShim>)
            }
            .instrument(tracing::info_span!("shim.spawn")),
        )
    }

    fn connect<'a>(&'a self, pod_dir: &'a Path) -> BoxFuture<'a, ShimResult<Arc<dyn PodShim>>> {
        Box::pin(
            async move {
                let client = ShimClient::connect(pod_dir).await?;
                Ok(Arc::new(client) as Arc<dyn PodShim>)
            }
            .instrument(tracing::info_span!("shim.connect")),
        )
    }
}

impl PodShim for ShimClient {
    fn info(&self) -> BoxFuture<'_, ShimResult<ShimInfo>> {
        Box::pin(ShimClient::info(self).instrument(tracing::info_span!("shim.info")))
    }

    fn create<'a>(&'a self, req: &'a CreateContainer) -> BoxFuture<'a, ShimResult<u32>> {
        Box::pin(ShimClient::create(self, req).instrument(tracing::info_span!("shim.create")))
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ShimResult<()>> {
        Box::pin(ShimClient::start(self, id).instrument(tracing::info_span!("shim.start")))
    }

    fn signal<'a>(&'a self, id: &'a str, signal: i32, all: bool) -> BoxFuture<'a, ShimResult<()>> {
        Box::pin(
            ShimClient::signal(self, id, signal, all)
                .instrument(tracing::info_span!("shim.signal")),
        )
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ShimResult<()>> {
        Box::pin(ShimClient::delete(self, id).instrument(tracing::info_span!("shim.delete")))
    }

    fn state(&self) -> BoxFuture<'_, ShimResult<Vec<ContainerState>>> {
        Box::pin(ShimClient::state(self).instrument(tracing::info_span!("shim.state")))
    }

    fn exits(&self) -> BoxFuture<'_, ShimResult<EventStream>> {
        Box::pin(ShimClient::events(self).instrument(tracing::info_span!("shim.events")))
    }

    fn exec_sync<'a>(
        &'a self,
        id: &'a str,
        args: Vec<String>,
        timeout_secs: i64,
    ) -> BoxFuture<'a, ShimResult<ExecOutput>> {
        Box::pin(
            async move {
                let timeout = Duration::from_secs(timeout_secs.max(0) as u64);
                ShimClient::exec_sync(self, id, &args, timeout).await
            }
            .instrument(tracing::info_span!("shim.exec_sync")),
        )
    }

    fn stream<'a>(
        &'a self,
        attach: bool,
        start: &'a StreamStart,
        inputs: StreamInputs,
    ) -> BoxFuture<'a, ShimResult<StreamOutputs>> {
        Box::pin(
            ShimClient::stream(self, attach, start, inputs)
                .instrument(tracing::info_span!("shim.stream")),
        )
    }

    fn reopen_log<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ShimResult<()>> {
        Box::pin(
            ShimClient::reopen_log(self, id).instrument(tracing::info_span!("shim.reopen_log")),
        )
    }

    fn shutdown(&self) -> BoxFuture<'_, ShimResult<()>> {
        Box::pin(ShimClient::shutdown(self).instrument(tracing::info_span!("shim.shutdown")))
    }
}
