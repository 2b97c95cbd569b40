//! berth's NRI runtime: accepts plugins on the NRI socket, registers, configures and
//! synchronizes each (`plugin`), keeps them in index order and calls them at each lifecycle
//! point (`hooks`, the runtime's `NriHooks` seam). A plugin whose connection breaks is
//! forgotten; one that misses the request timeout is disconnected. Plugins' UpdateContainers
//! go through the runtime's own update path ([`Runtime::apply_resources`]).
//!
//! Synchronization and lifecycle do not interleave: a plugin is synchronized under the write
//! side of `sync`, and RunPodSandbox and CreateContainer hold its read side from their hook
//! until their record is written (`NriHooks::hold`), so a plugin connecting meanwhile sees each
//! pod and container exactly once, in Synchronize or as an event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::net::UnixListener;

use super::plugin::{Plugin, RuntimeInfo, Timeouts, UpdateSink, connect};
use super::{NriError, api, convert};
use crate::runtime::Runtime;

pub struct Adaptation {
    info: RuntimeInfo,
    timeouts: Timeouts,
    /// Registered plugins, in index order.
    plugins: Mutex<Vec<Arc<Plugin>>>,
    pub(super) sync: Arc<tokio::sync::RwLock<()>>,
    /// Admissions take turns before asking for `sync`'s write side, so at most one waits for
    /// it: a pod queues behind one plugin's synchronization, not behind every connecting one.
    admitting: tokio::sync::Mutex<()>,
    runtime: OnceLock<Weak<Runtime>>,
    /// Containers whose stop the plugins were told of (or are being told).
    pub(super) stopped: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<()>>>>,
}

impl Adaptation {
    pub fn new(timeouts: Timeouts) -> Arc<Adaptation> {
        Arc::new(Adaptation {
            info: RuntimeInfo {
                name: "berth".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                config: String::new(),
            },
            timeouts,
            plugins: Mutex::default(),
            sync: Arc::default(),
            admitting: tokio::sync::Mutex::default(),
            runtime: OnceLock::new(),
            stopped: Mutex::default(),
        })
    }

    /// Accepts plugins on `listener` (the NRI socket) for the runtime's life.
    pub fn serve(self: &Arc<Self>, listener: UnixListener, runtime: &Arc<Runtime>) {
        let _ = self.runtime.set(Arc::downgrade(runtime));
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let me = me.clone();
                        tokio::spawn(async move { me.admit(stream).await });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "NRI socket: accept");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }

    /// Registers, configures and synchronizes the plugin on `stream`, then takes it.
    pub async fn admit<S>(self: &Arc<Self>, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Sync + 'static,
    {
        let sink: Arc<dyn UpdateSink> = self.clone();
        let plugin = match connect(stream, &self.info, self.timeouts, Some(sink)).await {
            Ok(p) => Arc::new(p),
            Err(e) => {
                tracing::warn!(error = %e, "NRI plugin refused");
                return;
            }
        };
        // Admissions take the write side in turn, so no two can both pass this check.
        let _turn = self.admitting.lock().await;
        let _sync = self.sync.write().await;
        if self.is_registered(&plugin.id) {
            // Its events and adjustments would pass for the other's (no conflict between
            // them), and either one timing out would forget both.
            tracing::warn!(plugin = %plugin.id, "NRI plugin refused: a plugin of this index and name is connected");
            return;
        }
        let request = match self.sync_request() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(plugin = %plugin.id, error = %e, "NRI: list pods and containers");
                return;
            }
        };
        let updates = match plugin.synchronize(&request).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(plugin = %plugin.id, error = %e, "NRI plugin dropped");
                return;
            }
        };
        let failed = self.update_containers(&plugin.id, updates).await;
        if !failed.is_empty() {
            tracing::warn!(plugin = %plugin.id, failed = failed.len(), "NRI: sync updates failed");
        }
        tracing::info!(plugin = %plugin.id, events = plugin.events, "NRI plugin registered");
        let mut plugins = self.plugins.lock().expect("plugins lock");
        plugins.retain(|p| !p.is_closed());
        plugins.push(plugin);
        plugins.sort_by(|a, b| a.index.cmp(&b.index).then(a.name.cmp(&b.name)));
    }

    fn runtime(&self) -> Option<Arc<Runtime>> {
        self.runtime.get().and_then(Weak::upgrade)
    }

    fn sync_request(&self) -> crate::runtime::Result<api::SynchronizeRequest> {
        let mut request = api::SynchronizeRequest::new();
        if let Some(runtime) = self.runtime() {
            request.pods = (runtime.list_sandboxes()?.iter())
                .map(convert::pod)
                .collect();
            request.containers = (runtime.list_containers()?.iter())
                .map(convert::container)
                .collect();
        }
        Ok(request)
    }

    /// The live plugins subscribed to `event`, in index order.
    pub(super) fn subscribed(&self, event: api::Event) -> Vec<Arc<Plugin>> {
        let mut plugins = self.plugins.lock().expect("plugins lock");
        plugins.retain(|p| !p.is_closed());
        plugins.iter().filter(|p| p.wants(event)).cloned().collect()
    }

    /// How many plugins are registered and connected.
    pub fn plugin_count(&self) -> usize {
        let mut plugins = self.plugins.lock().expect("plugins lock");
        plugins.retain(|p| !p.is_closed());
        plugins.len()
    }

    /// Whether a connected plugin has the id `id`.
    fn is_registered(&self, id: &str) -> bool {
        let mut plugins = self.plugins.lock().expect("plugins lock");
        plugins.retain(|p| !p.is_closed());
        plugins.iter().any(|p| p.id == id)
    }

    fn forget(&self, plugin: &Plugin) {
        (self.plugins.lock().expect("plugins lock")).retain(|p| !std::ptr::eq(&**p, plugin));
    }

    /// One request to `plugin`: `Ok(None)` when its connection is gone (it is forgotten); a
    /// plugin that times out is disconnected and the timeout returned; its own error returned.
    pub(super) async fn ask<T, F>(
        &self,
        plugin: &Plugin,
        call: &'static str,
        request: impl FnOnce(ttrpc::context::Context) -> F,
    ) -> Result<Option<T>, NriError>
    where
        F: std::future::Future<Output = ttrpc::Result<T>>,
    {
        match plugin.call(call, request).await {
            Ok(reply) => Ok(Some(reply)),
            Err(e @ NriError::Timeout { .. }) => {
                tracing::warn!(plugin = %plugin.id, error = %e, "NRI plugin disconnected");
                self.forget(plugin);
                Err(e)
            }
            Err(e @ NriError::Refused { .. }) if !plugin.is_closed() => Err(e),
            Err(e) => {
                tracing::info!(plugin = %plugin.id, error = %e, "NRI plugin gone");
                self.forget(plugin);
                Ok(None)
            }
        }
    }

    /// Applies updates plugins asked for outside UpdateContainers' own call, logging failures.
    pub(super) async fn apply_updates(&self, plugin: &str, updates: Vec<api::ContainerUpdate>) {
        if updates.is_empty() {
            return;
        }
        let failed = self.update_containers(plugin, updates).await;
        for f in failed {
            tracing::warn!(plugin, container_id = %f.container_id, "NRI: container update failed");
        }
    }
}

#[async_trait::async_trait]
impl UpdateSink for Adaptation {
    async fn update_containers(
        &self,
        plugin: &str,
        updates: Vec<api::ContainerUpdate>,
    ) -> Vec<api::ContainerUpdate> {
        let Some(runtime) = self.runtime() else {
            return updates;
        };
        let mut failed = vec![];
        for update in updates {
            let result = match runtime.container_status(&update.container_id) {
                Ok(container) => {
                    let base = (container.config.linux.as_ref())
                        .and_then(|l| l.resources.clone())
                        .unwrap_or_default();
                    let new = match update.linux.as_ref().and_then(|l| l.resources.as_ref()) {
                        Some(r) => convert::cri_resources(&base, r),
                        None => base,
                    };
                    runtime.apply_resources(&container.id, new).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(plugin, container_id = %update.container_id, error = %e, "NRI: update container");
                if !update.ignore_failure {
                    failed.push(update);
                }
            }
        }
        failed
    }
}
