//! Intents: operations on a pod or container that have begun and not finished, kept durably in
//! the `intents` table so that a berthd killed in the middle leaves a note of what it was doing.
//!
//! ```text
//! create:  intent Create* ──(first side effect ... last)──> record + intent deleted (one txn)
//!                         └─(failure, clean unwind)──────> intent deleted
//! remove:  intent Remove* ──(side effects)──> record + intent deleted (one txn)
//! stop:    intent StopPod ──(side effects)──> record NotReady, then intent deleted
//! ```
//!
//! The intent is committed (fsynced) before the operation's first side effect, so whatever a
//! kill interrupts is named by one. `recovery` undoes creations and finishes stops and removals.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Result, Runtime};
use crate::store::Table;

/// An unfinished operation, keyed by the id of the pod or container it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Intent {
    /// RunPodSandbox: what it may have made besides the shim (found by its `--dir`) and a CNI
    /// attachment (found in the network cache).
    CreatePod {
        /// `<state_dir>/pods/<id>`: the shim's dir, the pins, the shm mount.
        pod_dir: PathBuf,
        /// `<root_dir>/pods/<id>`: hostname, hosts, resolv.conf.
        data_dir: PathBuf,
    },
    /// CreateContainer: everything it may have made.
    CreateContainer {
        sandbox_id: String,
        /// `<state_dir>/containers/<id>`: config.json, the rootfs and image volume mounts.
        bundle: PathBuf,
        /// `<root_dir>/containers/<id>`: the writable layer.
        rw_dir: PathBuf,
        /// The container's cgroupfs path (its last component is the container id).
        cgroup: String,
    },
    /// StopPodSandbox of a recorded pod.
    StopPod,
    /// RemovePodSandbox of a recorded pod.
    RemovePod,
    /// RemoveContainer of a recorded container.
    RemoveContainer,
}

impl Intent {
    /// Whether this intent is recorded over `current`: a stop never hides a removal under way
    /// (the removal stops the pod too, and must still be finished after a restart).
    fn replaces(&self, current: Option<&Intent>) -> bool {
        !(*self == Intent::StopPod && current == Some(&Intent::RemovePod))
    }
}

impl Runtime {
    /// Every unfinished operation.
    pub(super) fn intents(&self) -> Result<Vec<(String, Intent)>> {
        Ok(self.db.read(|r| r.list(Table::Intents))?)
    }

    /// Records `intent` for `id` before its first side effect. A stop does not replace a removal
    /// already under way (the removal stops too); anything else replaces what was there.
    pub(super) fn intend(&self, id: &str, intent: Intent) -> Result<()> {
        Ok(self.db.write(|w| {
            let current: Option<Intent> = w.get(Table::Intents, id)?;
            match intent.replaces(current.as_ref()) {
                true => w.put(Table::Intents, id, &intent),
                false => Ok(()),
            }
        })?)
    }

    /// The operation `intent` on `id` is over (done, or undone without leftovers).
    pub(super) fn fulfil(&self, id: &str, intent: &Intent) -> Result<()> {
        Ok(self.db.write(|w| {
            let current: Option<Intent> = w.get(Table::Intents, id)?;
            if current.as_ref() == Some(intent) {
                w.delete(Table::Intents, id)?;
            }
            Ok(())
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_never_hides_a_removal() {
        assert!(!Intent::StopPod.replaces(Some(&Intent::RemovePod)));
        assert!(Intent::StopPod.replaces(None));
        assert!(Intent::StopPod.replaces(Some(&Intent::StopPod)));
        assert!(Intent::RemovePod.replaces(Some(&Intent::StopPod)));
    }

    #[test]
    fn intents_are_stored_as_tagged_json() {
        let create = Intent::CreateContainer {
            sandbox_id: "p".into(),
            bundle: "/run/berth/containers/c".into(),
            rw_dir: "/var/lib/berth/containers/c".into(),
            cgroup: "/berth/c".into(),
        };
        let json = serde_json::to_value(&create).unwrap();
        assert_eq!(json["op"], "create_container");
        assert_eq!(json["cgroup"], "/berth/c");
        assert_eq!(serde_json::from_value::<Intent>(json).unwrap(), create);
        let stop = serde_json::to_string(&Intent::StopPod).unwrap();
        assert_eq!(stop, r#"{"op":"stop_pod"}"#);
    }
}
