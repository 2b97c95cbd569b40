//! A pod's user namespace and the namespaces it owns. The shim stays in the host's user
//! namespace (it needs its host privileges), so a forked helper creates them: it unshares the
//! user namespace, waits while the shim writes `uid_map` and `gid_map` from outside (writing a
//! full mapping needs CAP_SETUID/CAP_SETGID in the parent namespace), then unshares the network,
//! IPC, UTS (and PID) namespaces as the namespace's root (so the pause process it starts is not
//! host root), which the new user namespace therefore owns. The shim then enters and pins them;
//! as the owner of the user namespace it holds every capability in it. The helper is killed once
//! they are pinned.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::error::StartupError;
use crate::spec::UserNamespaceMaps;
use crate::sys::fork::{Forked, SingleThreaded};

/// The forked helper that lives in the new namespaces until they are pinned.
#[derive(Debug)]
pub(crate) struct Helper {
    pid: Pid,
    /// The pause process the helper started as PID 1 of a new PID namespace (host pid).
    pause: Option<i32>,
    /// Closing it (or the kill in `drop`) ends the helper.
    _hold: OwnedFd,
}

impl Helper {
    /// Forks the helper, writes the maps and waits until it has created the namespaces in
    /// `owned` (CLONE_NEWNET, NEWIPC, NEWUTS) inside the new user namespace and, with `pid`, a
    /// PID namespace with the pause process as its init. The pause process's stdin is a
    /// lifeline pipe whose write end is returned (see `pause.rs`): it outlives the helper, whose
    /// death re-parents it to the shim (a child subreaper).
    pub fn start(
        maps: &UserNamespaceMaps,
        owned: CloneFlags,
        pid: bool,
    ) -> Result<(Helper, Option<OwnedFd>), StartupError> {
        let (lifeline_r, lifeline_w, owned) = if pid {
            let (r, w) =
                std::io::pipe().map_err(StartupError::io("create the pause lifeline", "pipe"))?;
            (
                Some(r),
                Some(OwnedFd::from(w)),
                owned | CloneFlags::CLONE_NEWPID,
            )
        } else {
            (None, None, owned)
        };
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| StartupError::sys("create userns helper pipe", e))
        };
        let (from_child_r, from_child_w) = pipe()?;
        let (to_child_r, to_child_w) = pipe()?;
        let single = SingleThreaded::check()
            .map_err(|e| StartupError::UserNamespace(format!("fork its helper: {e}")))?;
        match single
            .fork()
            .map_err(|e| StartupError::UserNamespace(format!("fork its helper: {e}")))?
        {
            Forked::Child => {
                drop(from_child_r);
                drop(to_child_w);
                drop(lifeline_w);
                let to = File::from(from_child_w);
                helper_main(to, File::from(to_child_r), owned, lifeline_r)
            }
            Forked::Parent(pid) => {
                drop(from_child_w);
                drop(to_child_r);
                drop(lifeline_r);
                let mut helper = Helper {
                    pid,
                    pause: None,
                    _hold: to_child_w
                        .try_clone()
                        .map_err(StartupError::io("duplicate userns helper pipe", "pipe"))?,
                };
                let mut from = File::from(from_child_r);
                let mut to = File::from(to_child_w);
                expect(&mut from, b'u', "unshare the user namespace")?;
                helper.write_maps(maps)?;
                to.write_all(b"m")
                    .map_err(StartupError::io("signal the userns helper", "pipe"))?;
                expect(&mut from, b'n', "unshare the pod namespaces")?;
                if owned.contains(CloneFlags::CLONE_NEWPID) {
                    let mut pid = String::new();
                    from.read_to_string(&mut pid)
                        .map_err(StartupError::io("read the pause pid", "pipe"))?;
                    let pid = pid.trim().parse().map_err(|_| {
                        StartupError::UserNamespace(format!("start the pause process: {pid}"))
                    })?;
                    helper.pause = Some(pid);
                }
                Ok((helper, lifeline_w))
            }
        }
    }

    fn write_maps(&self, maps: &UserNamespaceMaps) -> Result<(), StartupError> {
        for (file, map) in [("uid_map", maps.uids), ("gid_map", maps.gids)] {
            let path = format!("/proc/{}/{file}", self.pid);
            std::fs::write(&path, map.proc_line())
                .map_err(StartupError::io("write user namespace mapping", &path))?;
        }
        Ok(())
    }

    /// The pause process (PID 1 of the pod's PID namespace).
    pub fn pause_pid(&self) -> Result<i32, StartupError> {
        self.pause.ok_or_else(|| {
            StartupError::UserNamespace("the helper started no pause process".into())
        })
    }

    /// `/proc/<helper>/ns/<kind>`.
    pub fn ns_path(&self, kind: &str) -> std::path::PathBuf {
        format!("/proc/{}/ns/{kind}", self.pid).into()
    }

    /// Moves the shim into the helper's namespaces of `kinds` (net, ipc, uts).
    pub fn enter(&self, kinds: &[(&str, CloneFlags)]) -> Result<(), StartupError> {
        for (kind, flag) in kinds {
            let path = self.ns_path(kind);
            let file = File::open(&path).map_err(StartupError::io("open namespace", &path))?;
            nix::sched::setns(&file, *flag).map_err(|e| {
                StartupError::sys(
                    format!("join the pod's {kind} namespace {}", path.display()),
                    e,
                )
            })?;
        }
        Ok(())
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.pid, None);
    }
}

/// Reads one status byte from the helper: `want`, or a failure it reported.
fn expect(from: &mut File, want: u8, step: &str) -> Result<(), StartupError> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    match from.read(&mut byte) {
        Ok(1) if byte[0] == want => Ok(()),
        Ok(1) => {
            let _ = from.read_to_end(&mut buf);
            let msg = String::from_utf8_lossy(&buf).into_owned();
            Err(StartupError::UserNamespace(format!("{step}: {msg}")))
        }
        Ok(_) => Err(StartupError::UserNamespace(format!(
            "{step}: the helper exited"
        ))),
        Err(e) => Err(StartupError::io("read from the userns helper", "pipe")(e)),
    }
}

/// The helper: unshare the user namespace, wait for the maps, unshare the rest (and start the
/// pause process in a new PID namespace), then wait to be killed. Reports `e` and a message on
/// failure.
fn helper_main(
    mut to_parent: File,
    mut from_parent: File,
    owned: CloneFlags,
    lifeline: Option<std::io::PipeReader>,
) -> ! {
    if let Err(msg) = helper_steps(&mut to_parent, &mut from_parent, owned, lifeline) {
        let _ = to_parent.write_all(format!("e{msg}").as_bytes());
        std::process::exit(1);
    }
    drop(to_parent);
    // Until the shim has pinned the namespaces and kills us (or goes away).
    let mut rest = Vec::new();
    let _ = from_parent.read_to_end(&mut rest);
    std::process::exit(0)
}

fn helper_steps(
    to_parent: &mut File,
    from_parent: &mut File,
    owned: CloneFlags,
    lifeline: Option<std::io::PipeReader>,
) -> Result<(), String> {
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER)
        .map_err(|e| format!("unshare user namespace: {e}"))?;
    to_parent.write_all(b"u").map_err(|e| e.to_string())?;
    let mut byte = [0u8; 1];
    if from_parent.read(&mut byte).map_err(|e| e.to_string())? != 1 {
        return Err("the shim went away".into());
    }
    // The namespace's root, like the pod's containers: the pause process must not keep host
    // uid 0 (which owns host files) inside a namespace the pod's root controls.
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setgroups(&[]).map_err(|e| format!("clear supplementary groups: {e}"))?;
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .map_err(|e| format!("take gid 0 in the user namespace: {e}"))?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .map_err(|e| format!("take uid 0 in the user namespace: {e}"))?;
    nix::sched::unshare(owned).map_err(|e| format!("unshare {owned:?}: {e}"))?;
    to_parent.write_all(b"n").map_err(|e| e.to_string())?;
    let pause = lifeline.map(super::pause::spawn).transpose()?;
    // Nothing is left for the helper to do but hold the namespaces until they are pinned: it
    // does so confined, as the pause process does.
    super::confine::confine().map_err(|e| format!("confine the helper: {e}"))?;
    if let Some(pause) = pause {
        to_parent
            .write_all(pause.to_string().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
