//! OpenTelemetry traces (`tracing.otlp_endpoint`, off by default): berth's `tracing` spans —
//! one per RPC, with children for pull stages, CNI plugin calls and shim calls — exported over
//! OTLP/gRPC in batches. An RPC's span continues the W3C trace context (`traceparent`) kubelet
//! sends in the gRPC metadata. When off, no exporter exists and no header is read.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// How long finished spans wait before a batch is sent.
const EXPORT_DELAY: Duration = Duration::from_secs(1);

static ENABLED: OnceLock<()> = OnceLock::new();

/// The exporter pipeline: a provider to flush on shutdown, and the layer for the subscriber.
pub struct Pipeline<S> {
    pub provider: SdkTracerProvider,
    pub layer: tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
}

/// Builds the OTLP/gRPC exporter for `endpoint` (`http://host:4317`). Call inside a tokio runtime:
/// batches are sent from a tokio task.
pub fn pipeline<S>(endpoint: &str) -> anyhow::Result<Pipeline<S>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(10))
        .build()?;
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .with_batch_config(
            opentelemetry_sdk::trace::BatchConfigBuilder::default()
                .with_scheduled_delay(EXPORT_DELAY)
                .build(),
        )
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("berthd")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("berth"));
    let _ = ENABLED.set(());
    Ok(Pipeline { provider, layer })
}

/// Whether traces are exported.
pub fn enabled() -> bool {
    ENABLED.get().is_some()
}

/// Makes `span` (an RPC's) a child of the trace context in the request's `traceparent` and
/// `tracestate` headers, if any and if tracing is on.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !enabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
