//! RunPodSandbox (its plan is `super::sandbox_plan`; under an intent, see `super::intents`),
//! StopPodSandbox, RemovePodSandbox, PodSandboxStatus and ListPodSandbox.

use std::sync::Arc;

use crate::cri_api as api;

use super::events::EventKind;
use super::intents::Intent;
use super::records::{SandboxRecord, SandboxState, new_id};
use super::sandbox_plan::{Contents, PodFile, SandboxPlan, pinned_paths};
use super::undo::{Step, Undo, UndoFailure};
use super::{Result, Runtime, RuntimeError};
use crate::store::Table;

/// The name a pod is unique by (kubelet's naming: name, namespace, uid, attempt).
fn sandbox_name(meta: &api::PodSandboxMetadata) -> String {
    format!(
        "{}_{}_{}_{}",
        meta.name, meta.namespace, meta.uid, meta.attempt
    )
}

impl Runtime {
    /// Creates a pod sandbox: plan, pod files, shim with pinned namespaces, its network, then the
    /// Ready record. Any failure unwinds every step already done.
    ///
    /// The work runs in a task of its own: when the caller stops waiting (kubelet's deadline, a
    /// dropped connection) the creation still finishes, or unwinds, instead of stopping halfway
    /// with a shim, a namespace or an IP lease that nothing owns. A finished pod is then found
    /// by kubelet's next ListPodSandbox.
    pub async fn run_sandbox(
        self: &Arc<Self>,
        config: api::PodSandboxConfig,
        handler: &str,
    ) -> Result<String> {
        use tracing::Instrument;
        let runtime = self.clone();
        let handler = handler.to_string();
        let work = async move { runtime.create_sandbox(config, &handler).await };
        match tokio::spawn(work.instrument(tracing::Span::current())).await {
            Ok(result) => result,
            // Nothing aborts the task: it can only have panicked; the panic goes on here.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    async fn create_sandbox(
        self: &Arc<Self>,
        config: api::PodSandboxConfig,
        handler: &str,
    ) -> Result<String> {
        let meta = config.metadata.clone().ok_or_else(|| {
            RuntimeError::InvalidArgument("pod sandbox config has no metadata".into())
        })?;
        if meta.name.is_empty() {
            return Err(RuntimeError::InvalidArgument(
                "pod sandbox metadata has no name".into(),
            ));
        }
        let external = self.handler_for_new_pod(handler)?;
        let name = sandbox_name(&meta);
        let _reservation = self.reserve(format!("pod {name}"))?;
        if let Some(existing) = self
            .sandboxes()?
            .into_iter()
            .find(|s| sandbox_name(&s.metadata()) == name)
        {
            return Err(RuntimeError::NameInUse {
                what: "pod sandbox",
                name,
                by: existing.id,
            });
        }
        let id = new_id();
        let plan = SandboxPlan::new(&self.settings, &id, handler, &config)?;
        if plan.userns.is_some()
            && let Some(runtime) = external
        {
            return Err(RuntimeError::Unimplemented(format!(
                "runtime handler {handler:?} ({}) does not run pods with their own user namespace \
                 (hostUsers: false); only the built-in handler does",
                runtime.path.display()
            )));
        }
        let intent = plan.intent();
        // Before the first side effect: a kill from here on leaves a note of what to undo.
        self.intend(&id, intent.clone())?;
        let mut undo = Undo::default();
        match self.build_sandbox(&plan, config, &mut undo).await {
            Ok(record) => {
                undo.commit();
                tracing::info!(
                    pod_id = %id,
                    pod = %name,
                    cgroup_parent = plan.cgroup_parent.as_deref().unwrap_or("(none)"),
                    "pod sandbox ready"
                );
                self.emit(&id, &id, EventKind::Created);
                self.emit(&id, &id, EventKind::Started);
                self.watch_exits(record.id.clone());
                Ok(record.id)
            }
            Err(e) => {
                let failures = undo.unwind(self).await;
                // A failed cleanup keeps the intent: the next start tries again.
                let failures = match failures.is_empty() {
                    true => self.fulfil(&id, &intent).err().map(|error| {
                        vec![UndoFailure {
                            what: format!("intent of pod {id}"),
                            error,
                        }]
                    }),
                    false => Some(failures),
                };
                Err(e.with_cleanup(failures.unwrap_or_default()))
            }
        }
    }

    /// Applies `plan`: directories, files, /dev/shm, the shim with its pins, the network, then
    /// the record (which ends the intent, in one transaction).
    async fn build_sandbox(
        self: &Arc<Self>,
        plan: &SandboxPlan,
        config: api::PodSandboxConfig,
        undo: &mut Undo,
    ) -> Result<SandboxRecord> {
        let id = plan.id.as_str();
        for (dir, gid) in &plan.private_dirs {
            super::dirs::private_dir(dir, *gid)
                .map_err(RuntimeError::io(format!("create {}", dir.display())))?;
            undo.push(Step::RemoveDir(dir.clone()));
        }
        for file in &plan.files {
            write_pod_file(file)?;
        }
        if let Some(shm) = &plan.shm {
            self.effects.mount_shm(shm)?;
            undo.push(Step::Unmount(shm.clone()));
        }

        let shim = (self.launcher)
            .spawn(id, &plan.pod_dir, &plan.shim_options())
            .await?;
        undo.push(Step::ShutdownShim(shim.clone()));
        let info = shim.info().await?;
        self.place_shim(id, info.pid);
        let namespaces = pinned_paths(info.namespaces);
        let ips = if plan.namespaces.net {
            let netns = (namespaces.net.as_deref())
                .ok_or_else(|| RuntimeError::NoNetworkNamespace(id.to_string()))?;
            let ips = self.attach_network(id, &config, netns, undo).await?;
            super::sandbox_network::write_hosts(&plan.data_dir, plan.hostname.as_deref(), &ips.0)?;
            ips.0
        } else {
            vec![]
        };
        let record = plan.record(config, namespaces, ips);
        // Plugins see the pod before anything lists it; one that fails it unwinds it.
        let _hold = self.nri.hold().await;
        self.nri.run_pod_sandbox(&record).await?;
        self.db.write(|w| {
            w.put(Table::Sandboxes, id, &record)?;
            w.delete(Table::Intents, id)
        })?;
        self.shims
            .lock()
            .expect("shims lock")
            .insert(id.to_string(), shim);
        Ok(record)
    }

    /// Moves the pod's new shim out of berthd's cgroup (`shimclient::placement`), on a spare thread.
    fn place_shim(&self, pod_id: &str, shim_pid: u32) {
        let (Some(hierarchy), Ok(pid)) = (self.cgroups.clone(), i32::try_from(shim_pid)) else {
            return;
        };
        let pod_id = pod_id.to_string();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = crate::shimclient::placement::move_shim(&hierarchy, pid) {
                tracing::warn!(pod_id, "move the shim out of berthd's cgroup: {e}");
            }
        });
    }

    /// Stops every container of the pod and its shim (releasing the namespaces). Idempotent;
    /// an unknown pod is not an error.
    pub async fn stop_sandbox(&self, id: &str) -> Result<()> {
        let sandbox = match self.sandbox(id) {
            Ok(s) => s,
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.intend(&sandbox.id, Intent::StopPod)?;
        self.stop_pod(&sandbox).await?;
        self.fulfil(&sandbox.id, &Intent::StopPod)
    }

    /// StopPodSandbox's work, under an intent (a stop's or a removal's).
    async fn stop_pod(&self, sandbox: &SandboxRecord) -> Result<()> {
        for container in self
            .containers()?
            .iter()
            .filter(|c| c.sandbox_id == sandbox.id)
        {
            self.stop_container(&container.id, 0).await?;
        }
        if sandbox.state == SandboxState::Ready {
            self.nri.stop_pod_sandbox(sandbox).await;
        }
        // While the namespace is still pinned, so plugins can clean inside it too.
        self.detach_network(&sandbox.id).await?;
        let shim = self.shims.lock().expect("shims lock").remove(&sandbox.id);
        if let Some(shim) = shim {
            shim.shutdown().await?;
        }
        // A shim that died cannot release its pins: do it here (idempotent).
        let ns = &sandbox.namespaces;
        for pin in [&ns.net, &ns.ipc, &ns.uts, &ns.pid, &ns.user]
            .into_iter()
            .flatten()
        {
            self.effects
                .unmount(pin)
                .map_err(RuntimeError::io(format!("unpin {}", pin.display())))?;
        }
        if let Some(shm) = &sandbox.shm {
            self.effects
                .unmount(shm)
                .map_err(RuntimeError::io(format!("unmount {}", shm.display())))?;
        }
        let was = self.update_sandbox(&sandbox.id, |s| {
            s.stop();
        });
        if sandbox.state == SandboxState::Ready {
            self.emit(&sandbox.id, &sandbox.id, EventKind::Stopped);
        }
        was?;
        tracing::info!(pod_id = %sandbox.id, "pod sandbox stopped");
        Ok(())
    }

    /// Stops the pod if needed, removes its containers, its files and its record. Unknown pods
    /// are not an error.
    pub async fn remove_sandbox(&self, id: &str) -> Result<()> {
        let sandbox = match self.sandbox(id) {
            Ok(s) => s,
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.intend(&sandbox.id, Intent::RemovePod)?;
        self.stop_pod(&sandbox).await?;
        for container in self
            .containers()?
            .iter()
            .filter(|c| c.sandbox_id == sandbox.id)
        {
            self.remove_container(&container.id).await?;
        }
        let parent = sandbox
            .config
            .linux
            .as_ref()
            .map_or("", |l| l.cgroup_parent.as_str());
        crate::cgroup::release_parent(self.settings.cgroup_driver, parent)?;
        super::teardown::remove_tree(&sandbox.pod_dir)?;
        super::teardown::remove_tree(&sandbox.data_dir)?;
        self.db.write(|w| {
            w.delete(Table::Sandboxes, &sandbox.id)?;
            w.delete(Table::Intents, &sandbox.id)
        })?;
        self.emit(&sandbox.id, &sandbox.id, EventKind::Deleted);
        self.nri.remove_pod_sandbox(&sandbox).await;
        tracing::info!(pod_id = %sandbox.id, "pod sandbox removed");
        Ok(())
    }

    pub fn sandbox_status(&self, id: &str) -> Result<SandboxRecord> {
        self.sandbox(id)
    }

    pub fn list_sandboxes(&self) -> Result<Vec<SandboxRecord>> {
        self.sandboxes()
    }
}

/// Writes one of the pod's files, reading the node's hostname or file it copies.
fn write_pod_file(file: &PodFile) -> Result<()> {
    let text = match &file.contents {
        Contents::Text(text) => text.clone(),
        Contents::NodeHostname => {
            let node = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{node}\n")
        }
        Contents::NodeFile { from, fallback } => {
            std::fs::read_to_string(from).unwrap_or_else(|_| fallback.clone())
        }
    };
    std::fs::write(&file.path, text)
        .map_err(RuntimeError::io(format!("write {}", file.path.display())))
}
