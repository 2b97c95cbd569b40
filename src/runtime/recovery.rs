//! Recovery when berthd starts: reconnect live shims, undo creations and finish stops and
//! removals a kill interrupted, and clean what no record or intent names.
//!
//! Restart assumptions:
//! 1. The database is the truth about what exists. A pod or container is recorded, or named by
//!    an intent (`intents`), or it must not exist: a pod dir, container dir, `berth-shim serve`,
//!    mount or CNI attachment under berth's own dirs that neither names is an orphan (left by a
//!    berth that did not write intents yet, or by a lost database) and is removed.
//! 2. Every intent was committed before its operation's first side effect, so anything a kill
//!    cut short is named by one. A creation may have made any prefix of its steps; it is undone,
//!    never finished, since its caller never learnt the id (kubelet retries under a new one).
//! 3. A stop or removal is finished, exactly as if the reply had been lost on the way: an
//!    unacknowledged removal may complete, but no object comes back half-removed.
//! 4. A live shim is the truth about what runs (a start that a kill cut short after the shim
//!    released the process is recorded Running); an exit file is the truth about an exit that
//!    happened while berthd was down, even when the shim is gone too.
//! 5. Nothing serves CRI until recovery is over, so no request races it; one berthd owns its
//!    root and state dirs. Only a shim may still be finishing a CreateContainer it was sent
//!    before the kill: a later sweep of the shims' tables removes what such a create left.
//! 6. Teardown only touches what berth's records and dirs name: processes by their `--dir`
//!    under `<state_dir>/pods`, mounts below berth's dirs, cgroups whose leaf is a container id
//!    berth recorded or wrote into a bundle.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::intents::Intent;
use super::records::{ContainerState, SandboxState};
use super::teardown::{kill_shims, remove_tree, unmount_under};
use super::{Result, Runtime, RuntimeError};
use crate::error::{Classify, Kind};
use crate::shimclient::ContainerStatus;
use crate::shimclient::ShimContainer;

/// When the shims' tables are swept a second time after startup (see assumption 5).
const LATE_SWEEP: Duration = Duration::from_secs(10);
/// How long a shim may take to shut down before it is killed.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

impl Runtime {
    /// After a berthd start: see the module's assumptions. Failures to clean one object are
    /// logged and keep its intent (the next start tries again); they do not stop the start.
    pub async fn recover(self: &Arc<Self>) -> Result<()> {
        let intents = self.intents()?;
        for (id, intent) in &intents {
            if let Intent::CreatePod { pod_dir, data_dir } = intent {
                let undone = self.undo_pod(id, pod_dir, data_dir).await;
                self.settle(id, intent, undone);
            }
        }
        self.reconnect_shims().await?;
        for (id, intent) in &intents {
            if let Intent::CreateContainer {
                sandbox_id,
                bundle,
                rw_dir,
                cgroup,
            } = intent
            {
                let parts = ContainerParts {
                    id,
                    sandbox_id: Some(sandbox_id),
                    bundle,
                    rw_dir,
                    cgroup: Some(cgroup.clone()),
                };
                let undone = self.undo_container(&parts).await;
                self.settle(id, intent, undone);
            }
        }
        self.sweep_orphans().await?;
        for order in [Intent::RemoveContainer, Intent::StopPod, Intent::RemovePod] {
            for (id, intent) in intents.iter().filter(|(_, i)| *i == order) {
                let finished = match intent {
                    Intent::RemoveContainer => self.remove_container(id).await,
                    Intent::StopPod => self.stop_sandbox(id).await,
                    _ => self.remove_sandbox(id).await,
                };
                self.settle(id, intent, finished);
            }
        }
        self.collect_networks().await?;
        let runtime = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LATE_SWEEP).await;
            runtime.sweep_shim_tables().await;
        });
        Ok(())
    }

    /// Drops a recovered intent once its operation is over; logs why it is kept otherwise.
    fn settle(&self, id: &str, intent: &Intent, outcome: Result<()>) {
        let outcome = outcome.and_then(|()| self.fulfil(id, intent));
        match outcome {
            Ok(()) => tracing::info!(id, ?intent, "recovered an interrupted operation"),
            Err(e) => {
                tracing::warn!(id, ?intent, error = %e, "recover an interrupted operation; kept for the next start")
            }
        }
    }

    /// Reconnects every Ready pod's shim (which replays exits that happened meanwhile) and
    /// brings each container's record in line with it; a pod whose shim is gone becomes
    /// NotReady and its containers Exited.
    async fn reconnect_shims(self: &Arc<Self>) -> Result<()> {
        for sandbox in self.sandboxes()? {
            if sandbox.state != SandboxState::Ready {
                continue;
            }
            let shim = match self.launcher.connect(&sandbox.pod_dir).await {
                Ok(shim) => shim,
                Err(e) => {
                    tracing::warn!(pod_id = %sandbox.id, error = %e, "pod shim is gone");
                    self.update_sandbox(&sandbox.id, |s| {
                        s.stop();
                    })?;
                    self.exit_orphans(&sandbox.id);
                    continue;
                }
            };
            let state = shim.state().await;
            self.shims
                .lock()
                .expect("shims lock")
                .insert(sandbox.id.clone(), shim);
            match state {
                Ok(known) => self.align_containers(&sandbox.id, &known)?,
                // Nothing is marked exited on a shim that did not answer: it may hold them all.
                Err(e) => {
                    tracing::warn!(pod_id = %sandbox.id, error = %e, "ask the pod shim for its containers")
                }
            }
            self.watch_exits(sandbox.id.clone());
            tracing::info!(pod_id = %sandbox.id, "reconnected to pod shim");
        }
        Ok(())
    }

    /// A container the shim never heard of (its create's record outlived the shim's state)
    /// cannot run: it exited. One the shim released whose StartContainer a kill cut short before
    /// its record said so is Running.
    fn align_containers(&self, sandbox_id: &str, known: &[ShimContainer]) -> Result<()> {
        for c in self.containers()? {
            if c.sandbox_id != sandbox_id || c.state == ContainerState::Exited {
                continue;
            }
            match known.iter().find(|k| k.id == c.id) {
                None => self.record_unseen_exit(&c),
                Some(k) if k.status != ContainerStatus::Created => {
                    self.update_container(&c.id, |c| {
                        if c.state == ContainerState::Created {
                            c.start(k.started_at);
                        }
                    })?;
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Undoes a pod whose RunPodSandbox did not finish: its network (from the CNI cache), its
    /// shim (asked to shut down, else killed), its mounts (pins, shm) and its directories.
    async fn undo_pod(&self, id: &str, pod_dir: &Path, data_dir: &Path) -> Result<()> {
        // While the namespace is still pinned, so plugins can clean inside it too.
        self.detach_network(id).await?;
        if let Ok(shim) = self.launcher.connect(pod_dir).await
            && let Err(e) = tokio::time::timeout(SHUTDOWN_WAIT, shim.shutdown()).await
        {
            tracing::debug!(pod_id = id, error = %e, "shut the shim down; killing it");
        }
        kill_shims(pod_dir).await?;
        unmount_under(self.effects.as_ref(), pod_dir)?;
        remove_tree(pod_dir)?;
        remove_tree(data_dir)
    }

    /// Undoes a container whose CreateContainer did not finish (or that nothing records): its
    /// process (through the shim, or the external runtime's state), its cgroup and what runs
    /// in it, its mounts and its directories.
    async fn undo_container(&self, parts: &ContainerParts<'_>) -> Result<()> {
        if let Some(shim) = parts.sandbox_id.and_then(|s| self.shim(s).ok()) {
            match shim.delete(parts.id).await {
                Err(e) if e.kind() != Kind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        self.forget_everywhere(parts.id).await?;
        // Only a cgroup of this container, never a parent it was placed in.
        if let Some(path) = &parts.cgroup
            && crate::cgroup::is_container_cgroup(path, parts.id)
        {
            self.effects.remove_cgroup(path)?;
        }
        for dir in [parts.bundle, parts.rw_dir] {
            unmount_under(self.effects.as_ref(), dir)?;
            remove_tree(dir)?;
        }
        Ok(())
    }

    /// Deletes container `id` from every external runtime that still has state for it.
    async fn forget_everywhere(&self, id: &str) -> Result<()> {
        for handler in &self.settings.handlers {
            if !handler.runtime.knows(id) {
                continue;
            }
            let (runtime, owned) = (handler.runtime.clone(), id.to_string());
            tokio::task::spawn_blocking(move || runtime.delete(&owned))
                .await
                .map_err(|_| RuntimeError::Task(format!("delete container {id}")))??;
        }
        Ok(())
    }

    /// Removes pods and containers that berth's dirs, shims or shims' tables hold but that no
    /// record or intent names (assumption 1).
    async fn sweep_orphans(&self) -> Result<()> {
        let named = self.named_ids()?;
        let pods = |base: &Path| base.join("pods");
        let (state_pods, root_pods) = (
            pods(&self.settings.state_dir),
            pods(&self.settings.root_dir),
        );
        let mut orphan_pods: Vec<String> = ids_in(&state_pods);
        orphan_pods.extend(ids_in(&root_pods));
        orphan_pods.extend(
            super::teardown::shim_processes(None)
                .into_iter()
                .filter(|(_, dir)| dir.parent() == Some(state_pods.as_path()))
                .filter_map(|(_, dir)| dir.file_name()?.to_str().map(str::to_string))
                .filter(|id| is_id(id)),
        );
        orphan_pods.sort();
        orphan_pods.dedup();
        for id in orphan_pods.iter().filter(|id| !named.contains(*id)) {
            tracing::warn!(pod_id = %id, "removing a pod no record names");
            if let Err(e) = self
                .undo_pod(id, &state_pods.join(id), &root_pods.join(id))
                .await
            {
                tracing::warn!(pod_id = %id, error = %e, "remove a pod no record names");
            }
        }
        let containers = |base: &Path| base.join("containers");
        let (bundles, layers) = (
            containers(&self.settings.state_dir),
            containers(&self.settings.root_dir),
        );
        let mut orphan_containers: Vec<String> = ids_in(&bundles);
        orphan_containers.extend(ids_in(&layers));
        orphan_containers.sort();
        orphan_containers.dedup();
        for id in orphan_containers.iter().filter(|id| !named.contains(*id)) {
            tracing::warn!(container_id = %id, "removing a container no record names");
            let bundle = bundles.join(id);
            let parts = ContainerParts {
                id,
                sandbox_id: None,
                cgroup: bundle_cgroup(&bundle),
                bundle: &bundle,
                rw_dir: &layers.join(id),
            };
            if let Err(e) = self.undo_container(&parts).await {
                tracing::warn!(container_id = %id, error = %e, "remove a container no record names");
            }
        }
        self.sweep_shim_tables().await;
        Ok(())
    }

    /// Deletes, in every connected shim, the containers no record or intent names (a create
    /// the shim finished after berthd was killed and its creation was undone).
    async fn sweep_shim_tables(&self) {
        let shims: Vec<_> = self
            .shims
            .lock()
            .expect("shims lock")
            .iter()
            .map(|(id, shim)| (id.clone(), shim.clone()))
            .collect();
        for (pod_id, shim) in shims {
            let Ok(held) = shim.state().await else {
                continue;
            };
            // Read after the shim's table: a container it holds was named before it was asked
            // to create it, and stays named until after it was deleted from it.
            let Ok(named) = self.named_ids() else { return };
            for c in held.iter().filter(|c| !named.contains(&c.id)) {
                tracing::warn!(pod_id, container_id = %c.id, "deleting a container no record names from its shim");
                if let Err(e) = shim.delete(&c.id).await {
                    tracing::warn!(pod_id, container_id = %c.id, error = %e, "delete an unnamed container from its shim");
                }
            }
        }
    }

    /// Ids of every recorded pod and container and of every intent.
    fn named_ids(&self) -> Result<HashSet<String>> {
        let mut ids: HashSet<String> = self.sandboxes()?.into_iter().map(|s| s.id).collect();
        ids.extend(self.containers()?.into_iter().map(|c| c.id));
        ids.extend(self.intents()?.into_iter().map(|(id, _)| id));
        Ok(ids)
    }
}

/// What a container may have on the host.
struct ContainerParts<'a> {
    id: &'a str,
    /// Its pod, when known (its shim deletes the process).
    sandbox_id: Option<&'a str>,
    bundle: &'a Path,
    rw_dir: &'a Path,
    cgroup: Option<String>,
}

/// Entries of `dir` named like berth's ids (64 hex digits); others are not berth's to remove.
fn ids_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_id(n))
        .collect()
}

fn is_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The cgroupfs path of the cgroup a bundle's `config.json` put the container in, if it says
/// (a path, or the systemd driver's `<slice>:berth:<id>`).
fn bundle_cgroup(bundle: &Path) -> Option<String> {
    let text = std::fs::read(bundle.join("config.json")).ok()?;
    let spec: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let path = spec.get("linux")?.get("cgroupsPath")?.as_str()?;
    crate::cgroup::path_from_oci(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_id_named_entries_are_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let id = "a".repeat(64);
        std::fs::create_dir_all(dir.path().join("pods").join(&id)).unwrap();
        std::fs::create_dir_all(dir.path().join("containers").join(&id)).unwrap();
        std::fs::create_dir_all(dir.path().join("pods/runc")).unwrap();
        std::fs::create_dir_all(dir.path().join("pods").join("g".repeat(64))).unwrap();
        assert_eq!(ids_in(&dir.path().join("pods")), vec![id.clone()]);
        assert_eq!(ids_in(&dir.path().join("containers")), vec![id]);
        assert!(ids_in(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn a_bundle_names_its_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(bundle_cgroup(dir.path()), None);
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"linux": {"cgroupsPath": "/berth/abc"}}"#,
        )
        .unwrap();
        assert_eq!(bundle_cgroup(dir.path()).as_deref(), Some("/berth/abc"));
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"linux": {"cgroupsPath": "kubepods-pod1.slice:berth:abc"}}"#,
        )
        .unwrap();
        assert_eq!(
            bundle_cgroup(dir.path()).as_deref(),
            Some("/kubepods.slice/kubepods-pod1.slice/berth-abc.scope")
        );
    }
}
