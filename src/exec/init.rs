//! The init helper (`berth-shim init`): a fresh single-threaded process that receives its job over
//! the sync socket on descriptor 0, enters the namespaces, forks the container process once (so it
//! lands in the new or joined pid namespace), reports its pid and exits.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use nix::sys::statfs::{CGROUP_SUPER_MAGIC, fstatfs};

use super::child;
use super::error::{Context, StepError};
use super::idmap::Trees;
use super::namespaces::NsPlan;
use super::process;
use super::protocol::{Channel, Job, Report, Request};
use super::stdio::ChildStdio;
use crate::sys::fork::{Forked, SingleThreaded};

/// Entry point of `berth-shim init`. Never returns: exits 0 once the container process exists,
/// 1 when a step failed (after reporting it to the caller when possible).
pub fn init_main() -> ! {
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth-shim init: {e}");
            1
        }
    };
    std::process::exit(code)
}

fn run() -> Result<(), StepError> {
    // Not dumpable from here to the container program's `execve` (which makes it dumpable again,
    // as for any program): the container process inherits this through the fork, so a process in
    // the container with the same credentials cannot ptrace it, read its memory or environment,
    // or reach the host's berth-shim binary through its `/proc/<pid>/exe` while it waits for its
    // start (runc's init does the same: CVE-2016-9962, CVE-2019-5736).
    nix::sys::prctl::set_dumpable(false).ctx(|| "make the helper non-dumpable")?;
    // Descriptor 0 is the sync socket: keep a close-on-exec copy and put /dev/null in its place,
    // so the container process cannot inherit the socket by accident.
    let sock = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ctx(|| "duplicate the sync socket")?;
    let null = File::open("/dev/null").ctx(|| "open /dev/null")?;
    nix::unistd::dup2_stdin(&null).ctx(|| "replace descriptor 0")?;
    let channel = Channel::from_fd(sock);
    let fds = channel.recv_fds().ctx(|| "receive stdio")?;
    let request: Request = channel
        .recv()
        .ctx(|| "receive the job")?
        .ok_or_else(|| StepError::new("receive the job", "channel closed"))?;
    let mut tree_fds = Vec::new();
    while tree_fds.len() < request.idmapped.len() {
        let batch = channel.recv_fds().ctx(|| "receive the id-mapped mounts")?;
        if batch.is_empty() {
            return Err(StepError::new(
                "receive the id-mapped mounts",
                "empty batch",
            ));
        }
        tree_fds.extend(batch);
    }
    let trees = Trees::from_parts(&request.idmapped, tree_fds)?;
    match prepare_and_fork(&channel, request, fds, trees) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = channel.send(&Report::Failed(e.to_string()));
            Err(e)
        }
    }
}

fn prepare_and_fork(
    channel: &Channel,
    request: Request,
    mut fds: Vec<std::os::fd::OwnedFd>,
    trees: Trees,
) -> Result<(), StepError> {
    // An exec's pidfd follows the stdio descriptors.
    let pidfd = match &request.job {
        Job::Exec { .. } => Some(
            fds.pop()
                .ok_or_else(|| StepError::new("receive the container's pidfd", "missing"))?,
        ),
        Job::Create { .. } => None,
    };
    let stdio = ChildStdio::new(request.stdio, fds)?;
    // Opened here, in the caller's namespaces and with the helper's credentials (a cgroup file
    // checks its opener's), before the spec's rlimits and namespaces apply.
    let cgroup_tasks = open_cgroup_tasks(&request.cgroup_tasks)?;
    let (plan, proc_settings) = match &request.job {
        Job::Create { spec, .. } => {
            let process = spec
                .process()
                .as_ref()
                .ok_or_else(|| StepError::new("spec", "process is missing"))?;
            (NsPlan::for_create(spec)?, process)
        }
        Job::Exec {
            container_pid,
            process,
            ..
        } => {
            let pidfd = pidfd.ok_or_else(|| StepError::new("exec", "no pidfd"))?;
            (NsPlan::for_exec(*container_pid, pidfd)?, process.as_ref())
        }
    };
    // Inherited through fork and exec; done here, in the caller's mount namespace, where
    // /proc/self is this process.
    process::set_rlimits(proc_settings)?;
    process::set_oom_score_adj(proc_settings, channel)?;
    let single = SingleThreaded::check().ctx(|| "fork the container process")?;
    plan.enter()?;
    match single.fork().ctx(|| "fork the container process")? {
        Forked::Parent(pid) => {
            if let Err(e) = channel.send(&Report::Pid(pid.as_raw())) {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                return Err(StepError::new("report the container pid", e));
            }
            Ok(())
        }
        Forked::Child => child::main(channel, request.job, stdio, &plan, &trees, cgroup_tasks),
    }
}

/// The cgroup v1 `tasks` files the container process will move itself through, open for writing
/// (close-on-exec, as every file Rust opens). Each must be a file named `tasks` on a cgroup v1
/// filesystem: a `0` written anywhere else would succeed and leave the process where it is.
fn open_cgroup_tasks(paths: &[PathBuf]) -> Result<Vec<child::TasksFile>, StepError> {
    paths
        .iter()
        .map(|path| {
            let step = || format!("open cgroup file {}", path.display());
            if path.file_name() != Some(OsStr::new("tasks")) {
                return Err(StepError::new(step(), "not a `tasks` file"));
            }
            let file = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .ctx(step)?;
            let fs = fstatfs(&file).ctx(step)?;
            if fs.filesystem_type() != CGROUP_SUPER_MAGIC {
                return Err(StepError::new(step(), "not on a cgroup v1 filesystem"));
            }
            Ok(child::TasksFile {
                path: path.clone(),
                file,
            })
        })
        .collect()
}
