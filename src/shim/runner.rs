//! The seam at the OCI runtime boundary: what creates a container's process and runs processes
//! in it. Two implementations: the built-in executor ([`Executor`]) and an external OCI runtime
//! CLI ([`OciRuntime`], runc or crun) given the same bundle. Either way the shim stays the
//! supervisor: it owns the stdio, is the subreaper that reaps the processes, records exits and
//! reads the cgroup. Every container remembers its runner; execs go through
//! [`Runner::exec`], the one place a process is spawned in a running container.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use oci_spec::runtime::{LinuxSeccomp, Process, Spec};

use super::error::ContainerError;
use crate::cgroup::{Cgroup, CgroupError, Resources};
use crate::exec::{ContainerProcess, Created, ExecError, Executor, Stdio};
use crate::oci::{OciRuntime, PassThrough};

/// Creates container processes and runs processes in them. Every call blocks (run it on a
/// blocking thread under the supervisor's gate).
pub(crate) trait Runner: Send + Sync {
    /// Creates container `id` from `bundle` (`spec` is its `config.json`), stopped before it
    /// executes its program, its process in `cgroup` before it runs anything.
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        spec: &Spec,
        stdio: Stdio,
        cgroup: Option<&Cgroup>,
    ) -> Result<Box<dyn Launched>, ContainerError>;

    /// Runs `process` in the running container `id` (`container`: where it is) and its cgroup;
    /// returns the new process's pid once it runs, and the master side of the terminal when the
    /// runtime made its own instead of using the one in `stdio` (an external runtime does, through
    /// its `--console-socket`). The caller reaps the process.
    fn exec(
        &self,
        id: &str,
        container: Target<'_>,
        process: &Process,
        stdio: Stdio,
    ) -> Result<(i32, Option<OwnedFd>), ContainerError>;

    /// Forgets container `id` once its process is gone (removes an external runtime's state).
    fn delete(&self, id: &str) -> Result<(), ContainerError>;
}

/// The running container an exec goes into.
pub(crate) struct Target<'a> {
    /// Its init process, held by a pidfd.
    pub process: &'a ContainerProcess,
    pub bundle: &'a Path,
    pub cgroup: Option<&'a Cgroup>,
    /// The container's seccomp filter, for the built-in executor (an external runtime applies
    /// the one in its own state).
    pub seccomp: Option<&'a LinuxSeccomp>,
    /// The container's exact environment when it is not all UTF-8 (built-in executor only: an
    /// external runtime never gets such a container).
    pub exact_env: Option<&'a [Vec<u8>]>,
}

/// A created container process, stopped before exec.
pub(crate) trait Launched: Send {
    /// The host pid of the container's init process.
    fn pid(&self) -> i32;
    /// Lets it execute its program. On failure the process is gone (or being killed).
    fn start(self: Box<Self>) -> Result<(), ContainerError>;
    /// Forgets a process the reaper has already reaped (it was killed before start).
    fn reaped(self: Box<Self>);
    /// The master side of a terminal the runtime made for the container, when it made one
    /// (instead of using the one the shim passed).
    fn take_terminal(&mut self) -> Option<OwnedFd> {
        None
    }
}

/// The runner a container asks for: an external OCI runtime, or the shim's built-in executor.
pub(crate) fn for_request(executor: &Executor, runtime: Option<OciRuntime>) -> Arc<dyn Runner> {
    match runtime {
        Some(runtime) => Arc::new(runtime),
        None => Arc::new(executor.clone()),
    }
}

impl Runner for Executor {
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        spec: &Spec,
        stdio: Stdio,
        cgroup: Option<&Cgroup>,
    ) -> Result<Box<dyn Launched>, ContainerError> {
        let mut hook_error = None;
        // A systemd scope starts with the process, taking the spec's limits then.
        let resources = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .map(Resources::from)
            .unwrap_or_default();
        // On cgroup v1 (cgroupfs) the process moves itself, which skips the wait a move by pid
        // costs (`Executor::create_in_v1_cgroup`); a systemd scope or a v2 cgroup takes the pid.
        let created = match cgroup.and_then(Cgroup::v1_tasks_files) {
            Some(tasks) => self.create_in_v1_cgroup(bundle, spec, stdio, tasks),
            None => self.create_with(bundle, spec, stdio, |pid| {
                join_cgroup(cgroup, pid, &resources, &mut hook_error)
            }),
        };
        match (created, hook_error) {
            (Ok(created), _) => Ok(Box::new(BuiltIn(id.to_string(), created))),
            (Err(ExecError::Hook { .. }), Some(source)) => Err(ContainerError::Cgroup {
                id: id.to_string(),
                source,
            }),
            (Err(source), _) => Err(exec_error(id, source)),
        }
    }

    fn exec(
        &self,
        id: &str,
        container: Target<'_>,
        process: &Process,
        stdio: Stdio,
    ) -> Result<(i32, Option<OwnedFd>), ContainerError> {
        let cgroup = container.cgroup;
        let (target, seccomp, env) = (container.process, container.seccomp, container.exact_env);
        // As for the container's process: on cgroup v1 (cgroupfs) it moves itself.
        let pid = match cgroup.and_then(Cgroup::v1_tasks_files) {
            Some(tasks) => self.exec_in_v1_cgroup(target, process, seccomp, env, stdio, tasks),
            None => self.exec_with(target, process, seccomp, env, stdio, |pid| {
                let Some(cgroup) = cgroup else { return Ok(()) };
                let joined = cgroup.add_process(pid);
                joined.map_err(|e| ExecError::Setup(format!("join cgroup: {e}")))
            }),
        };
        let pid = pid.map_err(|source| exec_error(id, source))?;
        Ok((pid, None))
    }

    fn delete(&self, _id: &str) -> Result<(), ContainerError> {
        Ok(())
    }
}

struct BuiltIn(String, Created);

impl Launched for BuiltIn {
    fn pid(&self) -> i32 {
        self.1.pid
    }

    fn start(self: Box<Self>) -> Result<(), ContainerError> {
        let BuiltIn(id, created) = *self;
        created.start().map_err(|source| exec_error(&id, source))
    }

    fn reaped(self: Box<Self>) {
        self.1.reaped();
    }
}

fn join_cgroup(
    cgroup: Option<&Cgroup>,
    pid: i32,
    resources: &Resources,
    error: &mut Option<CgroupError>,
) -> Result<(), ExecError> {
    let Some(cgroup) = cgroup else {
        return Ok(());
    };
    cgroup.enter(pid, resources).map_err(|e| {
        let message = e.to_string();
        *error = Some(e);
        ExecError::Setup(message)
    })
}

fn exec_error(id: &str, source: ExecError) -> ContainerError {
    ContainerError::Exec {
        id: id.to_string(),
        source,
    }
}

/// An external runtime creates the cgroup named by the spec's `linux.cgroupsPath` and puts the
/// process in it itself; `cgroup` is only read (stats, OOM) and signalled by the shim.
impl Runner for OciRuntime {
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        _spec: &Spec,
        stdio: Stdio,
        _cgroup: Option<&Cgroup>,
    ) -> Result<Box<dyn Launched>, ContainerError> {
        let (pid, terminal) = if stdio.is_tty() {
            // The runtime makes the terminal in the container; the shim's pty goes unused.
            let (pid, master) = self.create_with_terminal(id, bundle)?;
            (pid, Some(master))
        } else {
            let stdio = pass_through(stdio);
            (OciRuntime::create(self, id, bundle, stdio)?, None)
        };
        Ok(Box::new(OciCreated {
            runtime: self.clone(),
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            pid,
            terminal,
            settled: false,
        }))
    }

    fn exec(
        &self,
        id: &str,
        container: Target<'_>,
        process: &Process,
        stdio: Stdio,
    ) -> Result<(i32, Option<OwnedFd>), ContainerError> {
        let stdio = pass_through(stdio);
        Ok(OciRuntime::exec(
            self,
            id,
            container.bundle,
            process,
            stdio,
        )?)
    }

    fn delete(&self, id: &str) -> Result<(), ContainerError> {
        Ok(OciRuntime::delete(self, id)?)
    }
}

/// The descriptors an external runtime passes on to the process (unused with a terminal: the
/// runtime makes its own).
fn pass_through(stdio: Stdio) -> PassThrough {
    PassThrough {
        stdin: stdio.stdin,
        stdout: stdio.stdout,
        stderr: stdio.stderr,
    }
}

struct OciCreated {
    runtime: OciRuntime,
    id: String,
    bundle: std::path::PathBuf,
    pid: i32,
    terminal: Option<OwnedFd>,
    /// Started or reaped: nothing left to clean up on drop.
    settled: bool,
}

impl Launched for OciCreated {
    fn pid(&self) -> i32 {
        self.pid
    }

    fn start(mut self: Box<Self>) -> Result<(), ContainerError> {
        self.settled = true;
        if let Err(e) = self.runtime.start(&self.id, &self.bundle) {
            // The process may still wait for its start: end it; the reaper collects it.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return Err(e.into());
        }
        Ok(())
    }

    fn reaped(mut self: Box<Self>) {
        self.settled = true;
    }

    fn take_terminal(&mut self) -> Option<OwnedFd> {
        self.terminal.take()
    }
}

impl Drop for OciCreated {
    /// A created container that is never started (its create failed half way) is killed; the
    /// reaper collects the process.
    fn drop(&mut self) {
        if !self.settled {
            let _ = self.runtime.delete(&self.id);
        }
    }
}
