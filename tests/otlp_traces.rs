//! OpenTelemetry traces: berthd with `tracing.otlp_endpoint` exports to an OTLP/gRPC receiver
//! this test runs; RPC spans continue the `traceparent` sent in the gRPC metadata, and pulls, CNI
//! calls and shim calls appear as child spans in the same trace. Needs root and
//! `hack/registry.sh start`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth::cri::api;
use common::Daemon;
use common::pods::{container_config, pod_config};
use common::registry::registries;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for s in scope.spans {
                    spans.push(Span {
                        name: s.name,
                        trace_id: hex::encode(s.trace_id),
                        span_id: hex::encode(s.span_id),
                        parent_span_id: hex::encode(s.parent_span_id),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn start_receiver() -> (Receiver, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let receiver = Receiver::default();
    let service = TraceServiceServer::new(receiver.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (receiver, port)
}

fn traced<T>(message: T, trace_id: &str, parent: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("00-{trace_id}-{parent}-01").parse().unwrap();
    request.metadata_mut().insert("traceparent", value);
    request
}

impl Receiver {
    /// Waits until a span named `name` in `trace_id` arrived, and returns all spans so far.
    async fn wait_for(&self, trace_id: &str, name: &str) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.0.lock().unwrap().clone();
            if spans
                .iter()
                .any(|s| s.trace_id == trace_id && s.name == name)
            {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no span {name} in trace {trace_id}; got {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The named span of `trace_id`, which must be unique there.
fn one<'a>(spans: &'a [Span], trace_id: &str, name: &str) -> &'a Span {
    let found: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id && s.name == name)
        .collect();
    assert_eq!(found.len(), 1, "{name} in {trace_id}: {spans:#?}");
    found[0]
}

/// Whether `span` descends from the span with id `ancestor`.
fn descends(spans: &[Span], span: &Span, ancestor: &str) -> bool {
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let mut parent = span.parent_span_id.as_str();
    while let Some(p) = by_id.get(parent) {
        if p.span_id == ancestor {
            return true;
        }
        parent = p.parent_span_id.as_str();
    }
    parent == ancestor
}

#[tokio::test]
async fn rpc_spans_continue_kubelets_trace_with_pull_cni_and_shim_children() {
    let (receiver, port) = start_receiver().await;
    let r = registries();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\ntracing:\n  otlp_endpoint: http://127.0.0.1:{port}\n",
        r.plain
    ));
    let mut cri = d.client().await;
    let image = format!("{}/library/busybox:latest", r.plain);

    let (pull_trace, pull_parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let pull = api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: image.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    cri.image
        .pull_image(traced(pull, pull_trace, pull_parent))
        .await
        .expect("pull");

    let (pod_trace, pod_parent) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let logs = d.dir.path().join("logs");
    let config = pod_config("traced", &logs);
    let run = api::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: String::new(),
    };
    let pod = cri
        .runtime
        .run_pod_sandbox(traced(run, pod_trace, pod_parent))
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let create = api::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(container_config("c", &image, &["true"])),
        sandbox_config: Some(config),
    };
    cri.runtime
        .create_container(traced(create, pod_trace, pod_parent))
        .await
        .expect("CreateContainer");
    // An RPC without a traceparent starts a trace of its own.
    cri.runtime
        .version(api::VersionRequest::default())
        .await
        .unwrap();

    let spans = receiver.wait_for(pull_trace, "pull.layer").await;
    let rpc = one(&spans, pull_trace, "runtime.v1.ImageService/PullImage");
    assert_eq!(rpc.parent_span_id, pull_parent, "continues kubelet's span");
    for stage in ["pull.resolve", "pull.config"] {
        let child = one(&spans, pull_trace, stage);
        assert_eq!(child.parent_span_id, rpc.span_id, "{stage} under PullImage");
    }
    let layer = spans
        .iter()
        .find(|s| s.trace_id == pull_trace && s.name == "pull.layer")
        .unwrap();
    assert_eq!(layer.parent_span_id, rpc.span_id);

    let spans = receiver.wait_for(pod_trace, "shim.create").await;
    let run = one(&spans, pod_trace, "runtime.v1.RuntimeService/RunPodSandbox");
    assert_eq!(run.parent_span_id, pod_parent);
    for child in ["cni.add", "shim.spawn"] {
        let span = one(&spans, pod_trace, child);
        assert!(
            descends(&spans, span, &run.span_id),
            "{child} under RunPodSandbox: {spans:#?}"
        );
    }
    let create = one(
        &spans,
        pod_trace,
        "runtime.v1.RuntimeService/CreateContainer",
    );
    assert_eq!(create.parent_span_id, pod_parent);
    let shim_create = one(&spans, pod_trace, "shim.create");
    assert!(descends(&spans, shim_create, &create.span_id));

    let spans = receiver.0.lock().unwrap().clone();
    let version = spans
        .iter()
        .find(|s| s.name == "runtime.v1.RuntimeService/Version")
        .expect("Version span exported");
    assert!(version.parent_span_id.is_empty(), "{version:?}");
    assert!(version.trace_id != pull_trace && version.trace_id != pod_trace);
}
