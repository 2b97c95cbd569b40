//! Running one RUN step: an overlay of the parent's snapshot chain with a fresh upper dir,
//! mounted as the rootfs of a container made by berth's own executor (isolation and limits in
//! `sandbox.rs`), through `berth-shim build-run`, a short-lived helper that is the child
//! subreaper the executor needs (berthd itself never is one). The step's stdout and stderr
//! share one pipe, read in bounded pieces (`output.rs`). The step ends with the build: when
//! berthd drops the step (a cancelled build) or dies, the helper's stdin reaches its end and the
//! helper kills the container; the helper, and berthd when it is there, then kill everything
//! left in the step's cgroup and remove it.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use tokio::io::AsyncReadExt as _;

use super::BuildError;
use super::output::Clip;
use super::sandbox::{self, Isolation, StepCgroup};
use crate::cgroup::Driver;
use crate::config::BuildConfig;
use crate::snapshot::mount::{Overlay, mount_overlay, unmount_path};

/// What to run and where.
pub struct RunStep<'a> {
    pub shim: &'a Path,
    /// Snapshot directories of the parent chain, topmost first (may be empty).
    pub lowers: Vec<PathBuf>,
    /// The step's scratch dir: `upper/` becomes the layer.
    pub dir: &'a Path,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub limits: &'a BuildConfig,
    pub driver: Driver,
    pub network_host: bool,
}

/// The step's rootfs mount, unmounted on drop (a cancelled step included).
struct Mounted(Option<PathBuf>);

impl Mounted {
    fn unmount(mut self) -> Result<(), BuildError> {
        let path = self.0.take().expect("mounted");
        unmount_path(&path).map_err(|e| BuildError::Run(format!("unmount {}: {e}", path.display())))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = unmount_path(&path);
        }
    }
}

/// Runs the step; sends each output line to `output`. Returns the exit code; the upper dir
/// holds the changes.
pub async fn run(
    step: RunStep<'_>,
    output: &(dyn Fn(String) + Send + Sync),
) -> Result<i32, BuildError> {
    let upper = step.dir.join("upper");
    let work = step.dir.join("work");
    let rootfs = step.dir.join("rootfs");
    let empty = step.dir.join("empty");
    for dir in [&upper, &work, &rootfs, &empty] {
        std::fs::create_dir_all(dir)
            .map_err(|e| BuildError::Run(format!("{}: {e}", dir.display())))?;
    }
    let mut lowers = step.lowers.clone();
    if lowers.is_empty() {
        lowers.push(empty);
    }
    let overlay = Overlay {
        lowers,
        upper,
        work,
        volatile: true,
    };
    mount_overlay(&overlay, &rootfs).map_err(|e| BuildError::Run(e.to_string()))?;
    let mounted = Mounted(Some(rootfs.clone()));
    let result = run_mounted(&step, &rootfs, output).await;
    let unmounted = mounted.unmount();
    let code = result?;
    unmounted?;
    Ok(code)
}

async fn run_mounted(
    step: &RunStep<'_>,
    rootfs: &Path,
    output: &(dyn Fn(String) + Send + Sync),
) -> Result<i32, BuildError> {
    let passwd = crate::runtime::image_etc::read_in_root(rootfs, "etc/passwd").unwrap_or_default();
    let group = crate::runtime::image_etc::read_in_root(rootfs, "etc/group").unwrap_or_default();
    let user = crate::spec::resolve_user(&step.user, &passwd, &group)
        .map_err(|e| BuildError::Run(format!("USER {}: {e}", step.user)))?;
    // Dropped last: kills whatever is left of the step and removes its cgroup.
    let cgroup = StepCgroup::create(step.driver, step.limits)?;
    let command = sandbox::Command {
        args: &step.args,
        env: &step.env,
        cwd: &step.cwd,
        user: &user,
    };
    let isolation = Isolation {
        limits: step.limits,
        network_host: step.network_host,
        cgroup: Some(cgroup.oci_path()),
    };
    let spec = sandbox::spec(&command, rootfs, &isolation)?;
    let bundle = step.dir.join("bundle");
    std::fs::create_dir_all(&bundle).map_err(|e| BuildError::Run(e.to_string()))?;
    spec.save(bundle.join("config.json"))
        .map_err(|e| BuildError::Run(format!("write the step's spec: {e}")))?;
    let pipe_error = |e: std::io::Error| BuildError::Run(format!("output pipe: {e}"));
    let (reader, writer) = std::io::pipe().map_err(pipe_error)?;
    let writer = OwnedFd::from(writer);
    let mut command = tokio::process::Command::new(step.shim);
    command
        .arg("build-run")
        .arg(&bundle)
        // Never written: its end tells the helper that the step was dropped.
        .stdin(Stdio::piped())
        .stdout(writer.try_clone().map_err(pipe_error)?)
        .stderr(writer)
        .kill_on_drop(true);
    let spawned = command.spawn();
    // The write ends now live in the helper only: the pipe ends when the step's processes do.
    drop(command);
    let mut child = spawned
        .map_err(|e| BuildError::Run(format!("start {} build-run: {e}", step.shim.display())))?;
    let _alive = child.stdin.take();
    let mut reader = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(pipe_error)?;
    let mut clip = Clip::new(step.limits.max_output);
    let mut buf = vec![0u8; 64 * 1024];
    let mut forward = |line: String| output(line);
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => clip.feed(&buf[..n], &mut forward),
        }
    }
    clip.finish(&mut forward);
    let status = child
        .wait()
        .await
        .map_err(|e| BuildError::Run(format!("wait for the step: {e}")))?;
    drop(cgroup);
    Ok(status.code().unwrap_or(128 + 9))
}

/// `berth-shim build-run BUNDLE`: the helper process. Becomes a child subreaper, creates and
/// starts the container of `BUNDLE/config.json` with this process's stdout and stderr, waits
/// for it and exits with its exit code (128 + signal when killed).
pub fn runner_main() -> std::process::ExitCode {
    match runner() {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("berth build: {e}");
            std::process::ExitCode::from(125)
        }
    }
}

fn runner() -> Result<u8, String> {
    let bundle = std::env::args_os()
        .nth(2)
        .ok_or("usage: berth-shim build-run BUNDLE")?;
    let bundle = PathBuf::from(bundle);
    let mut spec = Spec::load(bundle.join("config.json")).map_err(|e| e.to_string())?;
    own_network(&mut spec)?;
    crate::exec::set_child_subreaper().map_err(|e| e.to_string())?;
    let cgroup = step_cgroup(&spec)?;
    let resources = sandbox::entry_resources(&spec);
    let stdio = crate::exec::Stdio::pipes(
        None,
        std::io::stdout().as_fd_owned()?,
        std::io::stderr().as_fd_owned()?,
    );
    let executor = crate::exec::Executor::new("/proc/self/exe");
    let created = executor
        .create_with(&bundle, &spec, stdio, |pid| match &cgroup {
            Some(cgroup) => cgroup.enter(pid, &resources).map_err(|e| {
                crate::exec::ExecError::Setup(format!("enter the step's cgroup: {e}"))
            }),
            None => Ok(()),
        })
        .map_err(|e| e.to_string())?;
    let process = created.process().map_err(|e| e.to_string())?;
    let started = created.start().map_err(|e| e.to_string());
    let code = started.and_then(|()| wait(&process));
    // What is left of the step, and its cgroup, go with it; berthd does the same unless it
    // is gone.
    if let Some(cgroup) = &cgroup {
        let _ = cgroup.kill_all(nix::sys::signal::Signal::SIGKILL);
        let _ = cgroup.delete();
    }
    code
}

/// A network namespace of the step's own with loopback up, made here (the container inherits
/// it) because the executor does not bring interfaces up.
fn own_network(spec: &mut Spec) -> Result<(), String> {
    let Some(namespaces) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
    else {
        return Ok(());
    };
    let wanted = |n: &oci_spec::runtime::LinuxNamespace| {
        n.typ() == LinuxNamespaceType::Network && n.path().is_none()
    };
    let Some(i) = namespaces.iter().position(wanted) else {
        return Ok(());
    };
    namespaces.remove(i);
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("new network namespace: {e}"))?;
    crate::sys::net::set_loopback_up().map_err(|e| format!("bring loopback up: {e}"))
}

/// The step's cgroup, named by `linux.cgroupsPath` (berthd made and limited it).
fn step_cgroup(spec: &Spec) -> Result<Option<crate::cgroup::Cgroup>, String> {
    let Some(path) = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()) else {
        return Ok(None);
    };
    let path = crate::cgroup::path_from_oci(&path.to_string_lossy()).map_err(|e| e.to_string())?;
    let hierarchy = crate::cgroup::Hierarchy::detect().map_err(|e| e.to_string())?;
    crate::cgroup::Cgroup::open(&hierarchy, &path)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Waits for the step's process and returns its exit code (128 + signal when killed). When
/// stdin ends (berthd dropped the step or died; it never writes) the process is killed, and
/// with it, as the init of its pid namespace, everything it started.
fn wait(process: &crate::exec::ContainerProcess) -> Result<u8, String> {
    use nix::errno::Errno;
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use std::os::fd::AsFd as _;
    let pid = nix::unistd::Pid::from_raw(process.pid());
    let stdin = std::io::stdin();
    let mut berthd_there = true;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code as u8),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as u8),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("wait for the step: {e}")),
        }
        let mut fds = vec![PollFd::new(process.pidfd(), PollFlags::POLLIN)];
        if berthd_there {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(format!("wait for the step: {e}")),
        }
        let gone = fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty());
        if gone {
            berthd_there = false;
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// A duplicate of a locked standard stream's descriptor.
trait AsFdOwned {
    fn as_fd_owned(&self) -> Result<std::os::fd::OwnedFd, String>;
}

impl<T: std::os::fd::AsFd> AsFdOwned for T {
    fn as_fd_owned(&self) -> Result<std::os::fd::OwnedFd, String> {
        self.as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("duplicate a standard stream: {e}"))
    }
}
