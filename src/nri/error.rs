//! NRI's errors: a plugin that fails to connect, answers late or with an error, and adjustments
//! that cannot be applied. Their gRPC codes are decided here, once.

use std::time::Duration;

use crate::error::{Classify, Kind};

#[derive(Debug, thiserror::Error)]
pub enum NriError {
    #[error("NRI plugin did not register within {0:?}")]
    RegistrationTimeout(Duration),
    #[error("NRI plugin {name:?}: {why}")]
    Invalid { name: String, why: String },
    /// The plugin did not answer in time; it is disconnected.
    #[error("NRI plugin {name}: {call}: no answer within {timeout:?}; the plugin is disconnected")]
    Timeout {
        name: String,
        call: &'static str,
        timeout: Duration,
    },
    /// The plugin answered with an error (it refuses the pod or container).
    #[error("NRI plugin {name}: {call}: {message}")]
    Refused {
        name: String,
        call: &'static str,
        message: String,
    },
    /// The request did not reach the plugin or its answer did not come back.
    #[error("NRI plugin {name}: {call}: {source}")]
    Call {
        name: String,
        call: &'static str,
        source: ttrpc::Error,
    },
    #[error("NRI plugin connection: {0}")]
    Connection(String),
    /// Two plugins changed the same thing.
    #[error("NRI: plugins {first} and {second} both adjust {what} of container {container}")]
    Conflict {
        container: String,
        what: String,
        first: String,
        second: String,
    },
    /// A plugin's adjustment cannot be applied.
    #[error("NRI plugin {plugin}: adjustment of container {container}: {why}")]
    Adjustment {
        plugin: String,
        container: String,
        why: String,
    },
    #[error("NRI socket {path}: {source}")]
    Listen {
        path: String,
        source: std::io::Error,
    },
}

impl Classify for NriError {
    fn kind(&self) -> Kind {
        match self {
            NriError::Timeout { .. } | NriError::RegistrationTimeout(_) => Kind::DeadlineExceeded,
            NriError::Refused { .. } | NriError::Conflict { .. } => Kind::FailedPrecondition,
            NriError::Call { .. } => Kind::Unavailable,
            NriError::Adjustment { .. } | NriError::Invalid { .. } => Kind::InvalidArgument,
            NriError::Connection(_) => Kind::Unavailable,
            NriError::Listen { .. } => Kind::Internal,
        }
    }
}
