//! Which namespaces the init helper joins (by path) and which it creates, for a new container
//! (from `linux.namespaces`) or for an exec (all namespaces of the container's process).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::sched::{CloneFlags, setns, unshare};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::error::{Context, StepError};

/// The process whose namespaces an exec joins.
#[derive(Debug)]
struct JoinProcess {
    pid: i32,
    pidfd: OwnedFd,
    kinds: CloneFlags,
}

/// One namespace to join.
#[derive(Debug)]
struct Join {
    kind: CloneFlags,
    path: PathBuf,
    fd: OwnedFd,
}

/// The namespace plan of one container process.
#[derive(Debug)]
pub(crate) struct NsPlan {
    joins: Vec<Join>,
    /// An exec joins these namespaces of the container's process all at once through its pidfd.
    join_process: Option<JoinProcess>,
    unshare: CloneFlags,
    /// A new cgroup namespace is created by the container process itself, after the caller has
    /// placed it in its cgroup, so that the namespace is rooted there.
    pub new_cgroup: bool,
}

/// The clone flag of a namespace type; time namespaces are not supported (and a user namespace
/// only joined, which `validate` checks).
fn flag(kind: LinuxNamespaceType) -> Result<CloneFlags, StepError> {
    Ok(match kind {
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        other => {
            return Err(StepError::new(
                "namespaces",
                format!("{other:?} is not supported"),
            ));
        }
    })
}

impl NsPlan {
    /// The plan for a new container: join the namespaces with a path, create the others.
    pub fn for_create(spec: &Spec) -> Result<NsPlan, StepError> {
        let mut plan = NsPlan {
            joins: Vec::new(),
            join_process: None,
            unshare: CloneFlags::empty(),
            new_cgroup: false,
        };
        let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().clone());
        for ns in namespaces.unwrap_or_default() {
            let kind = flag(ns.typ())?;
            match ns.path() {
                Some(path) => plan.joins.push(Join {
                    kind,
                    path: path.clone(),
                    fd: File::open(path)
                        .ctx(|| format!("open {:?} namespace {}", ns.typ(), path.display()))?
                        .into(),
                }),
                None if kind == CloneFlags::CLONE_NEWCGROUP => plan.new_cgroup = true,
                None => plan.unshare |= kind,
            }
        }
        plan.mount_last();
        Ok(plan)
    }

    /// The plan for an exec: join every namespace of process `pid` (held by `pidfd`) that
    /// differs from ours. Which ones differ is read under `/proc/<pid>`, which is that process
    /// only while it lives: so it is checked alive after the reads, and joined by its pidfd.
    pub fn for_exec(pid: i32, pidfd: OwnedFd) -> Result<NsPlan, StepError> {
        let gone = || StepError::new(format!("join container process {pid}"), "it has exited");
        let same = |name: &str| -> Result<bool, StepError> {
            let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{name}"))
                .ctx(|| format!("inspect namespace {name} of container process {pid}"))?;
            let ours = std::fs::metadata(format!("/proc/self/ns/{name}"))
                .ctx(|| format!("inspect own namespace {name}"))?;
            Ok(theirs.ino() == ours.ino() && theirs.dev() == ours.dev())
        };
        let kinds = [
            ("user", CloneFlags::CLONE_NEWUSER),
            ("cgroup", CloneFlags::CLONE_NEWCGROUP),
            ("ipc", CloneFlags::CLONE_NEWIPC),
            ("uts", CloneFlags::CLONE_NEWUTS),
            ("net", CloneFlags::CLONE_NEWNET),
            ("pid", CloneFlags::CLONE_NEWPID),
            ("mnt", CloneFlags::CLONE_NEWNS),
        ];
        if super::target::exited(pidfd.as_fd()) {
            return Err(gone());
        }
        let mut join = CloneFlags::empty();
        for (name, kind) in kinds {
            if !same(name).map_err(|e| {
                if super::target::exited(pidfd.as_fd()) {
                    gone()
                } else {
                    e
                }
            })? {
                join |= kind;
            }
        }
        if super::target::exited(pidfd.as_fd()) {
            return Err(gone());
        }
        Ok(NsPlan {
            joins: Vec::new(),
            join_process: Some(JoinProcess {
                pid,
                pidfd,
                kinds: join,
            }),
            unshare: CloneFlags::empty(),
            new_cgroup: false,
        })
    }

    /// The user namespace first (the others are owned by it and joined with its
    /// capabilities); the mount namespace last, as it changes how later paths resolve.
    fn mount_last(&mut self) {
        self.joins.sort_by_key(|j| match j.kind {
            CloneFlags::CLONE_NEWUSER => 0,
            CloneFlags::CLONE_NEWNS => 2,
            _ => 1,
        });
    }

    /// Whether the process gets a new or joined namespace of `kind` (otherwise it shares ours).
    pub fn isolates(&self, kind: CloneFlags) -> bool {
        self.unshare.contains(kind)
            || self.joins.iter().any(|j| j.kind == kind)
            || self
                .join_process
                .as_ref()
                .is_some_and(|j| j.kinds.contains(kind))
    }

    /// Whether the mount namespace is a new one.
    pub fn new_mount(&self) -> bool {
        self.unshare.contains(CloneFlags::CLONE_NEWNS)
    }

    /// Joins, then creates, the namespaces of the plan (the pid namespace applies to children).
    pub fn enter(&self) -> Result<(), StepError> {
        if let Some(join) = &self.join_process
            && !join.kinds.is_empty()
        {
            let pid = join.pid;
            setns(join.pidfd.as_fd(), join.kinds).map_err(|e| match e {
                nix::errno::Errno::ESRCH => {
                    StepError::new(format!("join container process {pid}"), "it has exited")
                }
                e => StepError::new(format!("join the namespaces of process {pid}"), e),
            })?;
            if join.kinds.contains(CloneFlags::CLONE_NEWUSER) {
                become_root()?;
            }
        }
        for join in &self.joins {
            setns(join.fd.as_fd(), join.kind)
                .ctx(|| format!("join namespace {}", join.path.display()))?;
            if join.kind == CloneFlags::CLONE_NEWUSER {
                become_root()?;
            }
        }
        if !self.unshare.is_empty() {
            unshare(self.unshare).ctx(|| format!("unshare namespaces {:?}", self.unshare))?;
        }
        Ok(())
    }

    /// The late step of the container process: create the cgroup namespace if asked.
    pub fn enter_late(&self) -> Result<(), StepError> {
        if self.new_cgroup {
            unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "unshare cgroup namespace")?;
        }
        Ok(())
    }
}

/// Takes the user namespace's root ids right after joining it (as runc's init does): the host
/// ids this process had are not mapped there, and the kernel refuses to create files (EOVERFLOW)
/// on filesystems of the namespace for an unmapped fsuid. The capabilities stay: going to uid 0
/// makes the effective set the permitted one.
fn become_root() -> Result<(), StepError> {
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .ctx(|| "take gid 0 in the user namespace")?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .ctx(|| "take uid 0 in the user namespace")?;
    Ok(())
}
