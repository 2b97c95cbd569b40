//! Cached attachments: for every pod berth has attached (or begun to attach), the exact network
//! config, arguments and ADD result, under `<root_dir>/network/<sandbox id>.json`. DEL reads
//! them, so it works after a restart (even a `kill -9`) and after the node's config changed.
//!
//! The entry is written before the first plugin runs (with no result) and again with the result
//! after the last one: a crash in the middle still leaves enough to DEL. It is removed only
//! when DEL succeeded. Files are written atomically (temp file, rename); the fsync of the file
//! and the directory runs on a thread of its own, off the pod's start path (an fsync costs more
//! here than the whole plugin chain). A crash of berthd cannot lose an entry (the page cache
//! survives it); a power loss in the few milliseconds before the fsync can, and then also took
//! the pod's namespace and interfaces with it.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::NetworkError;
use super::capabilities::RuntimeConfig;
use super::conf::NetworkList;

/// Bumped when the entry's shape changes incompatibly.
pub const CACHE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAttachment {
    pub version: u32,
    pub sandbox_id: String,
    /// The pod's network namespace pin at ADD time.
    pub netns: PathBuf,
    pub ifname: String,
    /// `CNI_ARGS` as passed to ADD.
    pub cni_args: String,
    /// The network config ADD used.
    pub network: NetworkList,
    pub runtime_config: RuntimeConfig,
    /// The ADD result of the last plugin; `None` until the whole chain succeeded.
    pub result: Option<Value>,
}

/// The directory of cached attachments.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    fn path(&self, sandbox_id: &str) -> PathBuf {
        self.dir.join(format!("{sandbox_id}.json"))
    }

    pub fn write(&self, entry: &CachedAttachment) -> Result<(), NetworkError> {
        let path = self.path(&entry.sandbox_id);
        let action = || format!("write cached network attachment {}", path.display());
        std::fs::create_dir_all(&self.dir).map_err(NetworkError::io(action()))?;
        let tmp = self.dir.join(format!(".{}.tmp", entry.sandbox_id));
        let text = serde_json::to_vec_pretty(entry).expect("a cache entry serialises");
        let mut file = std::fs::File::create(&tmp).map_err(NetworkError::io(action()))?;
        file.write_all(&text)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(NetworkError::io(action()))?;
        let dir = self.dir.clone();
        std::thread::spawn(move || {
            let synced = file
                .sync_all()
                .and_then(|_| std::fs::File::open(&dir)?.sync_all());
            if let Err(e) = synced {
                tracing::warn!(path = %path.display(), error = %e, "fsync cached network attachment");
            }
        });
        Ok(())
    }

    /// The entry of a pod, `None` when it has none.
    pub fn read(&self, sandbox_id: &str) -> Result<Option<CachedAttachment>, NetworkError> {
        let path = self.path(sandbox_id);
        let action = format!("read cached network attachment {}", path.display());
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(NetworkError::io(action)(e)),
        };
        let entry: CachedAttachment = serde_json::from_slice(&text).map_err(|e| {
            NetworkError::io(action.clone())(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e,
            ))
        })?;
        if entry.version != CACHE_VERSION {
            return Err(NetworkError::io(action)(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("cache version {} is not {CACHE_VERSION}", entry.version),
            )));
        }
        Ok(Some(entry))
    }

    pub fn remove(&self, sandbox_id: &str) -> Result<(), NetworkError> {
        let path = self.path(sandbox_id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetworkError::io(format!(
                "remove cached network attachment {}",
                path.display()
            ))(e)),
            _ => Ok(()),
        }
    }

    /// Sandbox ids with an entry.
    pub fn ids(&self) -> Result<Vec<String>, NetworkError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => {
                return Err(NetworkError::io(format!("list {}", self.dir.display()))(e));
            }
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".json")?;
                (!id.starts_with('.')).then(|| id.to_string())
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_removal_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("network"));
        assert!(cache.ids().unwrap().is_empty());
        assert_eq!(cache.read("p1").unwrap(), None);
        let entry = CachedAttachment {
            version: CACHE_VERSION,
            sandbox_id: "p1".into(),
            netns: "/run/berth/pods/p1/ns/net".into(),
            ifname: "eth0".into(),
            cni_args: "IgnoreUnknown=1".into(),
            network: NetworkList {
                name: "n".into(),
                cni_version: "1.0.0".into(),
                plugins: vec![],
                source: "/etc/cni/net.d/10-n.conflist".into(),
            },
            runtime_config: RuntimeConfig::default(),
            result: Some(serde_json::json!({"ips": []})),
        };
        cache.write(&entry).unwrap();
        assert_eq!(cache.read("p1").unwrap(), Some(entry));
        assert_eq!(cache.ids().unwrap(), ["p1"]);
        cache.remove("p1").unwrap();
        cache.remove("p1").unwrap();
        assert!(cache.ids().unwrap().is_empty());
    }
}
