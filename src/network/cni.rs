//! berth's CNI invoker: ADD runs the network's plugin chain in order (each one's result is the
//! next one's `prevResult`), DEL runs it in reverse from the cached attachment. The conf dir is
//! re-read whenever its files change, so a network installed later (a CNI DaemonSet) is picked
//! up without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use tracing::Instrument as _;

use super::cache::{CACHE_VERSION, Cache, CachedAttachment};
use super::conf::{self, Fingerprint, NetworkList};
use super::invoke::{self, Invocation};
use super::{Attachment, NetworkError, POD_IFNAME, PodIps, PodNetwork, Readiness, RuntimeConfig};

/// Where the invoker finds configs and plugins, and keeps its cache.
#[derive(Debug, Clone)]
pub struct CniSettings {
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
    pub cache_dir: PathBuf,
}

pub struct Cni {
    settings: CniSettings,
    cache: Cache,
    loaded: Mutex<Loaded>,
}

/// The config as last read, and the conf dir contents it was read from.
struct Loaded {
    fingerprint: Option<Fingerprint>,
    network: Result<Arc<NetworkList>, String>,
}

impl Cni {
    pub fn new(settings: CniSettings) -> Cni {
        Cni {
            cache: Cache::new(settings.cache_dir.clone()),
            settings,
            loaded: Mutex::new(Loaded {
                fingerprint: None,
                network: Err("not loaded yet".into()),
            }),
        }
    }

    /// The current network: re-read when the conf dir changed, or while none is valid (a
    /// plugin binary may have been installed since).
    fn current(&self) -> Result<Arc<NetworkList>, String> {
        let fingerprint = conf::fingerprint(&self.settings.conf_dir);
        let mut loaded = self.loaded.lock().expect("cni config lock");
        if loaded.fingerprint.as_ref() != Some(&fingerprint) || loaded.network.is_err() {
            let network =
                conf::load(&self.settings.conf_dir, &self.settings.bin_dirs).map(Arc::new);
            match (&loaded.network, &network) {
                (Ok(old), Ok(new)) if old == new => {}
                (_, Ok(new)) => tracing::info!(
                    network = %new.name,
                    file = %new.source.display(),
                    "CNI network config loaded"
                ),
                (Ok(_), Err(e)) => tracing::warn!(error = %e, "CNI network config lost"),
                (Err(old), Err(new)) if old != new && !old.contains("not loaded yet") => {
                    tracing::warn!(error = %new, "no usable CNI network config")
                }
                (Err(_), Err(_)) => {}
            }
            *loaded = Loaded {
                fingerprint: Some(fingerprint),
                network,
            };
        }
        loaded.network.clone()
    }

    async fn add(&self, pod: &Attachment) -> Result<PodIps, NetworkError> {
        let network = self.current().map_err(NetworkError::NotReady)?;
        let mut entry = CachedAttachment {
            version: CACHE_VERSION,
            sandbox_id: pod.sandbox_id.clone(),
            netns: pod.netns.clone(),
            ifname: POD_IFNAME.to_string(),
            cni_args: cni_args(pod),
            network: (*network).clone(),
            runtime_config: pod.runtime_config.clone(),
            result: None,
        };
        // Before any plugin runs: whatever happens next, DEL knows what to undo.
        self.cache.write(&entry)?;
        let netns = pod.netns.display().to_string();
        let mut prev: Option<Value> = None;
        for plugin in &network.plugins {
            let config = plugin_config(&network, plugin, prev.take(), &entry.runtime_config);
            let out = self.run("ADD", &entry, &netns, plugin, &config).await?;
            if out.is_null() {
                let kind = NetworkList::plugin_type(plugin);
                return Err(self.bad_result("ADD", &entry, kind, "no result".into()));
            }
            prev = Some(out);
        }
        let result = prev.unwrap_or(Value::Null);
        let last = network.plugins.last().map_or("", NetworkList::plugin_type);
        let ips =
            super::result::pod_ips(&result).map_err(|e| self.bad_result("ADD", &entry, last, e))?;
        entry.result = Some(result);
        self.cache.write(&entry)?;
        Ok(ips)
    }

    async fn del(&self, sandbox_id: &str) -> Result<(), NetworkError> {
        let Some(entry) = self.cache.read(sandbox_id)? else {
            return Ok(());
        };
        // A namespace that is gone (pod stopped, node rebooted) is passed as empty: plugins
        // still release what they hold outside it (IPAM leases, iptables rules).
        let netns = if is_netns(&entry.netns) {
            entry.netns.display().to_string()
        } else {
            String::new()
        };
        let prev = entry
            .result
            .clone()
            .filter(|_| entry.network.passes_prev_result_to_del());
        for plugin in entry.network.plugins.iter().rev() {
            let config = plugin_config(&entry.network, plugin, prev.clone(), &entry.runtime_config);
            self.run("DEL", &entry, &netns, plugin, &config).await?;
        }
        self.cache.remove(sandbox_id)
    }

    async fn run(
        &self,
        command: &'static str,
        entry: &CachedAttachment,
        netns: &str,
        plugin: &Map<String, Value>,
        config: &Value,
    ) -> Result<Value, NetworkError> {
        let kind = NetworkList::plugin_type(plugin);
        let failed = |message: String| NetworkError::Plugin {
            command,
            sandbox_id: entry.sandbox_id.clone(),
            network: entry.network.name.clone(),
            plugin: kind.to_string(),
            message,
        };
        let binary = conf::find_plugin(&self.settings.bin_dirs, kind).ok_or_else(|| {
            failed(format!(
                "not found in {}",
                conf::join_paths(&self.settings.bin_dirs)
            ))
        })?;
        let call = Invocation {
            command,
            container_id: &entry.sandbox_id,
            netns,
            ifname: &entry.ifname,
            cni_path: &conf::join_paths(&self.settings.bin_dirs),
            cni_args: &entry.cni_args,
        };
        let started = std::time::Instant::now();
        let span = match command {
            "ADD" => tracing::info_span!("cni.add", plugin = kind),
            _ => tracing::info_span!("cni.del", plugin = kind),
        };
        let out = invoke::run(&binary, &call, config)
            .instrument(span)
            .await
            .map_err(failed)?;
        tracing::debug!(
            pod_id = %entry.sandbox_id,
            plugin = kind,
            command,
            ms = started.elapsed().as_millis() as u64,
            "CNI plugin done"
        );
        Ok(out)
    }

    fn bad_result(
        &self,
        command: &'static str,
        entry: &CachedAttachment,
        plugin: &str,
        message: String,
    ) -> NetworkError {
        NetworkError::BadResult {
            command,
            sandbox_id: entry.sandbox_id.clone(),
            plugin: plugin.to_string(),
            message,
        }
    }
}

impl PodNetwork for Cni {
    fn readiness(&self) -> Readiness {
        match self.current() {
            Ok(_) => Readiness {
                ready: true,
                message: String::new(),
            },
            Err(message) => Readiness {
                ready: false,
                message: format!("berth: CNI: {message}"),
            },
        }
    }

    fn attach<'a>(&'a self, pod: &'a Attachment) -> BoxFuture<'a, Result<PodIps, NetworkError>> {
        Box::pin(timed("add", self.add(pod)))
    }

    fn detach<'a>(&'a self, sandbox_id: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        Box::pin(timed("del", self.del(sandbox_id)))
    }

    fn attached(&self) -> Result<Vec<String>, NetworkError> {
        self.cache.ids()
    }
}

/// Runs one CNI operation, recording how long it took.
async fn timed<T>(op: &str, call: impl Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let result = call.await;
    crate::telemetry::metrics().record_cni(op, started.elapsed().as_secs_f64());
    result
}

/// `CNI_ARGS` for a pod, as kubelet's runtimes pass them.
fn cni_args(pod: &Attachment) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
        pod.pod_namespace, pod.pod_name, pod.sandbox_id, pod.pod_uid
    )
}

/// One plugin's stdin: its own config with the network's name and version, the previous
/// plugin's result and the capability arguments it declared.
fn plugin_config(
    network: &NetworkList,
    plugin: &Map<String, Value>,
    prev: Option<Value>,
    runtime: &RuntimeConfig,
) -> Value {
    let mut config = plugin.clone();
    config.insert("name".into(), Value::String(network.name.clone()));
    config.insert(
        "cniVersion".into(),
        Value::String(network.cni_version.clone()),
    );
    if let Some(prev) = prev {
        config.insert("prevResult".into(), prev);
    }
    if let Some(args) = runtime.for_plugin(plugin.get("capabilities")) {
        config.insert("runtimeConfig".into(), args);
    }
    Value::Object(config)
}

/// Whether `path` is a mounted network namespace (an nsfs file), not a leftover mount point.
fn is_netns(path: &Path) -> bool {
    use nix::sys::statfs::{NSFS_MAGIC, statfs};
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plugin_stdin_carries_name_version_prev_result_and_declared_capabilities() {
        let network = NetworkList {
            name: "net".into(),
            cni_version: "1.0.0".into(),
            plugins: vec![],
            source: "/x".into(),
        };
        let runtime = RuntimeConfig {
            port_mappings: vec![super::super::PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: String::new(),
            }],
            ..Default::default()
        };
        let portmap = json!({"type": "portmap", "capabilities": {"portMappings": true}});
        let config = plugin_config(
            &network,
            portmap.as_object().unwrap(),
            Some(json!({"ips": []})),
            &runtime,
        );
        assert_eq!(
            config,
            json!({
                "type": "portmap", "capabilities": {"portMappings": true},
                "name": "net", "cniVersion": "1.0.0", "prevResult": {"ips": []},
                "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
            })
        );
        let bridge = json!({"type": "bridge"});
        let config = plugin_config(&network, bridge.as_object().unwrap(), None, &runtime);
        assert_eq!(
            config,
            json!({"type": "bridge", "name": "net", "cniVersion": "1.0.0"})
        );
    }

    #[test]
    fn cni_args_name_the_pod() {
        let pod = Attachment {
            sandbox_id: "abc".into(),
            pod_name: "web".into(),
            pod_namespace: "default".into(),
            pod_uid: "u1".into(),
            ..Default::default()
        };
        assert_eq!(
            cni_args(&pod),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u1"
        );
    }

    #[test]
    fn a_plain_file_is_not_a_netns() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("net");
        std::fs::write(&file, "").unwrap();
        assert!(!is_netns(&file));
        assert!(!is_netns(&dir.path().join("missing")));
        assert!(is_netns(Path::new("/proc/self/ns/net")));
    }
}
