//! The OCI runtime command line (`runc`, `crun`): berth's external runtime handlers run a
//! container's bundle through it instead of the built-in executor. One [`OciRuntime`] is a binary
//! and its state directory (`--root`); each method is one CLI call (`create`, `start`, `exec`,
//! `delete`, `update`), run synchronously, with the runtime's own error message (from its
//! JSON log, or its stderr) in the error.
//!
//! Containers are created detached with pass-through stdio: the caller's descriptors become the
//! container's 0, 1 and 2, and once the CLI exits the container process is re-parented to the
//! caller (the shim, a child subreaper), which reaps it. `docs/runtime-handlers.md` tells the
//! whole story.

pub mod probe;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Classify, Kind};

/// The log file a runtime writes (JSON lines) in the bundle, as containerd's shim does.
pub const LOG_FILE: &str = "log.json";
/// The pid file `create` writes in the bundle.
pub const PID_FILE: &str = "init.pid";

/// One OCI runtime binary with its state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRuntime {
    /// The binary (`/usr/sbin/runc`).
    pub path: PathBuf,
    /// Its `--root`: where it keeps the state of the containers it created.
    pub root: PathBuf,
    /// Whether it is told `--systemd-cgroup` (the systemd cgroup driver: `linux.cgroupsPath`
    /// is `<slice>:berth:<id>` and the runtime makes the scope over D-Bus).
    pub systemd_cgroup: bool,
}

/// A runtime call that failed.
#[derive(Debug, thiserror::Error)]
#[error("{} {action} {id}: {message}", path.display())]
pub struct OciError {
    /// The runtime binary.
    pub path: PathBuf,
    /// The subcommand: `create`, `start`, `exec`, ...
    pub action: &'static str,
    /// The container.
    pub id: String,
    /// The runtime's own message, or why it could not be run.
    pub message: String,
}

impl Classify for OciError {
    fn kind(&self) -> Kind {
        Kind::Internal
    }
}

/// The standard streams a created or exec'd process gets (pass-through).
pub struct PassThrough {
    /// Descriptor 0; `None` gives `/dev/null`.
    pub stdin: Option<OwnedFd>,
    /// Descriptor 1.
    pub stdout: OwnedFd,
    /// Descriptor 2.
    pub stderr: OwnedFd,
}

impl OciRuntime {
    /// Creates container `id` from `bundle/config.json`, stopped before it executes its program.
    /// Returns the pid of its init process (a child of the caller once this returns, when the
    /// caller is a subreaper).
    pub fn create(&self, id: &str, bundle: &Path, stdio: PassThrough) -> Result<i32, OciError> {
        let pid_file = bundle.join(PID_FILE);
        let mut cmd = self.command(Some(bundle));
        cmd.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id);
        self.run_with_stdio("create", id, bundle, cmd, stdio)?;
        self.read_pid("create", id, &pid_file)
    }

    /// Creates container `id` whose `process.terminal` is true: the runtime makes the terminal
    /// inside the container and hands its master side back over a `--console-socket`, which is
    /// returned with the pid. (The runtime's own stdio is not the container's then.)
    pub fn create_with_terminal(
        &self,
        id: &str,
        bundle: &Path,
    ) -> Result<(i32, OwnedFd), OciError> {
        let console = self.console_socket("create", id)?;
        let pid_file = bundle.join(PID_FILE);
        let mut cmd = self.command(Some(bundle));
        cmd.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--console-socket")
            .arg(&console.path)
            .arg(id);
        self.run_captured("create", id, Some(bundle), cmd, None)?;
        let pid = self.read_pid("create", id, &pid_file)?;
        Ok((pid, self.receive_terminal("create", id, console)?))
    }

    /// A fresh `--console-socket` for `action` of container `id`, listening: `s` in a new
    /// directory with a random name (mode 0700, created by this call, so nothing planted can be
    /// in its way) under the runtime's root-only state directory, never a guessable path in a
    /// shared one such as /tmp.
    fn console_socket(&self, action: &'static str, id: &str) -> Result<ConsoleSocket, OciError> {
        use std::os::unix::fs::DirBuilderExt;
        let fail = |message: String| self.error(action, id, message);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| fail(format!("create {}: {e}", self.root.display())))?;
        let dir = self
            .root
            .join(format!("console-{:016x}", rand::random::<u64>()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| fail(format!("create {}: {e}", dir.display())))?;
        let dir = RemoveOnDrop(dir);
        let socket = dir.0.join("s");
        // A socket's path holds at most 107 bytes.
        if socket.as_os_str().len() > 107 {
            let message = format!("console socket path {} is too long", socket.display());
            return Err(fail(message));
        }
        let listener = UnixListener::bind(&socket)
            .map_err(|e| fail(format!("listen on {}: {e}", socket.display())))?;
        Ok(ConsoleSocket {
            listener,
            path: socket,
            _dir: dir,
        })
    }

    /// The terminal master the runtime sent over `console` (before its command returned).
    fn receive_terminal(
        &self,
        action: &'static str,
        id: &str,
        console: ConsoleSocket,
    ) -> Result<OwnedFd, OciError> {
        let fail = |message: String| self.error(action, id, message);
        let listener = &console.listener;
        listener
            .set_nonblocking(true)
            .map_err(|e| fail(format!("console socket: {e}")))?;
        let (conn, _) = listener
            .accept()
            .map_err(|e| fail(format!("the runtime sent no terminal: {e}")))?;
        conn.set_nonblocking(false)
            .map_err(|e| fail(format!("console socket: {e}")))?;
        let received = crate::sys::scm::recv_fds(conn.as_fd())
            .map_err(|e| fail(format!("receive the terminal: {e}")))?;
        match received.map(|(_, fds)| fds.into_iter().next()) {
            Some(Some(master)) => Ok(master),
            _ => Err(fail("the runtime sent no terminal".into())),
        }
    }

    /// Lets a created container execute its program.
    pub fn start(&self, id: &str, bundle: &Path) -> Result<(), OciError> {
        let mut cmd = self.command(Some(bundle));
        cmd.arg("start").arg(id);
        self.run_captured("start", id, Some(bundle), cmd, None)
    }

    /// Runs `process` (an OCI `process` object, JSON) in the running container, detached.
    /// Returns the new process's pid; it is re-parented to the caller, which reaps it. When
    /// `process.terminal` is true the runtime makes the terminal in the container and its master
    /// side is returned too (`stdio` is then not the process's).
    pub fn exec(
        &self,
        id: &str,
        bundle: &Path,
        process: &oci_spec::runtime::Process,
        stdio: PassThrough,
    ) -> Result<(i32, Option<OwnedFd>), OciError> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let fail = |message: String| self.error("exec", id, message);
        let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let process_file = bundle.join(format!("exec-{}-{n}.json", std::process::id()));
        let pid_file = process_file.with_extension("pid");
        let json =
            serde_json::to_vec(process).map_err(|e| fail(format!("encode the process: {e}")))?;
        std::fs::write(&process_file, json)
            .map_err(|e| fail(format!("write {}: {e}", process_file.display())))?;
        let console = match process.terminal() {
            Some(true) => Some(self.console_socket("exec", id)?),
            _ => None,
        };
        let mut cmd = self.command(Some(bundle));
        cmd.arg("exec")
            .arg("--process")
            .arg(&process_file)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg("--detach");
        if let Some(console) = &console {
            cmd.arg("--console-socket").arg(&console.path);
        }
        cmd.arg(id);
        let ran = match console {
            Some(_) => self.run_captured("exec", id, Some(bundle), cmd, None),
            None => self.run_with_stdio("exec", id, bundle, cmd, stdio),
        };
        let pid = ran.and_then(|()| self.read_pid("exec", id, &pid_file));
        let _ = std::fs::remove_file(&process_file);
        let _ = std::fs::remove_file(&pid_file);
        let pid = pid?;
        let Some(console) = console else {
            return Ok((pid, None));
        };
        match self.receive_terminal("exec", id, console) {
            Ok(master) => Ok((pid, Some(master))),
            Err(e) => {
                // Without its terminal nobody can talk to it.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                Err(e)
            }
        }
    }

    /// Forgets the container (killing it first if it still runs) and removes its state and its
    /// cgroup. A container the runtime does not know is not an error.
    pub fn delete(&self, id: &str) -> Result<(), OciError> {
        let mut cmd = self.command(None);
        cmd.arg("delete").arg("--force").arg(id);
        match self.run_captured("delete", id, None, cmd, None) {
            Err(e) if e.message.contains("does not exist") || e.message.contains("not found") => {
                Ok(())
            }
            other => other,
        }
    }

    /// Applies new resource limits (an OCI `linux.resources` object) to the container.
    pub fn update(
        &self,
        id: &str,
        resources: &oci_spec::runtime::LinuxResources,
    ) -> Result<(), OciError> {
        let json = serde_json::to_vec(resources)
            .map_err(|e| self.error("update", id, format!("encode the resources: {e}")))?;
        let mut cmd = self.command(None);
        cmd.arg("update").arg("--resources").arg("-").arg(id);
        self.run_captured("update", id, None, cmd, Some(&json))
    }

    /// Whether the runtime still has state for container `id`.
    pub fn knows(&self, id: &str) -> bool {
        self.root.join(id).exists()
    }

    fn command(&self, log_dir: Option<&Path>) -> Command {
        let mut cmd = Command::new(&self.path);
        cmd.arg("--root").arg(&self.root);
        if self.systemd_cgroup {
            cmd.arg("--systemd-cgroup");
        }
        if let Some(dir) = log_dir {
            cmd.arg("--log")
                .arg(dir.join(LOG_FILE))
                .arg("--log-format")
                .arg("json");
        }
        cmd
    }

    /// Runs a call that hands the caller's stdio to a container process; the runtime's own
    /// errors are read from its log (they also reach the stream it was given as stderr).
    fn run_with_stdio(
        &self,
        action: &'static str,
        id: &str,
        bundle: &Path,
        mut cmd: Command,
        stdio: PassThrough,
    ) -> Result<(), OciError> {
        let log = bundle.join(LOG_FILE);
        let start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        cmd.stdin(stdio.stdin.map_or_else(Stdio::null, Stdio::from))
            .stdout(Stdio::from(stdio.stdout))
            .stderr(Stdio::from(stdio.stderr));
        let status = cmd
            .status()
            .map_err(|e| self.error(action, id, format!("run: {e}")))?;
        drop(cmd); // closes our copies of the container's stdio
        if status.success() {
            return Ok(());
        }
        let message = last_log_error(&log, start).unwrap_or_else(|| status.to_string());
        Err(self.error(action, id, message))
    }

    /// Runs a call whose stderr (and log, when there is one) explain a failure.
    fn run_captured(
        &self,
        action: &'static str,
        id: &str,
        bundle: Option<&Path>,
        mut cmd: Command,
        input: Option<&[u8]>,
    ) -> Result<(), OciError> {
        let log = bundle.map(|b| b.join(LOG_FILE));
        let start = log
            .as_ref()
            .and_then(|l| std::fs::metadata(l).ok())
            .map_or(0, |m| m.len());
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| self.error(action, id, format!("run: {e}")))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            let _ = stdin.write_all(input);
        }
        let output = child
            .wait_with_output()
            .map_err(|e| self.error(action, id, format!("wait: {e}")))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = log
            .and_then(|l| last_log_error(&l, start))
            .or_else(|| last_error_line(&stderr))
            .unwrap_or_else(|| output.status.to_string());
        Err(self.error(action, id, message))
    }

    fn read_pid(&self, action: &'static str, id: &str, file: &Path) -> Result<i32, OciError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| self.error(action, id, format!("read {}: {e}", file.display())))?;
        text.trim().parse().map_err(|_| {
            let message = format!("{} holds {:?}, not a pid", file.display(), text.trim());
            self.error(action, id, message)
        })
    }

    fn error(&self, action: &'static str, id: &str, message: String) -> OciError {
        OciError {
            path: self.path.clone(),
            action,
            id: id.to_string(),
            message,
        }
    }
}

/// Removes a directory and what is in it when dropped.
struct RemoveOnDrop(PathBuf);

/// A `--console-socket` listening for the runtime's terminal; its directory goes when it is
/// dropped.
struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
    _dir: RemoveOnDrop,
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The message of the last `error` (or `fatal`) record the runtime logged after byte `start`.
fn last_log_error(log: &Path, start: u64) -> Option<String> {
    let mut file = std::fs::File::open(log).ok()?;
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.lines().rev().find_map(|line| {
        let record: serde_json::Value = serde_json::from_str(line).ok()?;
        let level = record.get("level")?.as_str()?;
        matches!(level, "error" | "fatal")
            .then(|| record.get("msg")?.as_str().map(str::to_string))
            .flatten()
    })
}

/// The last non-empty line of a runtime's stderr, without logrus decoration.
fn last_error_line(stderr: &str) -> Option<String> {
    let line = stderr.lines().rev().find(|l| !l.trim().is_empty())?;
    let line = match line.find("msg=\"") {
        Some(at) => line[at + 5..].trim_end().trim_end_matches('"'),
        None => line.trim(),
    };
    Some(line.replace("\\\"", "\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_error_after_the_offset_is_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join(LOG_FILE);
        let old = "{\"level\":\"error\",\"msg\":\"old\",\"time\":\"t\"}\n";
        let new = concat!(
            "{\"level\":\"warning\",\"msg\":\"meh\",\"time\":\"t\"}\n",
            "{\"level\":\"error\",\"msg\":\"exec: \\\"nope\\\": not found\",\"time\":\"t\"}\n",
            "{\"level\":\"info\",\"msg\":\"bye\",\"time\":\"t\"}\n",
        );
        std::fs::write(&log, format!("{old}{new}")).unwrap();
        assert_eq!(
            last_log_error(&log, old.len() as u64).as_deref(),
            Some("exec: \"nope\": not found")
        );
        assert_eq!(last_log_error(&log, (old.len() + new.len()) as u64), None);
    }

    #[test]
    fn stderr_lines_lose_logrus_decoration() {
        let stderr = "time=\"x\" level=error msg=\"container \\\"a\\\" does not exist\"\n";
        assert_eq!(
            last_error_line(stderr).as_deref(),
            Some("container \"a\" does not exist")
        );
        assert_eq!(
            last_error_line("cgroups in hybrid mode not supported\n\n").as_deref(),
            Some("cgroups in hybrid mode not supported")
        );
    }
}
