//! The pod's namespaces. Network, IPC and UTS are created by unsharing them in the shim itself
//! (it lives in them; there is no pause container); a pod-shared PID namespace gets a pause
//! process as its init. Each is pinned by bind-mounting its nsfs file on `<pod dir>/ns/<kind>`,
//! so it outlives the processes in it until the shim's Shutdown (or berthd) unmounts the pin.
//!
//! Creating the pins runs before the shim has any thread: `unshare(CLONE_NEWPID)` is refused to
//! a multi-threaded process, and the PID namespace applies to the next child only. A pod user
//! namespace (`userns.rs`) is pinned at `ns/user` and owns the others.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::error::StartupError;
use crate::shimapi::ShimOptions;

/// The namespaces the shim unshares in itself, by pin name.
const OWN_KINDS: [(&str, CloneFlags); 3] = [
    ("net", CloneFlags::CLONE_NEWNET),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
];

/// The pinned namespaces of a pod and its pause process.
#[derive(Debug, Default)]
pub(crate) struct Pins {
    pinned: Vec<(&'static str, PathBuf)>,
    pause: Option<i32>,
    /// The write end of the pause process's lifeline (its stdin): held for the shim's whole life,
    /// closed by the kernel when the shim dies, which ends the pause process.
    lifeline: Option<std::os::fd::OwnedFd>,
}

impl Pins {
    /// Creates and pins the namespaces `opts` asks for under `<dir>/ns`. On failure whatever was
    /// done is undone (the shim's own namespaces simply die with it).
    pub fn create(dir: &Path, opts: &ShimOptions) -> Result<Pins, StartupError> {
        let ns_dir = dir.join(crate::shimapi::NS_DIR);
        for kind in requested(opts) {
            let path = ns_dir.join(kind);
            if path.symlink_metadata().is_ok() {
                return Err(StartupError::StalePin { path });
            }
        }
        let mut pins = Pins::default();
        if let Err(e) = pins.create_all(&ns_dir, opts) {
            if let Err(cleanup) = pins.remove() {
                tracing::warn!("undo namespace pins after a failed start: {cleanup}");
            }
            if let Some(pid) = pins.pause {
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
            }
            return Err(e);
        }
        Ok(pins)
    }

    fn create_all(&mut self, ns_dir: &Path, opts: &ShimOptions) -> Result<(), StartupError> {
        let wanted = |kind: &str| requested(opts).any(|k| k == kind);
        let mut flags = CloneFlags::empty();
        for (kind, flag) in OWN_KINDS {
            if wanted(kind) {
                flags |= flag;
            }
        }
        // With a pod user namespace a helper creates the namespaces inside it (and the pause
        // process, on a lifeline as below) and the shim joins them; the helper lives until they
        // are pinned.
        let helper = match &opts.userns {
            Some(maps) => {
                let (helper, lifeline) = super::userns::Helper::start(maps, flags, opts.pid)?;
                // Known at once, so that a failure below still kills and reaps it.
                self.pause = helper.pause_pid().ok();
                self.lifeline = lifeline;
                let own: Vec<_> = OWN_KINDS.into_iter().filter(|(k, _)| wanted(k)).collect();
                helper.enter(&own)?;
                Some(helper)
            }
            None => None,
        };
        if helper.is_none() && !flags.is_empty() {
            nix::sched::unshare(flags)
                .map_err(|e| StartupError::sys(format!("unshare namespaces {flags:?}"), e))?;
        }
        if opts.net {
            // Pods always have a working loopback, CNI or not.
            crate::sys::net::set_loopback_up()
                .map_err(|e| StartupError::sys("bring up lo in the pod network namespace", e))?;
        }
        if let (true, Some(name)) = (opts.uts, &opts.hostname) {
            nix::unistd::sethostname(name)
                .map_err(|e| StartupError::sys(format!("set hostname {name:?}"), e))?;
        }
        std::fs::create_dir_all(ns_dir).map_err(StartupError::io("create", ns_dir))?;
        for (kind, _) in OWN_KINDS {
            if wanted(kind) {
                self.pin(kind, &Path::new("/proc/self/ns").join(kind), ns_dir)?;
            }
        }
        if let Some(helper) = &helper {
            self.pin("user", &helper.ns_path("user"), ns_dir)?;
        }
        if opts.pid {
            let pid = match &helper {
                Some(helper) => helper.pause_pid()?,
                None => {
                    let (pid, lifeline) = spawn_pause()?;
                    self.lifeline = Some(lifeline);
                    pid
                }
            };
            self.pause = Some(pid);
            self.pin("pid", Path::new(&format!("/proc/{pid}/ns/pid")), ns_dir)?;
        }
        Ok(())
    }

    /// Bind-mounts `source` (a namespace file) on a new empty file `<ns_dir>/<kind>`.
    fn pin(
        &mut self,
        kind: &'static str,
        source: &Path,
        ns_dir: &Path,
    ) -> Result<(), StartupError> {
        let target = ns_dir.join(kind);
        File::create(&target).map_err(StartupError::io("create pin file", &target))?;
        let mounted = nix::mount::mount(
            Some(source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        );
        if let Err(e) = mounted {
            let _ = std::fs::remove_file(&target);
            let action = format!("pin {} on {}", source.display(), target.display());
            return Err(StartupError::sys(action, e));
        }
        self.pinned.push((kind, target));
        Ok(())
    }

    /// Pin files by kind, for `Info`.
    pub fn map(&self) -> BTreeMap<String, PathBuf> {
        let pins = self.pinned.iter();
        pins.map(|(kind, path)| (kind.to_string(), path.clone()))
            .collect()
    }

    /// The pause process, init of the pod's PID namespace.
    pub fn pause_pid(&self) -> Option<i32> {
        self.pause
    }

    /// SIGKILLs the pause process (the caller reaps it) and unmounts (detached) and deletes every
    /// pin. Goes on after a failure and reports the first one.
    pub fn remove(&mut self) -> Result<(), StartupError> {
        let mut first = None;
        if let Some(pid) = self.pause {
            match kill(Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => {
                    first.get_or_insert(StartupError::sys(format!("kill pause process {pid}"), e));
                }
            }
        }
        for (_, path) in self.pinned.drain(..) {
            match nix::mount::umount2(&path, MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
                Err(e) => {
                    let action = format!("unmount namespace pin {}", path.display());
                    first.get_or_insert(StartupError::sys(action, e));
                }
            }
            if let Err(e) = std::fs::remove_file(&path) {
                first.get_or_insert(StartupError::Io {
                    action: "remove namespace pin",
                    path: path.clone(),
                    source: e,
                });
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// The pin names `opts` asks for.
fn requested(opts: &ShimOptions) -> impl Iterator<Item = &'static str> {
    [
        (opts.net, "net"),
        (opts.ipc, "ipc"),
        (opts.uts, "uts"),
        (opts.pid, "pid"),
        (opts.userns.is_some(), "user"),
    ]
    .into_iter()
    .filter_map(|(on, kind)| on.then_some(kind))
}

/// Starts `berth-shim pause` as PID 1 of a new PID namespace. Only that child enters it: the
/// shim's own later children (the executor's init helpers) stay in the host's namespace, from
/// where they join the pod's by path. (With a pod user namespace the helper starts the pause
/// process instead, in a PID namespace the user namespace owns.) Its stdin is the read end of a pipe whose write end (close
/// on exec, so no container inherits it) is returned: the pause process exits when it closes.
fn spawn_pause() -> Result<(i32, std::os::fd::OwnedFd), StartupError> {
    let (lifeline_r, lifeline_w) =
        std::io::pipe().map_err(StartupError::io("create the pause lifeline", "pipe"))?;
    let own =
        File::open("/proc/self/ns/pid").map_err(StartupError::io("open", "/proc/self/ns/pid"))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWPID)
        .map_err(|e| StartupError::sys("unshare pid namespace", e))?;
    let child = super::pause::spawn(lifeline_r);
    let restored = nix::sched::setns(&own, CloneFlags::CLONE_NEWPID);
    let child = child.map_err(StartupError::Pause)?;
    let pid = i32::try_from(child).unwrap_or(i32::MAX);
    if let Err(e) = restored {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        return Err(StartupError::sys(
            "return to the shim's own pid namespace",
            e,
        ));
    }
    Ok((pid, lifeline_w.into()))
}
