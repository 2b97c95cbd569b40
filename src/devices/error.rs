//! The errors of CDI resolution and injection. Each names the device (or the spec file) and
//! why; all but a failure to read a spec directory are the request's fault (InvalidArgument).

use std::path::PathBuf;

use crate::error::{Classify, Kind};

#[derive(Debug, thiserror::Error)]
pub enum CdiError {
    /// A requested name is not a valid `vendor/class=name`.
    #[error("CDI device name {name:?}: {why}")]
    BadName { name: String, why: String },
    /// No loaded spec defines the device.
    #[error("CDI device {name}: unknown: no valid CDI spec in {dirs} defines it{broken}")]
    Unknown {
        name: String,
        /// The spec directories, comma-separated.
        dirs: String,
        /// `; ignored spec files: ...` when some files could not be loaded, else empty.
        broken: String,
    },
    /// Two spec files of the same directory define the device.
    #[error("CDI device {name}: defined by both {} and {}", first.display(), second.display())]
    Conflict {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// The device's edits cannot be applied (a host device node missing, an edit berth or the
    /// pod's runtime handler cannot carry out).
    #[error("CDI device {name}: {why}")]
    Inject { name: String, why: String },
    /// A spec directory could not be read.
    #[error("CDI spec directory {}: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
}

impl Classify for CdiError {
    fn kind(&self) -> Kind {
        match self {
            CdiError::Dir { .. } => Kind::Internal,
            _ => Kind::InvalidArgument,
        }
    }
}
