//! Telemetry: berthd's Prometheus metrics (recorded everywhere, served on `metrics.address`
//! when it is set).

pub mod grpc;
pub mod metrics;
pub mod serve;

pub use metrics::{NodeSnapshot, metrics};
