//! Helpers for the shim tests: a real `berth-shim serve` on a temp pod directory (everything of
//! it killed and unpinned on drop), bundles whose spec joins the pod's pinned namespaces, and a
//! reader of CRI log files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth::shimclient::{CreateContainer, ExitEvent, ShimClient, ShimOptions};
use nix::errno::Errno;
use nix::mount::MntFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::container_support::{Bundle, namespace, spec_for};

pub const SHIM: &str = env!("CARGO_BIN_EXE_berth-shim");

/// How long a test waits for an event or a state change.
pub const WAIT: Duration = Duration::from_secs(15);

/// The options most tests use: the pod's own network, IPC and UTS namespaces.
pub fn pod_options() -> ShimOptions {
    ShimOptions {
        net: true,
        ipc: true,
        uts: true,
        pid: false,
        hostname: Some("pod-host".into()),
        userns: None,
    }
}

/// Owned arguments.
pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// A running shim for one pod. On drop (a failed test) its process group and containers are
/// SIGKILLed and its pins unmounted.
pub struct Pod {
    dir: tempfile::TempDir,
    pub client: ShimClient,
    pub shim_pid: i32,
    pids: Vec<i32>,
}

impl Pod {
    pub async fn spawn(opts: ShimOptions) -> Pod {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the shim tests must run as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-pod-")
            .tempdir()
            .expect("pod dir");
        let client = ShimClient::spawn(Path::new(SHIM), "pod-test", dir.path(), &opts)
            .await
            .expect("spawn the shim");
        let pid_text = std::fs::read_to_string(dir.path().join("shim.pid")).expect("shim.pid");
        let shim_pid = pid_text.trim().parse().expect("pid in shim.pid");
        Pod {
            dir,
            client,
            shim_pid,
            pids: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pin of a namespace kind.
    pub fn ns(&self, kind: &str) -> PathBuf {
        self.dir.path().join("ns").join(kind)
    }

    /// Writes `spec` as the bundle's config.json and creates the container; returns its pid.
    pub async fn create(
        &mut self,
        id: &str,
        bundle: &Bundle,
        spec: &Spec,
        log: Option<&Path>,
    ) -> u32 {
        let request = CreateContainer {
            id: id.to_string(),
            log_path: log.map(Path::to_path_buf),
            ..CreateContainer::default()
        };
        self.create_with(request, bundle, spec).await
    }

    /// Like `create`, with the request's other fields (the bundle is filled in).
    pub async fn create_with(
        &mut self,
        mut request: CreateContainer,
        bundle: &Bundle,
        spec: &Spec,
    ) -> u32 {
        spec.save(bundle.path().join("config.json"))
            .expect("write config.json");
        request.bundle = bundle.path().to_path_buf();
        let pid = self
            .client
            .create(&request)
            .await
            .expect("create container");
        self.pids.push(pid as i32);
        pid
    }

    /// Creates and starts a container.
    pub async fn run(&mut self, id: &str, bundle: &Bundle, spec: &Spec, log: Option<&Path>) -> u32 {
        let pid = self.create(id, bundle, spec, log).await;
        self.client.start(id).await.expect("start container");
        pid
    }

    /// Shuts the shim down and checks that nothing of the pod remains: no pin, no shim process,
    /// no pause process, no container process.
    pub async fn shutdown(mut self, pause: Option<i32>) {
        self.client.shutdown().await.expect("Shutdown");
        for kind in ["net", "ipc", "uts", "pid"] {
            assert!(!self.ns(kind).exists(), "pin {kind} is still there");
        }
        let mine: Vec<i32> = self.pids.drain(..).collect();
        for pid in std::iter::once(self.shim_pid).chain(pause).chain(mine) {
            assert!(
                gone(pid).await,
                "process {pid} is still running after Shutdown"
            );
        }
        assert!(
            !self.dir().join("shim.sock").exists(),
            "the socket is left behind"
        );
        self.shim_pid = 0;
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        if self.shim_pid > 0 {
            // The shim leads its own process group (the pause process is in it).
            let _ = kill(Pid::from_raw(-self.shim_pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(self.shim_pid), Some(WaitPidFlag::WNOHANG));
        }
        for &pid in &self.pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for kind in ["net", "ipc", "uts", "pid"] {
            let _ = nix::mount::umount2(&self.ns(kind), MntFlags::MNT_DETACH);
        }
    }
}

/// Whether `pid` has exited (reaped by us when it is our child, or a zombie or gone).
pub async fn gone(pid: i32) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => return true,
            Err(Errno::ECHILD) => match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat)
                    if stat
                        .rsplit(')')
                        .next()
                        .is_some_and(|s| s.trim_start().starts_with('Z')) =>
                {
                    return true;
                }
                Ok(_) => {}
            },
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Where a container's PID namespace comes from.
#[derive(Clone, Copy)]
pub enum PidNs<'a> {
    /// A new one (the container's process is its PID 1).
    New,
    /// The host's (no pid entry in the spec).
    Host,
    /// The pod's, pinned at this path.
    Pod(&'a Path),
}

/// A spec on the bundle's rootfs running `args`, in the pod's pinned network, IPC and UTS
/// namespaces (those it has), with new mount and cgroup namespaces and the given pid namespace.
pub fn pod_spec(bundle: &Bundle, pod: &Pod, args: &[&str], pid: PidNs<'_>) -> Spec {
    let mut spec = spec_for(bundle, args);
    spec.set_hostname(None);
    let mut linux = spec.linux().clone().expect("linux");
    let mut namespaces = Vec::new();
    for ns in linux.namespaces().clone().expect("namespaces") {
        let pin = match ns.typ() {
            LinuxNamespaceType::Network => Some(pod.ns("net")),
            LinuxNamespaceType::Ipc => Some(pod.ns("ipc")),
            LinuxNamespaceType::Uts => Some(pod.ns("uts")),
            LinuxNamespaceType::Pid => match pid {
                PidNs::New => None,
                PidNs::Host => continue,
                PidNs::Pod(path) => Some(path.to_path_buf()),
            },
            _ => None,
        };
        let pin = pin.filter(|p| p.exists());
        namespaces.push(namespace(ns.typ(), pin.as_deref()));
    }
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    spec
}

/// One record of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub stream: String,
    pub partial: bool,
    pub text: String,
}

/// Parses a CRI log file, checking every timestamp.
pub fn read_log(path: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read log {}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let stamp = parts.next().unwrap();
            humantime::parse_rfc3339(stamp).unwrap_or_else(|e| panic!("timestamp {stamp:?}: {e}"));
            let stream = parts.next().expect("stream").to_string();
            let tag = parts.next().expect("tag");
            assert!(tag == "F" || tag == "P", "tag {tag:?} in {line:?}");
            Record {
                stream,
                partial: tag == "P",
                text: parts.next().unwrap_or("").to_string(),
            }
        })
        .collect()
}

/// The texts of one stream's complete records, partial chunks joined to their line.
pub fn lines_of(records: &[Record], stream: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for r in records.iter().filter(|r| r.stream == stream) {
        current.push_str(&r.text);
        if !r.partial {
            lines.push(std::mem::take(&mut current));
        }
    }
    lines
}

/// Waits for the next exit event of `id` on `events`.
pub async fn next_exit(events: &mut berth::shimclient::EventStream, id: &str) -> ExitEvent {
    use futures::StreamExt;
    loop {
        let event = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap_or_else(|_| panic!("no exit event for {id} within {WAIT:?}"))
            .expect("the event stream ended")
            .expect("event");
        if event.id == id {
            return event;
        }
    }
}

/// The inode of a namespace file.
pub fn inode(path: impl AsRef<Path>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path.as_ref())
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.as_ref().display()))
        .ino()
}

/// Waits until `f` holds, or fails the test with `what`.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
