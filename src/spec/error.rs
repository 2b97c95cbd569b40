//! Why a CRI config could not be turned into an OCI runtime spec.

use crate::error::{Classify, Kind};

/// A spec-building failure. Each message names the offending field or value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// Neither the CRI config nor the image gives the container anything to run.
    #[error(
        "container {container:?}: no command to run: the CRI config sets no command or args and the image has no ENTRYPOINT or CMD"
    )]
    NoCommand { container: String },

    /// The process working directory must be absolute.
    #[error("working directory {0:?} is not an absolute path")]
    RelativeWorkingDir(String),

    /// A user string like `a:b:c` or a uid that is not a number in range.
    #[error("user {user:?}: {reason}")]
    InvalidUser { user: String, reason: &'static str },

    /// A user name that the image's /etc/passwd does not list.
    #[error("user {0:?} not found in the image's /etc/passwd")]
    UnknownUser(String),

    /// A group name that the image's /etc/group does not list.
    #[error("group {0:?} not found in the image's /etc/group")]
    UnknownGroup(String),

    /// `run_as_group` without `run_as_user` or `run_as_username`.
    #[error("run_as_group {0} is set without run_as_user or run_as_username")]
    GroupWithoutUser(i64),

    /// A supplemental group id outside 0..=u32::MAX.
    #[error("supplemental group {0} is not a valid gid")]
    InvalidGid(i64),

    /// A `SupplementalGroupsPolicy` value this version does not know.
    #[error("supplemental_groups_policy {0} is not supported")]
    SupplementalGroupsPolicy(i32),

    /// A capability name that is not a Linux capability.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),

    /// A `NamespaceMode` value that is unknown or not valid for this namespace.
    #[error("{namespace} namespace mode {mode} is not supported")]
    NamespaceMode { namespace: &'static str, mode: i32 },

    /// The plan says the pod's namespace is pinned, but the caller gave no path to join.
    #[error("the pod's {0} namespace should be joined but no namespace path was given")]
    MissingNamespace(&'static str),

    /// A seccomp profile that is unknown, unreadable or malformed.
    #[error("seccomp: {0}")]
    Seccomp(String),

    /// `userns_options` that kubelet's rules refuse (mode CONTAINER or TARGET, not exactly one
    /// mapping, container id 0 unmapped) or that the pod's other settings rule out.
    #[error("user namespace: {0}")]
    UserNamespace(String),

    /// A CRI mount whose uid/gid mappings berth cannot honour: only the pod's own user
    /// namespace mapping, in a pod that has one.
    #[error("mount {container_path:?}: id-mapped mount: {reason}")]
    IdMappedMount {
        container_path: String,
        reason: String,
    },

    /// A privileged container asked for in a pod whose sandbox is not privileged.
    #[error("container {0:?} is privileged but its pod sandbox is not")]
    PrivilegedInUnprivilegedPod(String),

    /// A CRI mount that cannot be honoured.
    #[error("mount {container_path:?}: {reason}")]
    Mount {
        container_path: String,
        reason: &'static str,
    },

    /// A `Mount.mount_options` entry berth does not apply.
    #[error(
        "mount {container_path:?}: mount option {option:?} is not one berth applies ({allowed})"
    )]
    MountOption {
        container_path: String,
        option: String,
        allowed: &'static str,
    },

    /// A device the caller resolved with an invalid cgroup permission string.
    #[error("device {path:?}: permissions {permissions:?} must be a non-empty subset of \"rwm\"")]
    DevicePermissions { path: String, permissions: String },

    /// A sysctl that is not namespaced, or whose namespace the pod shares with the host.
    #[error("sysctl {name:?}: {reason}")]
    Sysctl { name: String, reason: &'static str },

    /// A resource value out of the range the kernel accepts.
    #[error("resource {field} = {value}: {reason}")]
    Resource {
        field: &'static str,
        value: i64,
        reason: &'static str,
    },

    /// oci-spec refused to build a value: a bug in this builder.
    #[error("build OCI spec: {0}")]
    Oci(String),
}

impl Classify for SpecError {
    fn kind(&self) -> Kind {
        match self {
            SpecError::MissingNamespace(_) | SpecError::Oci(_) => Kind::Internal,
            _ => Kind::InvalidArgument,
        }
    }
}
