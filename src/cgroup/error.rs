//! The cgroup module's error type; every message names the action and the file or cgroup.

use std::path::PathBuf;

use crate::error::{Classify, Kind};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The cgroup path given by the caller (kubelet's cgroup parent plus an id) is unusable.
    #[error("cgroup path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// The host's cgroup mounts could not be understood.
    #[error("detect cgroup hierarchy: {0}")]
    Detect(String),
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("create cgroup directory {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("remove cgroup directory {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A kernel file held something this code does not understand.
    #[error("parse {path}: unexpected content {content:?}")]
    Parse { path: PathBuf, content: String },
    /// The requested limits contradict each other or are out of range.
    #[error("cgroup {cgroup}: invalid resources: {reason}")]
    InvalidResources { cgroup: String, reason: String },
    /// A setting this cgroup version (or this host) cannot express.
    #[error("cgroup {cgroup}: {what} is not supported here")]
    Unsupported { cgroup: String, what: String },
    /// A limit needs a controller the host has not mounted or enabled.
    #[error("cgroup {cgroup}: controller {controller} is not available")]
    MissingController { cgroup: String, controller: String },
    #[error("cgroup {cgroup}: signal process {pid}: {source}")]
    Signal {
        cgroup: String,
        pid: i32,
        source: nix::errno::Errno,
    },
    /// A step failed, and undoing the earlier steps failed too; both are kept.
    #[error("{cause} (cleanup also failed: {cleanup})")]
    Unwound {
        cause: Box<CgroupError>,
        cleanup: Box<CgroupError>,
    },
    /// systemd refused or failed a unit operation (systemd cgroup driver).
    #[error("systemd: {action} unit {unit}: {message}")]
    Systemd {
        unit: String,
        action: &'static str,
        message: String,
    },
    #[error("cgroup {cgroup}: timed out {what}")]
    Timeout { cgroup: String, what: &'static str },
}

impl Classify for CgroupError {
    fn kind(&self) -> Kind {
        match self {
            CgroupError::InvalidPath { .. } | CgroupError::InvalidResources { .. } => {
                Kind::InvalidArgument
            }
            CgroupError::Unsupported { .. } | CgroupError::MissingController { .. } => {
                Kind::FailedPrecondition
            }
            CgroupError::Timeout { .. } => Kind::DeadlineExceeded,
            CgroupError::Unwound { cause, .. } => cause.kind(),
            _ => Kind::Internal,
        }
    }
}
