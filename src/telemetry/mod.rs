//! Telemetry: berthd's Prometheus metrics (recorded everywhere, served on `metrics.address`
//! when it is set) and OpenTelemetry traces (exported to `tracing.otlp_endpoint` when set).

pub mod grpc;
pub mod metrics;
pub mod otel;
pub mod serve;

pub use metrics::{NodeSnapshot, metrics};
