//! The caller's side: spawns the init helper, passes it the job and the stdio descriptors, and
//! walks the container process through pid -> on_pid hook -> ready -> start.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxSeccomp, Process, Spec};

use super::error::{ExecError, ProtocolError};
use super::idmap::Trees;
use super::protocol::{Channel, Command, Job, Level, Report, Request, StdioShape};
use super::{ContainerProcess, Stdio, validate};

/// Runs containers with `<init_binary> init` as the fork helper (the `berth-shim` binary).
#[derive(Debug, Clone)]
pub struct Executor {
    init_binary: PathBuf,
}

/// A container process set up and stopped before executing its program.
#[derive(Debug)]
pub struct Created {
    /// Host pid of the container process (pid 1 of a new pid namespace).
    pub pid: i32,
    channel: Option<Channel>,
}

impl Executor {
    /// An executor that runs `init_binary init` as its helper.
    pub fn new(init_binary: impl Into<PathBuf>) -> Executor {
        Executor {
            init_binary: init_binary.into(),
        }
    }

    /// Creates the container process from `spec` (the content of `bundle/config.json`); its
    /// `root.path` (relative to `bundle` or absolute) must already be mounted. The process is
    /// stopped before exec until [`Created::start`].
    pub fn create(&self, bundle: &Path, spec: &Spec, stdio: Stdio) -> Result<Created, ExecError> {
        self.create_with(bundle, spec, stdio, |_| Ok(()))
    }

    /// Like [`Executor::create`], but calls `on_pid` with the process's pid before it sets up
    /// anything. Place the process in its cgroup there: a new cgroup namespace is created after
    /// the hook, rooted at the cgroup the process is in then.
    pub fn create_with(
        &self,
        bundle: &Path,
        spec: &Spec,
        stdio: Stdio,
        on_pid: impl FnOnce(i32) -> Result<(), ExecError>,
    ) -> Result<Created, ExecError> {
        self.create_job(bundle, spec, stdio, Vec::new(), on_pid)
    }

    /// Like [`Executor::create`], with the process placed in a cgroup v1 cgroup by itself: before
    /// it sets anything up, it writes `0` to each of `tasks` (that cgroup's `tasks` file in every
    /// hierarchy), which moves the writing thread. The process is single-threaded then, so that
    /// moves all of it; and the kernel moves a thread that moves itself without the global lock a
    /// `cgroup.procs` write takes, whose first writer after a quiet spell waits for an RCU grace
    /// period (5–30 ms here). The helper opens the files before it enters any namespace.
    pub fn create_in_v1_cgroup(
        &self,
        bundle: &Path,
        spec: &Spec,
        stdio: Stdio,
        tasks: Vec<PathBuf>,
    ) -> Result<Created, ExecError> {
        self.create_job(bundle, spec, stdio, tasks, |_| Ok(()))
    }

    fn create_job(
        &self,
        bundle: &Path,
        spec: &Spec,
        stdio: Stdio,
        cgroup_tasks: Vec<PathBuf>,
        on_pid: impl FnOnce(i32) -> Result<(), ExecError>,
    ) -> Result<Created, ExecError> {
        validate::create(spec, stdio.is_tty())?;
        require_subreaper()?;
        let root = spec.root().as_ref().map(|r| r.path().clone());
        let root = root.ok_or_else(|| ExecError::InvalidSpec("root is missing".into()))?;
        let rootfs = if root.is_absolute() {
            root
        } else {
            bundle.join(root)
        };
        if !rootfs.is_dir() {
            let msg = format!("root.path {} is not a directory", rootfs.display());
            return Err(ExecError::InvalidSpec(msg));
        }
        let trees = super::idmap::prepare(bundle, spec)?;
        let job = Job::Create {
            bundle: bundle.to_path_buf(),
            rootfs,
            spec: Box::new(spec.clone()),
        };
        self.launch(job, stdio, None, &trees, cgroup_tasks, on_pid)
    }

    /// Runs `process` in the namespaces (all of them, mount and pid included) of the running
    /// container whose process is `container`, under the container's `seccomp` profile; joined
    /// through its pidfd, so an exited container is [`ExecError::ContainerExited`], never another
    /// process that got its pid. Returns the new process's pid once it has executed its program;
    /// the caller reaps it. It stays in the caller's cgroup: use [`Executor::exec_with`] to place
    /// it in the container's.
    pub fn exec(
        &self,
        container: &ContainerProcess,
        process: &Process,
        seccomp: Option<&LinuxSeccomp>,
        stdio: Stdio,
    ) -> Result<i32, ExecError> {
        self.exec_with(container, process, seccomp, None, stdio, |_| Ok(()))
    }

    /// Like [`Executor::exec`], with the exact environment to exec with when `process.env` lost
    /// bytes that are not UTF-8 (`spec::raw_env`), and a hook called with the pid before the
    /// process runs anything.
    pub fn exec_with(
        &self,
        container: &ContainerProcess,
        process: &Process,
        seccomp: Option<&LinuxSeccomp>,
        exact_env: Option<&[Vec<u8>]>,
        stdio: Stdio,
        on_pid: impl FnOnce(i32) -> Result<(), ExecError>,
    ) -> Result<i32, ExecError> {
        let job = exec_job(container, process, seccomp, exact_env, &stdio)?;
        self.run_exec(container, job, stdio, Vec::new(), on_pid)
    }

    /// Like [`Executor::exec_with`], with the process placed in a cgroup v1 cgroup by itself, as
    /// [`Executor::create_in_v1_cgroup`] places a container's: it writes `0` to each of `tasks`
    /// before it sets anything up (the helper opens them before it joins the container).
    pub fn exec_in_v1_cgroup(
        &self,
        container: &ContainerProcess,
        process: &Process,
        seccomp: Option<&LinuxSeccomp>,
        exact_env: Option<&[Vec<u8>]>,
        stdio: Stdio,
        tasks: Vec<PathBuf>,
    ) -> Result<i32, ExecError> {
        let job = exec_job(container, process, seccomp, exact_env, &stdio)?;
        self.run_exec(container, job, stdio, tasks, |_| Ok(()))
    }

    fn run_exec(
        &self,
        container: &ContainerProcess,
        job: Job,
        stdio: Stdio,
        cgroup_tasks: Vec<PathBuf>,
        on_pid: impl FnOnce(i32) -> Result<(), ExecError>,
    ) -> Result<i32, ExecError> {
        let gone = || ExecError::ContainerExited(container.pid());
        let none = super::idmap::Trees::default();
        let pidfd = Some(container.pidfd());
        let launched = self.launch(job, stdio, pidfd, &none, cgroup_tasks, on_pid);
        // The helper's join fails once the process is gone; say so plainly.
        let created = launched.map_err(|e| if container.has_exited() { gone() } else { e })?;
        let pid = created.pid;
        created.start()?;
        Ok(pid)
    }

    /// Spawns the helper, sends the job (and `pidfd`, the process an exec joins, the id-mapped
    /// `trees` of a create, and the `cgroup_tasks` files the process joins by itself), learns the
    /// pid, runs the hook and waits for ready.
    fn launch(
        &self,
        job: Job,
        stdio: Stdio,
        pidfd: Option<BorrowedFd<'_>>,
        trees: &Trees,
        cgroup_tasks: Vec<PathBuf>,
        on_pid: impl FnOnce(i32) -> Result<(), ExecError>,
    ) -> Result<Created, ExecError> {
        let (channel, theirs) = Channel::pair()?;
        let mut helper = std::process::Command::new(&self.init_binary)
            .arg("init")
            .env_clear()
            .stdin(theirs)
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|source| ExecError::SpawnInit {
                binary: self.init_binary.clone(),
                source,
            })?;
        let sent = send_request(&channel, job, cgroup_tasks, &stdio, pidfd, trees);
        drop(stdio);
        let pid = sent.and_then(|()| read_pid(&channel));
        let status = helper.wait();
        let pid = match (pid, status) {
            (Ok(pid), Ok(status)) if status.success() => pid,
            (Ok(pid), status) => {
                kill_and_reap(pid);
                return Err(match status {
                    Ok(status) => ExecError::InitDied(status),
                    Err(e) => ExecError::Protocol(ProtocolError::Io(e)),
                });
            }
            (Err(ExecError::Protocol(ProtocolError::Closed)), Ok(status)) => {
                return Err(ExecError::InitDied(status));
            }
            (Err(e), _) => return Err(e),
        };
        if let Err(e) = on_pid(pid) {
            kill_and_reap(pid);
            let message = e.to_string();
            return Err(ExecError::Hook { pid, message });
        }
        let mut created = Created {
            pid,
            channel: Some(channel),
        };
        created.proceed()?;
        Ok(created)
    }
}

/// Sends the stdio descriptors, followed by `pidfd` for an exec, then the request, then the
/// id-mapped trees in batches.
fn send_request(
    channel: &Channel,
    job: Job,
    cgroup_tasks: Vec<PathBuf>,
    stdio: &Stdio,
    pidfd: Option<BorrowedFd<'_>>,
    trees: &Trees,
) -> Result<(), ExecError> {
    let (shape, mut fds): (StdioShape, Vec<BorrowedFd<'_>>) = if stdio.is_tty() {
        (StdioShape::Tty, vec![stdio.stderr.as_fd()])
    } else {
        let mut fds: Vec<BorrowedFd<'_>> = stdio.stdin.iter().map(|fd| fd.as_fd()).collect();
        fds.extend([stdio.stdout.as_fd(), stdio.stderr.as_fd()]);
        let shape = StdioShape::Pipes {
            stdin: stdio.stdin.is_some(),
        };
        (shape, fds)
    };
    fds.extend(pidfd);
    channel.send_fds(&fds)?;
    channel.send(&Request {
        job,
        stdio: shape,
        idmapped: trees.indexes(),
        cgroup_tasks,
    })?;
    for batch in trees.fds().chunks(crate::sys::scm::MAX_FDS) {
        channel.send_fds(batch)?;
    }
    Ok(())
}

fn read_pid(channel: &Channel) -> Result<i32, ExecError> {
    loop {
        match channel.recv::<Report>()? {
            Some(Report::Pid(pid)) => return Ok(pid),
            Some(Report::Log { level, message }) => emit(level, None, &message),
            Some(Report::Failed(message)) => return Err(ExecError::Setup(message)),
            Some(other) => return Err(unexpected(&other)),
            None => return Err(ProtocolError::Closed.into()),
        }
    }
}

impl Created {
    /// A handle on the process for later execs into it. Take it before the process can have been
    /// reaped (before [`Created::start`], or before the caller's reaper may collect it).
    pub fn process(&self) -> Result<ContainerProcess, ExecError> {
        ContainerProcess::open(self.pid)
    }

    /// Lets the process set itself up and waits until it is ready (or failed).
    fn proceed(&mut self) -> Result<(), ExecError> {
        let pid = self.pid;
        let channel = self.channel.as_ref().ok_or(ProtocolError::Closed)?;
        channel.send(&Command::Proceed)?;
        loop {
            match channel.recv::<Report>()? {
                Some(Report::Ready) => return Ok(()),
                Some(Report::Log { level, message }) => emit(level, Some(pid), &message),
                Some(Report::Failed(message)) => {
                    self.abandon();
                    return Err(ExecError::Setup(message));
                }
                Some(other) => return Err(unexpected(&other)),
                None => {
                    self.abandon();
                    return Err(ExecError::ContainerDied(pid));
                }
            }
        }
    }

    /// Releases the process to execute its program. Returns once the exec happened; an exec
    /// failure (e.g. `executable file not found in $PATH`) is an error, and the process has then
    /// exited and been reaped.
    pub fn start(mut self) -> Result<(), ExecError> {
        let pid = self.pid;
        let channel = self.channel.take().ok_or(ProtocolError::Closed)?;
        channel.send(&Command::Start)?;
        loop {
            match channel.recv::<Report>()? {
                None => return Ok(()),
                Some(Report::Log { level, message }) => emit(level, Some(pid), &message),
                Some(Report::Failed(message)) => {
                    reap(pid);
                    return Err(ExecError::Start(message));
                }
                Some(other) => return Err(unexpected(&other)),
            }
        }
    }

    /// Forgets a process the caller has already reaped itself (it was killed before start):
    /// closes the channel without waiting for the pid, which may belong to another process by
    /// now. Dropping the `Created` instead would wait for that pid.
    pub fn reaped(mut self) {
        self.channel.take();
    }

    fn abandon(&mut self) {
        if self.channel.take().is_some() {
            reap(self.pid);
        }
    }
}

impl Drop for Created {
    /// A created process that is never started exits when its channel closes; reap it.
    fn drop(&mut self) {
        self.abandon();
    }
}

/// Checks an exec's request and makes its job.
fn exec_job(
    container: &ContainerProcess,
    process: &Process,
    seccomp: Option<&LinuxSeccomp>,
    exact_env: Option<&[Vec<u8>]>,
    stdio: &Stdio,
) -> Result<Job, ExecError> {
    validate::process(process, stdio.is_tty())?;
    if let Some(profile) = seccomp {
        super::seccomp::compile(profile).map_err(|e| ExecError::InvalidSpec(e.to_string()))?;
    }
    require_subreaper()?;
    if container.has_exited() {
        return Err(ExecError::ContainerExited(container.pid()));
    }
    Ok(Job::Exec {
        container_pid: container.pid(),
        process: Box::new(process.clone()),
        seccomp: seccomp.map(|s| Box::new(s.clone())),
        exact_env: exact_env.map(<[Vec<u8>]>::to_vec),
    })
}

fn unexpected(report: &Report) -> ExecError {
    ProtocolError::Unexpected(format!("{report:?}")).into()
}

fn require_subreaper() -> Result<(), ExecError> {
    let on = nix::sys::prctl::get_child_subreaper()
        .map_err(|e| ExecError::sys("query child subreaper", e))?;
    if on {
        Ok(())
    } else {
        Err(ExecError::NotSubreaper)
    }
}

fn kill_and_reap(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    reap(pid);
}

/// Waits for `pid` to exit; ECHILD (someone else reaped it) is fine.
fn reap(pid: i32) {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Err(nix::errno::Errno::EINTR) => continue,
            _ => return,
        }
    }
}

fn emit(level: Level, pid: Option<i32>, message: &str) {
    match level {
        Level::Debug => tracing::debug!(pid, "container setup: {message}"),
        Level::Info => tracing::info!(pid, "container setup: {message}"),
        Level::Warn => tracing::warn!(pid, "container setup: {message}"),
    }
}
