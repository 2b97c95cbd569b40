//! Multi-step creation that unwinds: each step records how to undo it as an [`Step`] value; on
//! failure the steps run in reverse and each cleanup failure is kept, typed, beside the original
//! error (`RuntimeError::Unwound`).

use std::path::PathBuf;
use std::sync::Arc;

use super::{Result, Runtime, RuntimeError};
use crate::shimclient::PodShim;

/// How to undo one step of a creation.
pub enum Step {
    /// Remove a directory tree berth made (missing is fine).
    RemoveDir(PathBuf),
    /// Detach a mount berth made (the rootfs, an image volume, the pod's shm).
    Unmount(PathBuf),
    /// Kill what runs in a container cgroup berth made and remove it.
    RemoveCgroup(String),
    /// Delete a container's process from its pod's shim.
    DeleteFromShim { shim: Arc<dyn PodShim>, id: String },
    /// Shut a pod's new shim down (releasing its namespace pins).
    ShutdownShim(Arc<dyn PodShim>),
    /// CNI DEL of a pod (from the attachment cached at ADD).
    DetachNetwork(String),
}

impl Step {
    /// What the step undoes, for messages.
    pub fn describe(&self) -> String {
        match self {
            Step::RemoveDir(dir) => format!("directory {}", dir.display()),
            Step::Unmount(target) => format!("mount {}", target.display()),
            Step::RemoveCgroup(path) => format!("cgroup {path}"),
            Step::DeleteFromShim { id, .. } => format!("container process {id}"),
            Step::ShutdownShim(_) => "pod shim".into(),
            Step::DetachNetwork(id) => format!("pod network of {id}"),
        }
    }

    async fn run(self, runtime: &Runtime) -> Result<()> {
        match self {
            Step::RemoveDir(dir) => super::teardown::remove_tree(&dir),
            Step::Unmount(target) => runtime
                .effects
                .unmount(&target)
                .map_err(RuntimeError::io(format!("unmount {}", target.display()))),
            Step::RemoveCgroup(path) => runtime.effects.remove_cgroup(&path),
            Step::DeleteFromShim { shim, id } => Ok(shim.delete(&id).await?),
            Step::ShutdownShim(shim) => Ok(shim.shutdown().await?),
            Step::DetachNetwork(id) => runtime.detach_network(&id).await,
        }
    }
}

/// A cleanup that failed while a creation unwound.
#[derive(Debug, thiserror::Error)]
#[error("undo {what}: {error}")]
pub struct UndoFailure {
    pub what: String,
    pub error: RuntimeError,
}

/// Undo steps of a half-done creation. Call [`Undo::commit`] on success; otherwise
/// [`Undo::unwind`] before returning the error.
#[derive(Default)]
pub struct Undo {
    steps: Vec<Step>,
}

impl Undo {
    /// Records how to undo the step just done.
    pub fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// Runs every undo in reverse; returns the failures.
    pub async fn unwind(self, runtime: &Runtime) -> Vec<UndoFailure> {
        let mut failures = vec![];
        for step in self.steps.into_iter().rev() {
            let what = step.describe();
            if let Err(error) = step.run(runtime).await {
                failures.push(UndoFailure { what, error });
            }
        }
        failures
    }

    /// The creation succeeded: nothing to undo.
    pub fn commit(self) {}
}

#[cfg(test)]
mod tests {
    use super::super::host::HostOps;
    use super::super::tests::Harness;
    use super::*;

    #[tokio::test]
    async fn unwinds_every_step_and_keeps_each_failure_typed() {
        let h = Harness::new();
        let dir = h.dir.path().join("made");
        std::fs::create_dir_all(&dir).unwrap();
        h.host.create_cgroup("/berth/c").unwrap();
        h.host.mount_shm(&dir.join("shm")).unwrap();
        let mut undo = Undo::default();
        undo.push(Step::RemoveDir(dir.clone()));
        undo.push(Step::RemoveCgroup("/berth/c".into()));
        undo.push(Step::Unmount(dir.join("shm")));
        h.host.fail_next("unmount");
        let failures = undo.unwind(&h.runtime).await;
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(
            failures[0].what,
            format!("mount {}", dir.join("shm").display())
        );
        assert!(matches!(failures[0].error, RuntimeError::Io { .. }));
        // The later failure stopped nothing done before it.
        assert!(h.host.cgroups().is_empty());
        assert!(!dir.exists());
    }
}
