//! The seam between the runtime and a pod's shim process: what the runtime asks of a shim. The
//! real implementation is [`super::ShimClient`] (see `launcher`); the types are the protocol's
//! domain types (`crate::shimapi`).

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::client::{EventStream, ShimError, StreamInputs, StreamOutputs};
use crate::shimapi::{
    ContainerState as ShimContainer, CreateContainer, ExecOutput, ShimInfo, ShimOptions,
    StreamStart,
};

pub type ShimResult<T> = Result<T, ShimError>;

/// One live pod shim.
pub trait PodShim: Send + Sync {
    fn info(&self) -> BoxFuture<'_, ShimResult<ShimInfo>>;
    fn create<'a>(&'a self, req: &'a CreateContainer) -> BoxFuture<'a, ShimResult<u32>>;
    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ShimResult<()>>;
    fn signal<'a>(&'a self, id: &'a str, signal: i32, all: bool) -> BoxFuture<'a, ShimResult<()>>;
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ShimResult<()>>;
    fn state(&self) -> BoxFuture<'_, ShimResult<Vec<ShimContainer>>>;
    /// Exits of undeleted containers first, then new ones as they happen.
    fn exits(&self) -> BoxFuture<'_, ShimResult<EventStream>>;
    fn exec_sync<'a>(
        &'a self,
        id: &'a str,
        args: Vec<String>,
        timeout_secs: i64,
    ) -> BoxFuture<'a, ShimResult<ExecOutput>>;
    /// A streamed exec (`attach` false) or an attach to the container's own stdio.
    fn stream<'a>(
        &'a self,
        attach: bool,
        start: &'a StreamStart,
        inputs: StreamInputs,
    ) -> BoxFuture<'a, ShimResult<StreamOutputs>>;
    fn reopen_log<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ShimResult<()>>;
    fn shutdown(&self) -> BoxFuture<'_, ShimResult<()>>;
}

/// Starts new shims and reconnects to running ones.
pub trait ShimLauncher: Send + Sync {
    fn spawn<'a>(
        &'a self,
        pod_id: &'a str,
        pod_dir: &'a Path,
        options: &'a ShimOptions,
    ) -> BoxFuture<'a, ShimResult<Arc<dyn PodShim>>>;
    fn connect<'a>(&'a self, pod_dir: &'a Path) -> BoxFuture<'a, ShimResult<Arc<dyn PodShim>>>;
}
