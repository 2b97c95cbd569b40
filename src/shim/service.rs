//! The Shim gRPC service: translates each request to the container operations and their
//! results (or errors, through `crate::error::to_status`) back.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use super::error::ContainerError;
use super::proto::shim_server::Shim;
use super::proto::{self, Empty};
use super::supervisor::Supervisor;
use super::{containers, exec_sync, shutdown};
use crate::error::to_status;

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
