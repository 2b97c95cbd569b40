//! The container process: waits for the caller's go, sets up the container (root filesystem,
//! hostname, sysctls, protected paths) or, for an exec, just the process, drops privileges,
//! reports ready, waits for start and executes the program.

use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, umask};
use oci_spec::runtime::{Process, Spec};

use super::error::{Context, StepError};
use super::idmap::Trees;
use super::namespaces::NsPlan;
use super::protocol::{Channel, Command, Job, Report};
use super::stdio::ChildStdio;
use super::{paths, process, rootfs, seccomp};

/// A cgroup v1 `tasks` file, opened by the init helper, through which the container process
/// moves itself into its cgroup.
pub(crate) struct TasksFile {
    pub path: std::path::PathBuf,
    pub file: std::fs::File,
}

/// Runs the container process to its `execve`. Never returns.
pub(crate) fn main(
    channel: &Channel,
    job: Job,
    stdio: ChildStdio,
    plan: &NsPlan,
    trees: &Trees,
    cgroup_tasks: Vec<TasksFile>,
) -> ! {
    match run(channel, job, stdio, plan, trees, cgroup_tasks) {
        // The caller went away before starting us: nothing to report to.
        Ok(()) => std::process::exit(0),
        Err(e) => {
            let _ = channel.send(&Report::Failed(e.to_string()));
            std::process::exit(1)
        }
    }
}

/// Returns `Ok` only when the caller closed the channel; on success `execve` never returns.
fn run(
    channel: &Channel,
    job: Job,
    stdio: ChildStdio,
    plan: &NsPlan,
    trees: &Trees,
    cgroup_tasks: Vec<TasksFile>,
) -> Result<(), StepError> {
    if !wait_for(channel, "proceed")? {
        return Ok(());
    }
    join_cgroup(cgroup_tasks)?;
    plan.enter_late()?;
    let tty = stdio.is_tty();
    stdio.install()?;
    umask(Mode::empty());
    let profile = match &job {
        Job::Create { spec, .. } => spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()),
        Job::Exec { seccomp, .. } => seccomp.as_deref(),
    };
    let filter = profile.map(seccomp::compile).transpose()?;
    let process = match &job {
        Job::Create {
            bundle,
            rootfs,
            spec,
        } => {
            create_container(channel, bundle, rootfs, spec, plan, tty, trees)?;
            spec.process()
                .as_ref()
                .ok_or_else(|| StepError::new("spec", "no process"))?
        }
        Job::Exec { process, .. } => process.as_ref(),
    };
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while the process
    // still holds it, before the credentials change (as runc does). With no_new_privs, load it
    // as late as possible, so that fewer of the executor's own calls run under it.
    let nnp = process.no_new_privileges() == Some(true);
    let (early, late) = if nnp { (None, filter) } else { (filter, None) };
    prepare_process(channel, process, early.as_ref())?;
    channel.send(&Report::Ready).ctx(|| "report ready")?;
    if !wait_for(channel, "start")? {
        return Ok(());
    }
    crate::sys::signal::reset_dispositions().ctx(|| "reset signal dispositions")?;
    if let Some(filter) = late {
        filter.load()?;
    }
    let exact_env = match &job {
        Job::Create { spec, .. } => exact_env(spec)?,
        Job::Exec { exact_env, .. } => exact_env.clone(),
    };
    Err(process::exec(process, exact_env))
}

/// Moves this process into its cgroup, one hierarchy after the other, by writing `0` (the
/// writing thread) to each `tasks` file; single-threaded, the thread is the whole process. Before
/// the cgroup namespace, which is then rooted there. The files are closed once written.
fn join_cgroup(files: Vec<TasksFile>) -> Result<(), StepError> {
    use std::io::Write;
    for mut t in files {
        (t.file.write_all(b"0")).ctx(|| format!("join cgroup through {}", t.path.display()))?;
    }
    Ok(())
}

/// Waits for the caller's next command; `false` when the caller closed the channel instead.
fn wait_for(channel: &Channel, what: &str) -> Result<bool, StepError> {
    match channel
        .recv::<Command>()
        .ctx(|| format!("wait for {what}"))?
    {
        Some(Command::Proceed) if what == "proceed" => Ok(true),
        Some(Command::Start) if what == "start" => Ok(true),
        Some(other) => Err(StepError::new(
            format!("wait for {what}"),
            format!("got {other:?}"),
        )),
        None => Ok(false),
    }
}

/// Root filesystem and container-wide settings, in runc's order.
fn create_container(
    channel: &Channel,
    bundle: &Path,
    rootfs: &Path,
    spec: &Spec,
    plan: &NsPlan,
    tty: bool,
    trees: &Trees,
) -> Result<(), StepError> {
    rootfs::prepare(channel, bundle, rootfs, spec, plan, tty, trees)?;
    if plan.isolates(CloneFlags::CLONE_NEWUTS) {
        paths::set_hostname(spec)?;
    }
    let linux = spec.linux().as_ref();
    if let Some(sysctls) = linux.and_then(|l| l.sysctl().as_ref()) {
        paths::write_sysctls(sysctls)?;
    }
    for path in linux
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default()
    {
        paths::make_readonly(&path)?;
    }
    for path in linux
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        paths::mask(&path)?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        // The working directory may have to be created first.
        if let Some(process) = spec.process() {
            process::enter_cwd(process)?;
        }
        rootfs::remount_root_readonly()?;
    }
    Ok(())
}

/// Per-process settings shared by create and exec: cwd, `filter` (loaded before the
/// credentials change), credentials, no_new_privs, umask.
fn prepare_process(
    channel: &Channel,
    process: &Process,
    filter: Option<&seccomp::Filter>,
) -> Result<(), StepError> {
    process::enter_cwd(process)?;
    if let Some(filter) = filter {
        filter.load()?;
    }
    process::set_credentials(channel, process)?;
    if process.no_new_privileges() == Some(true) {
        nix::sys::prctl::set_no_new_privs().ctx(|| "set no_new_privs")?;
    }
    let mask = process.user().umask().unwrap_or(0o022);
    let mask = Mode::from_bits_truncate(mask as nix::libc::mode_t);
    umask(mask);
    crate::sys::fd::set_cloexec_from(3).ctx(|| "mark inherited descriptors close-on-exec")?;
    Ok(())
}

/// The exact environment when the spec carries entries that are not UTF-8 (`spec::raw_env`).
fn exact_env(spec: &oci_spec::runtime::Spec) -> Result<Option<Vec<Vec<u8>>>, StepError> {
    let Some(value) = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(crate::spec::raw_env::ANNOTATION))
    else {
        return Ok(None);
    };
    crate::spec::raw_env::decode(value)
        .map(Some)
        .ok_or_else(|| {
            StepError::new(
                "environment",
                format!(
                    "annotation {} is malformed",
                    crate::spec::raw_env::ANNOTATION
                ),
            )
        })
}
