//! The runtime's errors. Messages name the action and the object.

use crate::cgroup::CgroupError;
use crate::error::{Classify, Kind};
use crate::image::service::ImageError;
use crate::network::NetworkError;
use crate::snapshot::mount::MountError;
use crate::spec::SpecError;
use crate::store::StoreError;

use crate::shimclient::ShimError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id:?} matches more than one; give more of the id")]
    Ambiguous { what: &'static str, id: String },
    /// A pod or container name is taken by a recorded object.
    #[error("{what} name {name} is already used by {by}")]
    NameInUse {
        what: &'static str,
        name: String,
        by: String,
    },
    /// A pod or container name is being created by another request right now.
    #[error("{0} is being created by another request")]
    NameReserved(String),
    /// The pod is not Ready (stopped, or its shim died).
    #[error("pod sandbox {0} is not ready")]
    SandboxNotReady(String),
    /// The pod's shim is not running (berthd is not connected to it).
    #[error("pod sandbox {0}: its shim is not running")]
    ShimNotRunning(String),
    /// The pod has no cgroup parent of its own (kubelet gave none), so it cannot be resized.
    #[error("pod sandbox {0} has no cgroup parent of its own to resize")]
    NoPodCgroup(String),
    /// The pod's shim reported no network namespace although the pod has its own.
    #[error("pod sandbox {0}: its shim pinned no network namespace")]
    NoNetworkNamespace(String),
    /// An operation needs the container in another state.
    #[error("container {id} is {state:?}, not {wanted}")]
    ContainerState {
        id: String,
        state: super::records::ContainerState,
        wanted: &'static str,
    },
    /// A stored image's config cannot be read or parsed.
    #[error("image {image}: config: {message}")]
    ImageConfig { image: String, message: String },
    /// A file of an image (`/etc/passwd`, `/etc/group`) is unusable.
    #[error("image file /{path}: {why}")]
    ImageFile { path: String, why: String },
    /// An image's snapshot record cannot be read.
    #[error("image snapshot {chain}: {message}")]
    Snapshot { chain: String, message: String },
    /// A configured runtime handler failed its startup check.
    #[error("runtime handler {name:?} ({}) cannot run containers on this host: {reason}", path.display())]
    HandlerUnusable {
        name: String,
        path: std::path::PathBuf,
        reason: String,
    },
    /// A pod's runtime handler is no longer configured (the config changed across a restart).
    #[error("the pod's runtime handler {0:?} is no longer configured")]
    HandlerGone(String),
    /// A mount below a directory being removed does not go away.
    #[error("{} stays mounted", .0.display())]
    StaysMounted(std::path::PathBuf),
    #[error("{0}")]
    InvalidArgument(String),
    /// No cgroup hierarchy was found at start: containers cannot be created.
    #[error("no cgroup hierarchy on this host")]
    NoCgroupHierarchy,
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
    #[error(transparent)]
    Nri(#[from] crate::nri::NriError),
    /// An external OCI runtime (runc, crun) failed.
    #[error(transparent)]
    Oci(#[from] crate::oci::OciError),
    /// A blocking task died.
    #[error("{0}: task failed")]
    Task(String),
    #[error("{action}: deadline of {seconds}s exceeded")]
    Timeout { action: String, seconds: i64 },
    /// A failed creation whose unwinding also failed: both are reported.
    #[error("{cause} (cleanup also failed: {})", join(cleanup))]
    Unwound {
        cause: Box<RuntimeError>,
        cleanup: Vec<super::undo::UndoFailure>,
    },
}

impl RuntimeError {
    pub fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let action = action.into();
        move |source| RuntimeError::Io { action, source }
    }

    /// Attaches the failures of an unwind to the error that caused it.
    pub fn with_cleanup(self, cleanup: Vec<super::undo::UndoFailure>) -> RuntimeError {
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

fn join(failures: &[super::undo::UndoFailure]) -> String {
    let all: Vec<String> = failures.iter().map(|f| f.to_string()).collect();
    all.join("; ")
}

impl Classify for RuntimeError {
    fn kind(&self) -> Kind {
        match self {
            RuntimeError::NotFound { .. } => Kind::NotFound,
            RuntimeError::Ambiguous { .. } | RuntimeError::InvalidArgument(_) => {
                Kind::InvalidArgument
            }
            RuntimeError::NameInUse { .. } | RuntimeError::NameReserved(_) => Kind::AlreadyExists,
            RuntimeError::SandboxNotReady(_)
            | RuntimeError::ShimNotRunning(_)
            | RuntimeError::NoNetworkNamespace(_)
            | RuntimeError::NoPodCgroup(_)
            | RuntimeError::ContainerState { .. }
            | RuntimeError::ImageConfig { .. }
            | RuntimeError::ImageFile { .. }
            | RuntimeError::Snapshot { .. }
            | RuntimeError::HandlerUnusable { .. }
            | RuntimeError::HandlerGone(_)
            | RuntimeError::StaysMounted(_)
            | RuntimeError::NoCgroupHierarchy => Kind::FailedPrecondition,
            RuntimeError::Unimplemented(_) => Kind::Unimplemented,
            RuntimeError::Io { .. } | RuntimeError::Mount(_) => Kind::Internal,
            RuntimeError::Spec(e) => e.kind(),
            RuntimeError::Shim(e) => e.kind(),
            RuntimeError::Store(e) => e.kind(),
            RuntimeError::Image(e) => e.kind(),
            RuntimeError::Cgroup(e) => e.kind(),
            RuntimeError::Network(e) => e.kind(),
            RuntimeError::Cdi(e) => e.kind(),
            RuntimeError::Nri(e) => e.kind(),
            RuntimeError::Oci(e) => e.kind(),
            RuntimeError::Task(_) => Kind::Internal,
            RuntimeError::Timeout { .. } => Kind::DeadlineExceeded,
            RuntimeError::Unwound { cause, .. } => cause.kind(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::records::ContainerState;

    #[test]
    fn each_state_error_has_its_code_and_names_the_object() {
        let cases = [
            (
                RuntimeError::NameInUse {
                    what: "pod sandbox",
                    name: "web_default_u_0".into(),
                    by: "abc".into(),
                },
                Kind::AlreadyExists,
                "pod sandbox name web_default_u_0 is already used by abc",
            ),
            (
                RuntimeError::NameReserved("pod web".into()),
                Kind::AlreadyExists,
                "pod web is being created by another request",
            ),
            (
                RuntimeError::SandboxNotReady("abc".into()),
                Kind::FailedPrecondition,
                "pod sandbox abc is not ready",
            ),
            (
                RuntimeError::ShimNotRunning("abc".into()),
                Kind::FailedPrecondition,
                "pod sandbox abc: its shim is not running",
            ),
            (
                RuntimeError::ContainerState {
                    id: "c1".into(),
                    state: ContainerState::Exited,
                    wanted: "Created",
                },
                Kind::FailedPrecondition,
                "container c1 is Exited, not Created",
            ),
            (
                RuntimeError::NoCgroupHierarchy,
                Kind::FailedPrecondition,
                "no cgroup hierarchy on this host",
            ),
            (
                RuntimeError::HandlerGone("runc".into()),
                Kind::FailedPrecondition,
                "the pod's runtime handler \"runc\" is no longer configured",
            ),
        ];
        for (err, kind, message) in cases {
            assert_eq!(err.kind(), kind, "{err}");
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn an_unwound_error_keeps_its_cause_code() {
        let failure = crate::runtime::undo::UndoFailure {
            what: "cgroup /berth/c".into(),
            error: RuntimeError::NoCgroupHierarchy,
        };
        let err = RuntimeError::ShimNotRunning("p".into()).with_cleanup(vec![failure]);
        assert_eq!(err.kind(), Kind::FailedPrecondition);
        let cleanup =
            "(cleanup also failed: undo cgroup /berth/c: no cgroup hierarchy on this host)";
        assert!(err.to_string().ends_with(cleanup), "{err}");
    }
}
