//! Error kinds shared by every module, and the one place where errors become gRPC status codes.
//!
//! Modules define their own error enums (with `thiserror`) and say which [`Kind`] each variant is
//! by implementing [`Classify`]. Only [`to_status`] turns that into a `tonic::Status`.

use std::fmt::Display;

/// What a caller can do about an error; each maps to exactly one gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The request itself is malformed (bad reference, bad ID, bad config value).
    InvalidArgument,
    /// The named object does not exist.
    NotFound,
    /// The object already exists (a name reservation taken).
    AlreadyExists,
    /// The object is not in a state that allows this (start of an exited container).
    FailedPrecondition,
    /// The caller's deadline passed before the work finished.
    DeadlineExceeded,
    /// A peer (registry, shim) could not be reached or failed; retrying may work.
    Unavailable,
    /// Credentials were refused.
    PermissionDenied,
    /// Limits were exceeded (decompression bomb, too many streams).
    ResourceExhausted,
    /// The RPC or option is not implemented by berth.
    Unimplemented,
    /// The work was cancelled before it finished (the caller went away, berthd is stopping).
    Cancelled,
    /// A bug or an unexpected host failure.
    Internal,
}

/// Implemented by every module error: which kind of failure this is.
pub trait Classify {
    fn kind(&self) -> Kind;
}

/// Turns any classified error into the gRPC status kubelet sees. The message is the error's
/// full `Display` chain, which names the action and the object.
pub fn to_status<E: Classify + Display>(err: &E) -> tonic::Status {
    let code = match err.kind() {
        Kind::InvalidArgument => tonic::Code::InvalidArgument,
        Kind::NotFound => tonic::Code::NotFound,
        Kind::AlreadyExists => tonic::Code::AlreadyExists,
        Kind::FailedPrecondition => tonic::Code::FailedPrecondition,
        Kind::DeadlineExceeded => tonic::Code::DeadlineExceeded,
        Kind::Unavailable => tonic::Code::Unavailable,
        Kind::PermissionDenied => tonic::Code::PermissionDenied,
        Kind::ResourceExhausted => tonic::Code::ResourceExhausted,
        Kind::Unimplemented => tonic::Code::Unimplemented,
        Kind::Cancelled => tonic::Code::Cancelled,
        Kind::Internal => tonic::Code::Internal,
    };
    tonic::Status::new(code, err.to_string())
}

/// An RPC or option berth does not implement, and what it would need. Answered honestly, never
/// faked.
#[derive(Debug, thiserror::Error)]
#[error("{what} is not implemented by berth: {missing}")]
pub struct NotImplemented {
    pub what: &'static str,
    pub missing: &'static str,
}

impl Classify for NotImplemented {
    fn kind(&self) -> Kind {
        Kind::Unimplemented
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unimplemented_names_the_rpc() {
        let status = to_status(&NotImplemented {
            what: "CheckpointContainer",
            missing: "no CRIU support",
        });
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert_eq!(
            status.message(),
            "CheckpointContainer is not implemented by berth: no CRIU support"
        );
    }
}
