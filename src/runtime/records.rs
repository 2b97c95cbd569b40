//! Durable records of pod sandboxes and containers, and their state machines.
//!
//! ```text
//! sandbox:    (RunPodSandbox) ──> Ready ──(StopPodSandbox, or its shim died)──> NotReady
//!                                                     (RemovePodSandbox) ──> gone
//!
//! container:  (CreateContainer) ──> Created ──(StartContainer)──> Running ──(exit)──> Exited
//!                                      │                                       ▲
//!                                      └──────(start failed / shim died)───────┘
//!                                                     (RemoveContainer) ──> gone
//! ```
//!
//! Records are stored as JSON in the `sandboxes` and `containers` tables (see `crate::store`).
//! Every change goes through one write transaction, so a crash never leaves half a transition.
//! Creating, stopping and removing are bracketed by an intent (`super::intents`): a record
//! appears, or disappears, in the transaction that ends its intent.

use std::path::PathBuf;

use crate::cri_api as api;
use serde::{Deserialize, Serialize};

/// Nanoseconds since the Unix epoch, as CRI timestamps are.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A fresh 64-hex-character id, like containerd's.
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxState {
    Ready,
    NotReady,
}

/// Paths of the namespaces the pod's shim pinned; `None` = the host's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedPaths {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    pub pid: Option<PathBuf>,
    /// The pod's user namespace (records written before it existed have none).
    #[serde(default)]
    pub user: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub state: SandboxState,
    pub created_at: i64,
    /// The CRI config as kubelet sent it (metadata, labels, annotations, DNS, security, ...).
    pub config: api::PodSandboxConfig,
    pub runtime_handler: String,
    /// `<state_dir>/pods/<id>`: the shim's socket, log and namespace pins.
    pub pod_dir: PathBuf,
    /// `<root_dir>/pods/<id>`: hosts, hostname and resolv.conf files.
    pub data_dir: PathBuf,
    pub namespaces: PinnedPaths,
    /// The pod's /dev/shm tmpfs, when it has its own IPC namespace.
    pub shm: Option<PathBuf>,
    pub hostname: Option<String>,
    /// The pod's IPs from CNI, the primary one first; empty with host networking.
    #[serde(default)]
    pub ips: Vec<String>,
}

impl SandboxRecord {
    pub fn metadata(&self) -> api::PodSandboxMetadata {
        self.config.metadata.clone().unwrap_or_default()
    }

    /// Ready → NotReady (StopPodSandbox, or its shim died). True when the state changed.
    pub fn stop(&mut self) -> bool {
        let was = self.state;
        self.state = SandboxState::NotReady;
        was != self.state
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
}

impl ContainerState {
    pub fn to_cri(self) -> api::ContainerState {
        match self {
            ContainerState::Created => api::ContainerState::ContainerCreated,
            ContainerState::Running => api::ContainerState::ContainerRunning,
            ContainerState::Exited => api::ContainerState::ContainerExited,
        }
    }
}

/// How a container ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub code: i32,
    pub finished_at: i64,
    /// `Completed`, `Error`, `OOMKilled`, `StartError` or `Unknown`.
    pub reason: String,
    pub message: String,
}

impl Exit {
    /// The reason kubelet expects for an exit code.
    pub fn reason_for(code: i32, oom_killed: bool) -> &'static str {
        match (oom_killed, code) {
            (true, _) => "OOMKilled",
            (false, 0) => "Completed",
            (false, _) => "Error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    pub state: ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub exit: Option<Exit>,
    pub pid: u32,
    pub config: api::ContainerConfig,
    /// The image id (config digest) the container runs.
    pub image_id: String,
    /// The image as kubelet named it in the request.
    pub image_name: String,
    /// A repo digest of the image, when it has one (ContainerStatus.image_ref).
    pub image_ref: String,
    /// Full path of the CRI log file; empty when the pod has no log directory.
    pub log_path: PathBuf,
    /// `<state_dir>/containers/<id>`: config.json, the mounted rootfs, the exit file.
    pub bundle: PathBuf,
    /// `<root_dir>/containers/<id>`: the writable layer (upper and work dirs).
    pub rw_dir: PathBuf,
    /// The image's top snapshot chain id (its rootfs), kept from garbage collection.
    pub chain_id: String,
    /// cgroupfs path of the container.
    pub cgroup: String,
    /// The identity its process runs with, from its spec (ContainerStatus.user); `None` in
    /// records written before berth kept it.
    #[serde(default)]
    pub user: Option<ProcessUser>,
    /// Its image volumes, mounted under the bundle until the container is removed.
    #[serde(default)]
    pub image_volumes: Vec<super::image_volumes::ImageVolume>,
    /// The CRI `Signal` StopContainer sends first (config, else image, else SIGTERM), chosen at
    /// creation; 0 (RuntimeDefault) in records written before berth kept it.
    #[serde(default)]
    pub stop_signal: i32,
}

/// A container process's uid, gid and supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessUser {
    pub uid: u32,
    pub gid: u32,
    pub supplemental_groups: Vec<u32>,
}

impl ContainerRecord {
    pub fn metadata(&self) -> api::ContainerMetadata {
        self.config.metadata.clone().unwrap_or_default()
    }

    /// Created → Running: the shim released the process at `started_at`. A container whose
    /// exit came first stays Exited (with its start time). True when the state changed.
    pub fn start(&mut self, started_at: i64) -> bool {
        self.started_at = started_at;
        let created = self.state == ContainerState::Created;
        if created {
            self.state = ContainerState::Running;
        }
        created
    }

    /// Created or Running → Exited with `exit`. The first exit recorded stays: a replayed or
    /// duplicate one changes nothing. True when the state changed.
    pub fn exit(&mut self, exit: Exit) -> bool {
        if self.state == ContainerState::Exited {
            return false;
        }
        self.state = ContainerState::Exited;
        self.exit = Some(exit);
        true
    }

    /// Created → Exited with reason StartError (code 128), as kubelet expects of a start that
    /// failed.
    pub fn fail_start(&mut self, message: String) -> bool {
        self.exit(Exit {
            code: START_ERROR_CODE,
            finished_at: now_ns(),
            reason: "StartError".into(),
            message,
        })
    }
}

/// The exit code of a container whose start failed.
pub const START_ERROR_CODE: i32 = 128;

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> ContainerRecord {
        ContainerRecord {
            id: "c1".into(),
            sandbox_id: "p1".into(),
            state: ContainerState::Created,
            created_at: 1,
            started_at: 0,
            exit: None,
            pid: 10,
            config: Default::default(),
            image_id: String::new(),
            image_name: String::new(),
            image_ref: String::new(),
            log_path: PathBuf::new(),
            bundle: PathBuf::new(),
            rw_dir: PathBuf::new(),
            chain_id: String::new(),
            cgroup: String::new(),
            user: None,
            image_volumes: vec![],
            stop_signal: 0,
        }
    }

    fn exit(code: i32) -> Exit {
        Exit {
            code,
            finished_at: 5,
            reason: Exit::reason_for(code, false).into(),
            message: String::new(),
        }
    }

    #[test]
    fn a_container_goes_created_running_exited_once() {
        let mut c = container();
        assert!(c.start(3));
        assert_eq!((c.state, c.started_at), (ContainerState::Running, 3));
        assert!(!c.start(4), "a second start changes no state");
        assert!(c.exit(exit(2)));
        assert_eq!(c.state, ContainerState::Exited);
        assert!(!c.exit(exit(9)), "the first exit stays");
        assert_eq!(c.exit.as_ref().map(|e| e.code), Some(2));
        assert!(!c.start(6), "an exited container never runs again");
        assert_eq!(c.state, ContainerState::Exited);
    }

    #[test]
    fn an_exit_before_the_start_is_recorded_keeps_the_container_exited() {
        let mut c = container();
        assert!(c.exit(exit(0)));
        assert!(!c.start(3));
        assert_eq!((c.state, c.started_at), (ContainerState::Exited, 3));
    }

    #[test]
    fn a_failed_start_is_a_start_error_exit() {
        let mut c = container();
        assert!(c.fail_start("boom".into()));
        let e = c.exit.unwrap();
        assert_eq!(
            (e.code, e.reason.as_str(), e.message.as_str()),
            (128, "StartError", "boom")
        );
    }

    #[test]
    fn states_change_only_through_the_transitions_here() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/runtime");
        let mut offenders = vec![];
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("records.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                if text.contains(".state = ") {
                    offenders.push(path.display().to_string());
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "state assigned outside records.rs: {offenders:?}"
        );
    }
}
