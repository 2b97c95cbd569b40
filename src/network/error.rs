//! Errors of pod networking. Each names the action, the network and the plugin involved.

use crate::error::{Classify, Kind};

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No valid network config is loaded: pods that need a network cannot start yet.
    #[error("pod network is not ready: {0}")]
    NotReady(String),
    /// A plugin ran and reported failure (CNI error result or non-zero exit).
    #[error("CNI {command} of pod {sandbox_id} in network {network}: plugin {plugin}: {message}")]
    Plugin {
        command: &'static str,
        sandbox_id: String,
        network: String,
        plugin: String,
        message: String,
    },
    /// The plugin's output is not a result berth understands.
    #[error("CNI {command} of pod {sandbox_id}: plugin {plugin}: bad result: {message}")]
    BadResult {
        command: &'static str,
        sandbox_id: String,
        plugin: String,
        message: String,
    },
    /// A cached attachment could not be read or written.
    #[error("{action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
}

impl NetworkError {
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> NetworkError {
        let action = action.into();
        move |source| NetworkError::Io { action, source }
    }
}

impl Classify for NetworkError {
    fn kind(&self) -> Kind {
        match self {
            NetworkError::NotReady(_) => Kind::FailedPrecondition,
            NetworkError::Plugin { .. } | NetworkError::BadResult { .. } => Kind::Unavailable,
            NetworkError::Io { .. } => Kind::Internal,
        }
    }
}
