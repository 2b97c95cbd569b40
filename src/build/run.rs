//! Running one RUN step: an overlay of the parent's snapshot chain with a fresh upper dir,
//! mounted as the rootfs of a container made by berth's own executor (new mount, pid, ipc and
//! uts namespaces; the host's network), through `berth-shim build-run`, a short-lived helper
//! that is the child subreaper the executor needs (berthd itself never is one). Output is
//! streamed line by line.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use oci_spec::runtime::{LinuxNamespaceType, ProcessBuilder, RootBuilder, Spec, UserBuilder};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::BuildError;
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
    let result = run_mounted(&step, &rootfs, output).await;
    let unmounted = unmount_path(&rootfs);
    let code = result?;
    unmounted.map_err(|e| BuildError::Run(format!("unmount {}: {e}", rootfs.display())))?;
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
    let spec = spec(step, rootfs, &user)?;
    let bundle = step.dir.join("bundle");
    std::fs::create_dir_all(&bundle).map_err(|e| BuildError::Run(e.to_string()))?;
    spec.save(bundle.join("config.json"))
        .map_err(|e| BuildError::Run(format!("write the step's spec: {e}")))?;
    let mut child = tokio::process::Command::new(step.shim)
        .arg("build-run")
        .arg(&bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BuildError::Run(format!("start {} build-run: {e}", step.shim.display())))?;
    let stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    let stderr = BufReader::new(child.stderr.take().expect("piped")).lines();
    let pump = |mut lines: tokio::io::Lines<BufReader<_>>| async move {
        while let Ok(Some(line)) = lines.next_line().await {
            output(line);
        }
    };
    tokio::join!(pump(stdout), async {
        let mut lines = stderr;
        while let Ok(Some(line)) = lines.next_line().await {
            output(line);
        }
    });
    let status = child
        .wait()
        .await
        .map_err(|e| BuildError::Run(format!("wait for the step: {e}")))?;
    Ok(status.code().unwrap_or(128 + 9))
}

/// The container of a RUN step: the executor's defaults (runc's default spec: capabilities,
/// masked paths, /proc, /dev), the host's network.
fn spec(
    step: &RunStep<'_>,
    rootfs: &Path,
    user: &crate::spec::ResolvedUser,
) -> Result<Spec, BuildError> {
    let bad = |e: oci_spec::OciSpecError| BuildError::Run(format!("step spec: {e}"));
    let mut spec = Spec::default();
    let process = ProcessBuilder::default()
        .args(step.args.clone())
        .env(step.env.clone())
        .cwd(if step.cwd.is_empty() {
            "/".to_string()
        } else {
            step.cwd.clone()
        })
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(user.additional_gids.clone())
                .build()
                .map_err(bad)?,
        )
        .terminal(false)
        .build()
        .map_err(bad)?;
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path(rootfs)
            .readonly(false)
            .build()
            .map_err(bad)?,
    ));
    spec.set_hostname(Some("berth-build".into()));
    if let Some(linux) = spec.linux_mut() {
        if let Some(namespaces) = linux.namespaces_mut() {
            namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
        }
        // The step runs in berthd's cgroup; no cgroup path of its own.
        linux.set_cgroups_path(None);
    }
    Ok(spec)
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
    use nix::sys::wait::{WaitStatus, waitpid};
    let bundle = std::env::args_os()
        .nth(2)
        .ok_or("usage: berth-shim build-run BUNDLE")?;
    let bundle = PathBuf::from(bundle);
    let spec = Spec::load(bundle.join("config.json")).map_err(|e| e.to_string())?;
    crate::exec::set_child_subreaper().map_err(|e| e.to_string())?;
    let stdio = crate::exec::Stdio::pipes(
        None,
        std::io::stdout().as_fd_owned()?,
        std::io::stderr().as_fd_owned()?,
    );
    let executor = crate::exec::Executor::new("/proc/self/exe");
    let created = executor
        .create(&bundle, &spec, stdio)
        .map_err(|e| e.to_string())?;
    let pid = nix::unistd::Pid::from_raw(created.pid);
    created.start().map_err(|e| e.to_string())?;
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code as u8),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as u8),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("wait for the step: {e}")),
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
