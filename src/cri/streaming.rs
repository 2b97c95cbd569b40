//! Exec, Attach and PortForward: check the request against the runtime and hand out a URL on
//! the streaming server, where the client then streams.

use super::{Context, api};
use crate::runtime::RuntimeError;
use crate::streaming::{Command, PortForward, StreamingError};

/// Either module's error, classified by its own kind.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Streaming(#[from] StreamingError),
}

impl crate::error::Classify for Error {
    fn kind(&self) -> crate::error::Kind {
        match self {
            Error::Runtime(e) => e.kind(),
            Error::Streaming(e) => e.kind(),
        }
    }
}

pub fn exec(ctx: &Context, req: api::ExecRequest) -> Result<api::ExecResponse, Error> {
    super::record("container_id", &req.container_id);
    let container_id = ctx.runtime.stream_target(&req.container_id)?;
    let command = Command {
        container_id,
        cmd: req.cmd,
        tty: req.tty,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
    };
    let url = ctx.streaming.command_url(false, command)?;
    Ok(api::ExecResponse { url })
}

pub fn attach(ctx: &Context, req: api::AttachRequest) -> Result<api::AttachResponse, Error> {
    super::record("container_id", &req.container_id);
    let container_id = ctx.runtime.stream_target(&req.container_id)?;
    let command = Command {
        container_id,
        cmd: Vec::new(),
        tty: req.tty,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
    };
    let url = ctx.streaming.command_url(true, command)?;
    Ok(api::AttachResponse { url })
}

pub fn port_forward(
    ctx: &Context,
    req: api::PortForwardRequest,
) -> Result<api::PortForwardResponse, Error> {
    super::record("pod_id", &req.pod_sandbox_id);
    let (pod_id, netns) = ctx.runtime.pod_netns(&req.pod_sandbox_id)?;
    let url = ctx
        .streaming
        .port_forward_url(PortForward { pod_id, netns })?;
    Ok(api::PortForwardResponse { url })
}
