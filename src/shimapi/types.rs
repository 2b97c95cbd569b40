//! The shim's domain types, shared by the shim process and its client: what a pod's shim is
//! asked to pin, what it reports about containers, exits and execs. No gRPC type appears here;
//! `service.rs` and `client.rs` translate to and from `proto`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which namespaces a pod's shim creates and pins; the others stay the host's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShimOptions {
    /// A new network namespace, pinned at `<pod dir>/ns/net`.
    pub net: bool,
    /// A new IPC namespace, pinned at `<pod dir>/ns/ipc`.
    pub ipc: bool,
    /// A new UTS namespace, pinned at `<pod dir>/ns/uts`.
    pub uts: bool,
    /// A pod-shared PID namespace whose init is the shim's pause process, pinned at
    /// `<pod dir>/ns/pid`.
    pub pid: bool,
    /// The hostname set in the new UTS namespace (ignored without `uts`).
    pub hostname: Option<String>,
    /// A pod user namespace with these mappings, pinned at `<pod dir>/ns/user`; it owns the
    /// pod's network, IPC, UTS and PID namespaces.
    pub userns: Option<crate::spec::UserNamespaceMaps>,
}

/// What the shim needs to create one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateContainer {
    /// The container's id, unique within the shim.
    pub id: String,
    /// The bundle holding `config.json`; `root.path` must already be mounted.
    pub bundle: PathBuf,
    /// The CRI log file for stdout/stderr; `None` discards the output.
    pub log_path: Option<PathBuf>,
    /// Give the container a stdin pipe (held open by the shim).
    pub stdin: bool,
    /// CRI `stdin_once`: stdin closes when the first attached client closes its own.
    pub stdin_once: bool,
    /// Give the container a terminal; its output is logged as `stdout`.
    pub tty: bool,
    /// The cgroupfs path the process joins before it runs; `None` leaves it in the shim's.
    pub cgroup: Option<String>,
    /// An external OCI runtime to create (and exec in) the container with; `None` = the
    /// built-in executor.
    pub runtime: Option<crate::oci::OciRuntime>,
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Set up, stopped before exec.
    Created,
    /// Its program runs.
    Running,
    /// Reaped; see its [`Exit`].
    Exited,
}

/// How a container's init process ended. Also the content of `<bundle>/exit` (JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exit {
    /// The exit code, or 128 + signal number when a signal killed it.
    pub exit_code: i32,
    /// The signal that killed it, 0 when it exited by itself.
    pub signal: i32,
    /// When it was reaped, in unix nanoseconds.
    pub finished_at: i64,
    /// The kernel OOM killer killed a process of the container's cgroup.
    pub oom_killed: bool,
    /// The host pid it had.
    pub pid: u32,
}

/// One container exit, as streamed by `Events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitEvent {
    /// The container.
    pub id: String,
    /// How it ended.
    pub exit: Exit,
}

/// One container as the shim knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// The container's id.
    pub id: String,
    /// Host pid of its init process.
    pub pid: u32,
    /// Where it is in its life.
    pub status: ContainerStatus,
    /// When it was started, in unix nanoseconds; 0 when not yet.
    pub started_at: i64,
    /// How it ended, once it has.
    pub exit: Option<Exit>,
}

/// The result of running a command in a container (CRI `ExecSync`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// What it wrote on stdout, at most [`EXEC_OUTPUT_LIMIT`] bytes.
    pub stdout: Vec<u8>,
    /// What it wrote on stderr, at most [`EXEC_OUTPUT_LIMIT`] bytes.
    pub stderr: Vec<u8>,
    /// Its exit code (128 + signal when killed); [`EXEC_TIMEOUT_EXIT_CODE`] when it timed out.
    pub exit_code: i32,
    /// The timeout passed and the process was killed.
    pub timed_out: bool,
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub width: u16,
    pub height: u16,
}

/// The start of a streamed exec (with `args`) or attach (without): which streams the client
/// wants, whether it is a terminal, and the terminal's first size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStart {
    /// The container.
    pub id: String,
    /// The command; empty for attach.
    pub args: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub size: Option<TermSize>,
}

/// What a streaming client sends after the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamInput {
    Stdin(bytes::Bytes),
    /// The client closed stdin.
    StdinEof,
    Resize(TermSize),
}

/// What a streamed exec or attach sends back; `Exit` is the last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutput {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
    /// The exit code (128 + signal when killed).
    Exit(i32),
}

/// How much of each of an exec's output streams is kept; the rest is read and dropped.
pub const EXEC_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// The exit code reported for an exec killed by its timeout, as CRI-O reports it. (containerd
/// answers the RPC with an error instead; the daemon can do that from `timed_out`.)
pub const EXEC_TIMEOUT_EXIT_CODE: i32 = -1;

/// The exit code recorded for a container whose program could not be executed by
/// `StartContainer`, the value containerd reports for a start error.
pub const START_ERROR_EXIT_CODE: i32 = 128;

/// The shim's answer to `Info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimInfo {
    /// The shim's pid.
    pub pid: u32,
    /// Pinned namespace files by kind (`net`, `ipc`, `uts`, `pid`); absent kinds are the host's.
    pub namespaces: BTreeMap<String, PathBuf>,
    /// The shim's version (berth's crate version).
    pub version: String,
}

impl Exit {
    /// The exit of `pid` from its wait status: a code, or a signal (code 128 + signal).
    pub fn from_status(pid: u32, code: Option<i32>, signal: Option<i32>, now: i64) -> Exit {
        let (exit_code, signal) = match (code, signal) {
            (_, Some(sig)) => (128 + sig, sig),
            (Some(code), None) => (code, 0),
            (None, None) => (0, 0),
        };
        Exit {
            exit_code,
            signal,
            finished_at: now,
            oom_killed: false,
            pid,
        }
    }
}

/// Now, in unix nanoseconds.
pub fn unix_nanos_now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signalled_exit_is_128_plus_signal() {
        let exit = Exit::from_status(7, None, Some(15), 1);
        assert_eq!((exit.exit_code, exit.signal), (143, 15));
        let exit = Exit::from_status(7, Some(3), None, 1);
        assert_eq!((exit.exit_code, exit.signal), (3, 0));
    }

    #[test]
    fn exit_file_json_has_the_documented_fields() {
        let exit = Exit::from_status(42, Some(3), None, 1_700_000_000_000_000_000);
        let json: serde_json::Value = serde_json::to_value(exit).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            ["exit_code", "finished_at", "oom_killed", "pid", "signal"]
        );
        assert_eq!(json["exit_code"], 3);
    }
}
