//! The CRI v1 gRPC layer: translates requests into domain calls and results back, nothing else.
//!
//! One file per RPC (or per small family of read-only RPCs). Errors become gRPC status codes only
//! through [`crate::error::to_status`], and are logged once here, inside the RPC's span.

mod container;
mod events;
mod image_pull;
mod image_query;
mod image_remove;
mod image_service;
mod list_stream;
mod metadata;
mod metrics;
mod runtime_config;
mod runtime_service;
mod sandbox;
mod stats;
mod status;
mod streaming;
mod update_runtime_config;
mod version;

use std::fmt::Display;
use std::sync::Arc;

use tonic::{Response, Status};

use crate::config::Config;
use crate::error::{Classify, NotImplemented, to_status};
use crate::image::service::ImageService;
use crate::runtime::Runtime;

pub use crate::cri_api as api;

/// The state every RPC handler may read. Cheap to clone.
#[derive(Clone)]
pub struct Cri {
    ctx: Arc<Context>,
}

/// What the handlers share: the configuration and the domain services.
pub struct Context {
    pub config: Config,
    pub images: Arc<ImageService>,
    pub runtime: Arc<Runtime>,
    pub streaming: Arc<crate::streaming::Server>,
}

impl Cri {
    pub fn new(ctx: Context) -> Cri {
        Cri { ctx: Arc::new(ctx) }
    }

    /// The RuntimeService half, ready to add to a tonic router.
    pub fn runtime_server(&self) -> api::runtime_service_server::RuntimeServiceServer<Cri> {
        let limit = self.ctx.config.grpc.max_message_bytes;
        api::runtime_service_server::RuntimeServiceServer::new(self.clone())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }

    /// The ImageService half, ready to add to a tonic router.
    pub fn image_server(&self) -> api::image_service_server::ImageServiceServer<Cri> {
        let limit = self.ctx.config.grpc.max_message_bytes;
        api::image_service_server::ImageServiceServer::new(self.clone())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }
}

/// Ends every handler: logs a failure once, inside the RPC's span, and converts it.
fn reply<T, E: Classify + Display>(result: Result<T, E>) -> Result<Response<T>, Status> {
    match result {
        Ok(value) => Ok(Response::new(value)),
        Err(err) => {
            let status = to_status(&err);
            tracing::warn!(code = ?status.code(), error = %err, "rpc failed");
            Err(status)
        }
    }
}

/// The answer of every RPC berth does not implement: `Unimplemented`, naming the RPC and what
/// berth lacks for it.
fn unimplemented<T>(rpc: &'static str, missing: &'static str) -> Result<Response<T>, Status> {
    reply(Err(NotImplemented { what: rpc, missing }))
}

/// Records an ID on the current RPC span (declared empty by the server's trace function).
fn record(field: &'static str, value: impl Display) {
    tracing::Span::current().record(field, tracing::field::display(value));
}

/// Whether every selector label is present with the same value.
fn labels_match(
    selector: &std::collections::HashMap<String, String>,
    labels: &std::collections::HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
