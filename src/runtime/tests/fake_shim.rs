//! Fakes at the shim seam: a recording pod shim with scripted exits and injectable errors, and a
//! launcher of such shims (which can lose one, as a shim dying while berthd is down).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::broadcast;

use crate::error::Kind;
use crate::shimclient::{
    ContainerStatus, CreateContainer, EventStream, ExecOutput, Exit, ExitEvent, PodShim,
    ShimContainer, ShimError, ShimInfo, ShimLauncher, ShimOptions, ShimResult, StreamInputs,
    StreamOutputs, StreamStart,
};

fn injected(call: &str, kind: Kind) -> ShimError {
    ShimError::Call {
        call: call.to_string(),
        kind,
        message: "injected failure".into(),
    }
}

/// A pod shim that keeps its containers in a table.
pub struct FakeShim {
    calls: Mutex<Vec<String>>,
    containers: Mutex<BTreeMap<String, ShimContainer>>,
    /// Open while the shim "lives"; dropped when it dies (the exit streams end).
    exits: Mutex<Option<broadcast::Sender<ExitEvent>>>,
    /// Signals a container exits on (code 128 + signal).
    dies_on: Mutex<BTreeSet<i32>>,
    /// Calls (`create`, `start`, `signal`, `delete`, `shutdown`, ...) that fail next time.
    failures: Mutex<HashMap<&'static str, Kind>>,
    namespaces: BTreeMap<String, PathBuf>,
}

impl FakeShim {
    fn new(pod_dir: &Path, options: &ShimOptions) -> FakeShim {
        let ns = pod_dir.join("ns");
        let kinds = [
            ("net", options.net),
            ("ipc", options.ipc),
            ("uts", options.uts),
            ("pid", options.pid),
        ];
        FakeShim {
            calls: Mutex::default(),
            containers: Mutex::default(),
            exits: Mutex::new(Some(broadcast::channel(64).0)),
            dies_on: Mutex::new([libc::SIGTERM, libc::SIGKILL].into()),
            failures: Mutex::default(),
            namespaces: kinds
                .into_iter()
                .filter(|(_, pinned)| *pinned)
                .map(|(kind, _)| (kind.to_string(), ns.join(kind)))
                .collect(),
        }
    }

    /// Every call so far, as `"<call> <args>"`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// The ids the shim holds.
    pub fn held(&self) -> Vec<String> {
        self.containers.lock().unwrap().keys().cloned().collect()
    }

    /// The next `call` fails with `kind`.
    pub fn fail_next(&self, call: &'static str, kind: Kind) {
        self.failures.lock().unwrap().insert(call, kind);
    }

    /// Which signals make a container exit.
    pub fn dies_on(&self, signals: &[i32]) {
        *self.dies_on.lock().unwrap() = signals.iter().copied().collect();
    }

    /// Container `id` exits with `code`, and the exit is streamed (scripted exits).
    pub fn exit(&self, id: &str, code: i32) {
        let exit = Exit {
            pid: 1000,
            exit_code: code,
            signal: 0,
            finished_at: super::super::records::now_ns(),
            oom_killed: false,
        };
        if let Some(c) = self.containers.lock().unwrap().get_mut(id) {
            c.status = ContainerStatus::Exited;
            c.exit = Some(exit);
        }
        if let Some(tx) = &*self.exits.lock().unwrap() {
            let _ = tx.send(ExitEvent {
                id: id.to_string(),
                exit,
            });
        }
    }

    /// Container `id` exits with `code` unseen (berthd is down): only the shim's table knows,
    /// and replays it to the next exit stream.
    pub fn exit_unseen(&self, id: &str, code: i32) {
        let tx = self.exits.lock().unwrap().take();
        self.exit(id, code);
        *self.exits.lock().unwrap() = tx;
    }

    /// The shim process dies: its exit streams end.
    pub fn die(&self) {
        self.exits.lock().unwrap().take();
    }

    fn alive(&self) -> bool {
        self.exits.lock().unwrap().is_some()
    }

    fn call(&self, name: &'static str, args: &str) -> ShimResult<()> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("{name} {args}").trim().to_string());
        match self.failures.lock().unwrap().remove(name) {
            Some(kind) => Err(injected(&format!("{name} {args}"), kind)),
            None => Ok(()),
        }
    }

    fn not_found(id: &str) -> ShimError {
        injected(&format!("container {id}"), Kind::NotFound)
    }
}

impl PodShim for FakeShim {
    fn info(&self) -> BoxFuture<'_, ShimResult<ShimInfo>> {
        Box::pin(async move {
            self.call("info", "")?;
            Ok(ShimInfo {
                pid: 0,
                namespaces: self.namespaces.clone(),
                version: "fake".into(),
            })
        })
    }

    fn create<'a>(&'a self, req: &'a CreateContainer) -> BoxFuture<'a, ShimResult<u32>> {
        Box::pin(async move {
            self.call("create", &req.id)?;
            let mut held = self.containers.lock().unwrap();
            if held.contains_key(&req.id) {
                return Err(injected(&req.id, Kind::AlreadyExists));
            }
            let state = ShimContainer {
                id: req.id.clone(),
                pid: 1000,
                status: ContainerStatus::Created,
                started_at: 0,
                exit: None,
            };
            held.insert(req.id.clone(), state);
            Ok(1000)
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ShimResult<()>> {
        Box::pin(async move {
            self.call("start", id)?;
            let mut held = self.containers.lock().unwrap();
            let c = held.get_mut(id).ok_or_else(|| FakeShim::not_found(id))?;
            c.status = ContainerStatus::Running;
            c.started_at = super::super::records::now_ns();
            Ok(())
        })
    }

    fn signal<'a>(&'a self, id: &'a str, signal: i32, all: bool) -> BoxFuture<'a, ShimResult<()>> {
        Box::pin(async move {
            self.call("signal", &format!("{id} {signal} all={all}"))?;
            let status = self.containers.lock().unwrap().get(id).map(|c| c.status);
            match status {
                None => Err(FakeShim::not_found(id)),
                Some(ContainerStatus::Exited) => Ok(()),
                Some(_) if self.dies_on.lock().unwrap().contains(&signal) => {
                    self.exit(id, 128 + signal);
                    Ok(())
                }
                Some(_) => Ok(()),
            }
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ShimResult<()>> {
        Box::pin(async move {
            self.call("delete", id)?;
            match self.containers.lock().unwrap().remove(id) {
                Some(_) => Ok(()),
                None => Err(FakeShim::not_found(id)),
            }
        })
    }

    fn state(&self) -> BoxFuture<'_, ShimResult<Vec<ShimContainer>>> {
        Box::pin(async move {
            self.call("state", "")?;
            Ok(self.containers.lock().unwrap().values().cloned().collect())
        })
    }

    fn exits(&self) -> BoxFuture<'_, ShimResult<EventStream>> {
        Box::pin(async move {
            self.call("exits", "")?;
            let Some(rx) = self.exits.lock().unwrap().as_ref().map(|tx| tx.subscribe()) else {
                return Err(injected("exits", Kind::Unavailable));
            };
            // Recorded exits first, then new ones, as the real shim does.
            let replay: Vec<_> = self
                .containers
                .lock()
                .unwrap()
                .values()
                .filter_map(|c| {
                    Some(Ok(ExitEvent {
                        id: c.id.clone(),
                        exit: c.exit?,
                    }))
                })
                .collect();
            let live = futures::stream::unfold(rx, |mut rx| async move {
                loop {
                    match rx.recv().await {
                        Ok(event) => return Some((Ok(event), rx)),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
            let stream: EventStream = Box::pin(futures::StreamExt::chain(
                futures::stream::iter(replay),
                live,
            ));
            Ok(stream)
        })
    }

    fn exec_sync<'a>(
        &'a self,
        id: &'a str,
        _args: Vec<String>,
        _timeout_secs: i64,
    ) -> BoxFuture<'a, ShimResult<ExecOutput>> {
        Box::pin(async move {
            self.call("exec_sync", id)?;
            Ok(ExecOutput {
                stdout: vec![],
                stderr: vec![],
                exit_code: 0,
                timed_out: false,
            })
        })
    }

    fn stream<'a>(
        &'a self,
        _attach: bool,
        _start: &'a StreamStart,
        _inputs: StreamInputs,
    ) -> BoxFuture<'a, ShimResult<StreamOutputs>> {
        Box::pin(async move { Err(injected("stream", Kind::Unimplemented)) })
    }

    fn reopen_log<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ShimResult<()>> {
        Box::pin(async move { self.call("reopen_log", id) })
    }

    fn shutdown(&self) -> BoxFuture<'_, ShimResult<()>> {
        Box::pin(async move {
            self.call("shutdown", "")?;
            self.containers.lock().unwrap().clear();
            self.die();
            Ok(())
        })
    }
}

/// Launches [`FakeShim`]s; the live ones are found again by their pod dir.
#[derive(Default)]
pub struct FakeLauncher {
    live: Mutex<HashMap<PathBuf, Arc<FakeShim>>>,
    spawned: Mutex<Vec<PathBuf>>,
    /// The next spawn fails.
    pub spawn_fails: Mutex<bool>,
}

impl FakeLauncher {
    /// The live shim of a pod dir.
    pub fn shim(&self, pod_dir: &Path) -> Arc<FakeShim> {
        self.live
            .lock()
            .unwrap()
            .get(pod_dir)
            .cloned()
            .expect("a live fake shim")
    }

    /// The shim last spawned for a pod dir, dead or alive.
    pub fn any_shim(&self, pod_dir: &Path) -> Arc<FakeShim> {
        self.live
            .lock()
            .unwrap()
            .get(pod_dir)
            .cloned()
            .expect("a fake shim")
    }

    /// Pod dirs of every live shim.
    pub fn live(&self) -> Vec<PathBuf> {
        let live = self.live.lock().unwrap();
        live.iter()
            .filter(|(_, shim)| shim.alive())
            .map(|(dir, _)| dir.clone())
            .collect()
    }

    /// How many shims were spawned.
    pub fn spawned(&self) -> usize {
        self.spawned.lock().unwrap().len()
    }

    /// The shim of `pod_dir` dies while berthd is down: connecting fails from now on, and the
    /// dead berthd's streams never say so.
    pub fn lose(&self, pod_dir: &Path) {
        self.live.lock().unwrap().remove(pod_dir);
    }
}

impl ShimLauncher for FakeLauncher {
    fn spawn<'a>(
        &'a self,
        pod_id: &'a str,
        pod_dir: &'a Path,
        options: &'a ShimOptions,
    ) -> BoxFuture<'a, ShimResult<Arc<dyn PodShim>>> {
        Box::pin(async move {
            self.spawned.lock().unwrap().push(pod_dir.to_path_buf());
            if std::mem::take(&mut *self.spawn_fails.lock().unwrap()) {
                return Err(ShimError::Start {
                    pod_id: pod_id.to_string(),
                    message: "injected failure".into(),
                });
            }
            let shim = Arc::new(FakeShim::new(pod_dir, options));
            self.live
                .lock()
                .unwrap()
                .insert(pod_dir.to_path_buf(), shim.clone());
            Ok(shim as Arc<dyn PodShim>)
        })
    }

    fn connect<'a>(&'a self, pod_dir: &'a Path) -> BoxFuture<'a, ShimResult<Arc<dyn PodShim>>> {
        Box::pin(async move {
            let shim = self.live.lock().unwrap().get(pod_dir).cloned();
            match shim.filter(|s| s.alive()) {
                Some(shim) => Ok(shim as Arc<dyn PodShim>),
                None => Err(ShimError::Unavailable {
                    socket: pod_dir.join("shim.sock"),
                    message: "no shim".into(),
                }),
            }
        })
    }
}
