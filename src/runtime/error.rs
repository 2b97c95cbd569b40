//! The runtime's errors. Messages name the action and the object.

use crate::cgroup::CgroupError;
use crate::error::{Classify, Kind};
use crate::image::service::ImageError;
use crate::network::NetworkError;
use crate::snapshot::mount::MountError;
use crate::spec::SpecError;
use crate::store::StoreError;

use super::shim::ShimError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id:?} matches more than one; give more of the id")]
    Ambiguous { what: &'static str, id: String },
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0} is not implemented by berth yet")]
    Unimplemented(String),
    #[error("{action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Shim(#[from] ShimError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A CDI device could not be resolved or injected.
    #[error(transparent)]
    Cdi(#[from] crate::devices::CdiError),
    /// An external OCI runtime (runc, crun) failed.
    #[error(transparent)]
    Oci(#[from] crate::oci::OciError),
    /// A blocking task died.
    #[error("{0}: task failed")]
    Task(String),
    #[error("{action}: deadline of {seconds}s exceeded")]
    Timeout { action: String, seconds: i64 },
    /// A failed creation whose unwinding also failed: both are reported.
    #[error("{cause} (cleanup also failed: {})", cleanup.join("; "))]
    Unwound {
        cause: Box<RuntimeError>,
        cleanup: Vec<String>,
    },
}

impl RuntimeError {
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let action = action.into();
        move |source| RuntimeError::Io { action, source }
    }

    /// Attaches the failures of an unwind to the error that caused it.
    pub fn with_cleanup(self, cleanup: Vec<String>) -> RuntimeError {
        if cleanup.is_empty() {
            self
        } else {
            RuntimeError::Unwound {
                cause: Box::new(self),
                cleanup,
            }
        }
    }
}

impl Classify for RuntimeError {
    fn kind(&self) -> Kind {
        match self {
            RuntimeError::NotFound { .. } => Kind::NotFound,
            RuntimeError::Ambiguous { .. } | RuntimeError::InvalidArgument(_) => {
                Kind::InvalidArgument
            }
            RuntimeError::AlreadyExists(_) => Kind::AlreadyExists,
            RuntimeError::FailedPrecondition(_) => Kind::FailedPrecondition,
            RuntimeError::Unimplemented(_) => Kind::Unimplemented,
            RuntimeError::Io { .. } | RuntimeError::Mount(_) => Kind::Internal,
            RuntimeError::Spec(e) => e.kind(),
            RuntimeError::Shim(e) => e.kind(),
            RuntimeError::Store(e) => e.kind(),
            RuntimeError::Image(e) => e.kind(),
            RuntimeError::Cgroup(e) => e.kind(),
            RuntimeError::Network(e) => e.kind(),
            RuntimeError::Cdi(e) => e.kind(),
            RuntimeError::Oci(e) => e.kind(),
            RuntimeError::Task(_) => Kind::Internal,
            RuntimeError::Timeout { .. } => Kind::DeadlineExceeded,
            RuntimeError::Unwound { cause, .. } => cause.kind(),
        }
    }
}
