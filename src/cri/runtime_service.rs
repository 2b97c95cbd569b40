//! The RuntimeService trait: each method hands its request to the file that implements the RPC.
//! RPCs that have not landed answer `Unimplemented` naming themselves.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::list_stream::{self, Replies};
use super::{Cri, api, container, events, reply, sandbox, stats, streaming, unimplemented};

type EventStream = Pin<Box<dyn Stream<Item = Result<api::ContainerEventResponse, Status>> + Send>>;

/// Why the checkpoint RPCs answer Unimplemented.
const CRIU: &str = "checkpoint and restore need CRIU support, which berth does not have";

#[tonic::async_trait]
impl api::runtime_service_server::RuntimeService for Cri {
    type GetContainerEventsStream = EventStream;
    type StreamPodSandboxesStream = Replies<api::StreamPodSandboxesResponse>;
    type StreamContainersStream = Replies<api::StreamContainersResponse>;
    type StreamContainerStatsStream = Replies<api::StreamContainerStatsResponse>;
    type StreamPodSandboxStatsStream = Replies<api::StreamPodSandboxStatsResponse>;
    type StreamPodSandboxMetricsStream = Replies<api::StreamPodSandboxMetricsResponse>;

    async fn get_container_events(
        &self,
        _request: Request<api::GetEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        Ok(Response::new(Box::pin(events::stream(
            self.ctx.runtime.clone(),
        ))))
    }

    async fn version(
        &self,
        _request: Request<api::VersionRequest>,
    ) -> Result<Response<api::VersionResponse>, Status> {
        Ok(Response::new(super::version::version()))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<api::RunPodSandboxRequest>,
    ) -> Result<Response<api::RunPodSandboxResponse>, Status> {
        reply(sandbox::run(&self.ctx.runtime, request.into_inner()).await)
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<api::StopPodSandboxRequest>,
    ) -> Result<Response<api::StopPodSandboxResponse>, Status> {
        reply(sandbox::stop(&self.ctx.runtime, request.into_inner()).await)
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<api::RemovePodSandboxRequest>,
    ) -> Result<Response<api::RemovePodSandboxResponse>, Status> {
        reply(sandbox::remove(&self.ctx.runtime, request.into_inner()).await)
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<api::PodSandboxStatusRequest>,
    ) -> Result<Response<api::PodSandboxStatusResponse>, Status> {
        reply(sandbox::status(&self.ctx.runtime, request.into_inner()))
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<api::ListPodSandboxRequest>,
    ) -> Result<Response<api::ListPodSandboxResponse>, Status> {
        reply(sandbox::list(&self.ctx.runtime, request.into_inner()))
    }

    async fn create_container(
        &self,
        request: Request<api::CreateContainerRequest>,
    ) -> Result<Response<api::CreateContainerResponse>, Status> {
        reply(container::create(&self.ctx.runtime, request.into_inner()).await)
    }

    async fn start_container(
        &self,
        request: Request<api::StartContainerRequest>,
    ) -> Result<Response<api::StartContainerResponse>, Status> {
        reply(container::start(&self.ctx.runtime, request.into_inner()).await)
    }

    async fn stop_container(
        &self,
        request: Request<api::StopContainerRequest>,
    ) -> Result<Response<api::StopContainerResponse>, Status> {
        reply(container::stop(&self.ctx.runtime, request.into_inner()).await)
    }

    async fn remove_container(
        &self,
        request: Request<api::RemoveContainerRequest>,
    ) -> Result<Response<api::RemoveContainerResponse>, Status> {
        reply(container::remove(&self.ctx.runtime, request.into_inner()).await)
    }

    async fn list_containers(
        &self,
        request: Request<api::ListContainersRequest>,
    ) -> Result<Response<api::ListContainersResponse>, Status> {
        reply(container::list(&self.ctx.runtime, request.into_inner()))
    }

    async fn container_status(
        &self,
        request: Request<api::ContainerStatusRequest>,
    ) -> Result<Response<api::ContainerStatusResponse>, Status> {
        reply(container::status(&self.ctx.runtime, request.into_inner()))
    }

    async fn update_container_resources(
        &self,
        request: Request<api::UpdateContainerResourcesRequest>,
    ) -> Result<Response<api::UpdateContainerResourcesResponse>, Status> {
        reply(container::update_resources(&self.ctx.runtime, request.into_inner()).await)
    }

    async fn reopen_container_log(
        &self,
        request: Request<api::ReopenContainerLogRequest>,
    ) -> Result<Response<api::ReopenContainerLogResponse>, Status> {
        reply(container::reopen_log(&self.ctx.runtime, request.into_inner()).await)
    }

    async fn exec_sync(
        &self,
        request: Request<api::ExecSyncRequest>,
    ) -> Result<Response<api::ExecSyncResponse>, Status> {
        reply(container::exec_sync(&self.ctx.runtime, request.into_inner()).await)
    }

    async fn exec(
        &self,
        request: Request<api::ExecRequest>,
    ) -> Result<Response<api::ExecResponse>, Status> {
        reply(streaming::exec(&self.ctx, request.into_inner()))
    }

    async fn attach(
        &self,
        request: Request<api::AttachRequest>,
    ) -> Result<Response<api::AttachResponse>, Status> {
        reply(streaming::attach(&self.ctx, request.into_inner()))
    }

    async fn port_forward(
        &self,
        request: Request<api::PortForwardRequest>,
    ) -> Result<Response<api::PortForwardResponse>, Status> {
        reply(streaming::port_forward(&self.ctx, request.into_inner()))
    }

    async fn container_stats(
        &self,
        request: Request<api::ContainerStatsRequest>,
    ) -> Result<Response<api::ContainerStatsResponse>, Status> {
        reply(stats::container(&self.ctx.runtime, request.into_inner()))
    }

    async fn list_container_stats(
        &self,
        request: Request<api::ListContainerStatsRequest>,
    ) -> Result<Response<api::ListContainerStatsResponse>, Status> {
        reply(stats::list_containers(
            &self.ctx.runtime,
            request.into_inner(),
        ))
    }

    async fn pod_sandbox_stats(
        &self,
        request: Request<api::PodSandboxStatsRequest>,
    ) -> Result<Response<api::PodSandboxStatsResponse>, Status> {
        reply(stats::pod(&self.ctx.runtime, request.into_inner()))
    }

    async fn list_pod_sandbox_stats(
        &self,
        request: Request<api::ListPodSandboxStatsRequest>,
    ) -> Result<Response<api::ListPodSandboxStatsResponse>, Status> {
        reply(stats::list_pods(&self.ctx.runtime, request.into_inner()))
    }

    async fn update_runtime_config(
        &self,
        request: Request<api::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<api::UpdateRuntimeConfigResponse>, Status> {
        reply(super::update_runtime_config::update(
            &self.ctx.runtime,
            request.into_inner(),
        ))
    }

    async fn status(
        &self,
        request: Request<api::StatusRequest>,
    ) -> Result<Response<api::StatusResponse>, Status> {
        let verbose = request.into_inner().verbose;
        Ok(Response::new(super::status::status(
            &self.ctx.config,
            &self.ctx.runtime.network_readiness(),
            self.ctx.runtime.handlers(),
            &self.ctx.runtime.pod_cidr.get(),
            verbose,
        )))
    }

    async fn checkpoint_container(
        &self,
        _request: Request<api::CheckpointContainerRequest>,
    ) -> Result<Response<api::CheckpointContainerResponse>, Status> {
        unimplemented("CheckpointContainer", CRIU)
    }

    async fn list_metric_descriptors(
        &self,
        _request: Request<api::ListMetricDescriptorsRequest>,
    ) -> Result<Response<api::ListMetricDescriptorsResponse>, Status> {
        Ok(Response::new(super::metrics::descriptors()))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _request: Request<api::ListPodSandboxMetricsRequest>,
    ) -> Result<Response<api::ListPodSandboxMetricsResponse>, Status> {
        reply(super::metrics::list(&self.ctx.runtime))
    }

    async fn runtime_config(
        &self,
        _request: Request<api::RuntimeConfigRequest>,
    ) -> Result<Response<api::RuntimeConfigResponse>, Status> {
        Ok(Response::new(super::runtime_config::runtime_config(
            &self.ctx.config,
        )))
    }

    async fn stream_pod_sandboxes(
        &self,
        request: Request<api::StreamPodSandboxesRequest>,
    ) -> Result<Response<Self::StreamPodSandboxesStream>, Status> {
        list_stream::pod_sandboxes(&self.ctx, request.into_inner())
    }

    async fn stream_containers(
        &self,
        request: Request<api::StreamContainersRequest>,
    ) -> Result<Response<Self::StreamContainersStream>, Status> {
        list_stream::containers(&self.ctx, request.into_inner())
    }

    async fn stream_container_stats(
        &self,
        request: Request<api::StreamContainerStatsRequest>,
    ) -> Result<Response<Self::StreamContainerStatsStream>, Status> {
        list_stream::container_stats(&self.ctx, request.into_inner())
    }

    async fn stream_pod_sandbox_stats(
        &self,
        request: Request<api::StreamPodSandboxStatsRequest>,
    ) -> Result<Response<Self::StreamPodSandboxStatsStream>, Status> {
        list_stream::pod_sandbox_stats(&self.ctx, request.into_inner())
    }

    async fn stream_pod_sandbox_metrics(
        &self,
        _request: Request<api::StreamPodSandboxMetricsRequest>,
    ) -> Result<Response<Self::StreamPodSandboxMetricsStream>, Status> {
        list_stream::pod_sandbox_metrics(&self.ctx)
    }

    async fn checkpoint_pod(
        &self,
        _request: Request<api::CheckpointPodRequest>,
    ) -> Result<Response<api::CheckpointPodResponse>, Status> {
        unimplemented("CheckpointPod", CRIU)
    }

    async fn restore_pod(
        &self,
        _request: Request<api::RestorePodRequest>,
    ) -> Result<Response<api::RestorePodResponse>, Status> {
        unimplemented("RestorePod", CRIU)
    }

    async fn update_pod_sandbox_resources(
        &self,
        request: Request<api::UpdatePodSandboxResourcesRequest>,
    ) -> Result<Response<api::UpdatePodSandboxResourcesResponse>, Status> {
        reply(sandbox::update_resources(
            &self.ctx.runtime,
            request.into_inner(),
        ))
    }
}
