//! The Shim gRPC service: translates each request to the container operations and their
//! results (or errors, through `crate::error::to_status`) back.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::attach::Inputs;
use super::error::ContainerError;
use super::supervisor::Supervisor;
use super::{attach, containers, exec_stream, exec_sync, shutdown};
use crate::error::to_status;
use crate::shimapi::convert::stream_input;
use crate::shimapi::proto::shim_server::Shim;
use crate::shimapi::proto::{self, Empty};
use crate::shimapi::{StreamOutput, StreamStart};

/// The service over one pod's supervisor.
pub(crate) struct Service {
    sup: Arc<Supervisor>,
}

impl Service {
    pub fn new(sup: Arc<Supervisor>) -> Service {
        Service { sup }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<proto::ExitEvent, Status>> + Send>>;
type OutputStream = Pin<Box<dyn Stream<Item = Result<proto::ExecOutput, Status>> + Send>>;

/// Output messages buffered per streamed exec or attach.
const OUTPUT_BUFFER: usize = 64;

/// Reads a streamed call's first message, which must be its start; the rest are its inputs.
async fn stream_start(
    mut inputs: Streaming<proto::ExecInput>,
) -> Result<(StreamStart, Inputs), Status> {
    let first = inputs.message().await?;
    let Some(proto::ExecInput {
        input: Some(proto::exec_input::Input::Start(start)),
    }) = first
    else {
        let e = ContainerError::InvalidArgument("the first message must be the start".into());
        return Err(to_status(&e));
    };
    let rest = inputs
        .take_while(|m| std::future::ready(m.is_ok()))
        .filter_map(|m| std::future::ready(m.ok().and_then(stream_input)));
    Ok((start.into(), Box::pin(rest)))
}

/// The response stream over a call's output channel.
fn output_stream(rx: mpsc::Receiver<StreamOutput>) -> OutputStream {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Box::pin(stream.map(|o| Ok(o.into())))
}

#[tonic::async_trait]
impl Shim for Service {
    async fn info(
        &self,
        _: Request<proto::InfoRequest>,
    ) -> Result<Response<proto::InfoResponse>, Status> {
        let namespaces = self.sup.namespaces().iter();
        Ok(Response::new(proto::InfoResponse {
            pid: std::process::id(),
            namespaces: namespaces
                .map(|(k, v)| (k.clone(), v.to_string_lossy().into_owned()))
                .collect(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn create_container(
        &self,
        request: Request<proto::CreateContainerRequest>,
    ) -> Result<Response<proto::CreateContainerResponse>, Status> {
        let pid = containers::create(&self.sup, request.into_inner().into())
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(proto::CreateContainerResponse { pid }))
    }

    async fn start_container(
        &self,
        request: Request<proto::ContainerRequest>,
    ) -> Result<Response<Empty>, Status> {
        containers::start(&self.sup, &request.into_inner().id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(Empty {}))
    }

    async fn signal(
        &self,
        request: Request<proto::SignalRequest>,
    ) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        containers::signal(&self.sup, &r.id, r.signal, r.all)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(Empty {}))
    }

    async fn delete_container(
        &self,
        request: Request<proto::ContainerRequest>,
    ) -> Result<Response<Empty>, Status> {
        containers::delete(&self.sup, &request.into_inner().id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(Empty {}))
    }

    async fn state(
        &self,
        _: Request<proto::StateRequest>,
    ) -> Result<Response<proto::StateResponse>, Status> {
        let states = self.sup.table().states();
        Ok(Response::new(proto::StateResponse {
            containers: states.iter().map(Into::into).collect(),
        }))
    }

    type EventsStream = EventStream;

    async fn events(
        &self,
        _: Request<proto::EventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let sup = self.sup.clone();
        // Subscribed under the table lock, under which exits are recorded and broadcast: every
        // exit is either in the replay or in the subscription, never in neither.
        let (replay, mut rx) = {
            let table = sup.table();
            (table.exits(), sup.events.subscribe())
        };
        let stream = async_stream::stream! {
            for event in replay {
                yield Ok((&event).into());
            }
            loop {
                match rx.recv().await {
                    Ok(event) => yield Ok((&event).into()),
                    // Fell behind: send every recorded exit again rather than lose some.
                    Err(RecvError::Lagged(_)) => {
                        let replay = sup.table().exits();
                        for event in replay {
                            yield Ok((&event).into());
                        }
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn exec_sync(
        &self,
        request: Request<proto::ExecSyncRequest>,
    ) -> Result<Response<proto::ExecSyncResponse>, Status> {
        let r = request.into_inner();
        if r.timeout < 0 {
            let e = ContainerError::InvalidArgument("exec timeout must not be negative".into());
            return Err(to_status(&e));
        }
        let timeout = Duration::from_secs(r.timeout.unsigned_abs());
        let output = exec_sync::exec_sync(&self.sup, &r.id, r.args, timeout)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(output.into()))
    }

    type ExecStream = OutputStream;

    async fn exec(
        &self,
        request: Request<Streaming<proto::ExecInput>>,
    ) -> Result<Response<OutputStream>, Status> {
        let (start, inputs) = stream_start(request.into_inner()).await?;
        let running = exec_stream::start(&self.sup, start)
            .await
            .map_err(|e| to_status(&e))?;
        let (tx, rx) = mpsc::channel(OUTPUT_BUFFER);
        tokio::spawn(running.run(self.sup.clone(), inputs, tx));
        Ok(Response::new(output_stream(rx)))
    }

    type AttachStream = OutputStream;

    async fn attach(
        &self,
        request: Request<Streaming<proto::ExecInput>>,
    ) -> Result<Response<OutputStream>, Status> {
        let (start, inputs) = stream_start(request.into_inner()).await?;
        let attached = attach::start(&self.sup, &start).map_err(|e| to_status(&e))?;
        let (tx, rx) = mpsc::channel(OUTPUT_BUFFER);
        tokio::spawn(attached.run(inputs, tx));
        Ok(Response::new(output_stream(rx)))
    }

    async fn reopen_log(
        &self,
        request: Request<proto::ContainerRequest>,
    ) -> Result<Response<Empty>, Status> {
        containers::reopen_log(&self.sup, &request.into_inner().id).map_err(|e| to_status(&e))?;
        Ok(Response::new(Empty {}))
    }

    async fn shutdown(
        &self,
        _: Request<proto::ShutdownRequest>,
    ) -> Result<Response<Empty>, Status> {
        shutdown::shutdown(&self.sup)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(Empty {}))
    }
}
