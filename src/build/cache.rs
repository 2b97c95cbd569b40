//! The layer cache: a step's key is a digest over its parent's key, its instruction text, the
//! build args in scope and (for COPY/ADD) the content of its sources; the key names the layer
//! the step made last time and its snapshot's chain id (`<root_dir>/build/cache/<key>`). A hit
//! needs the layer's blob and snapshot to still be stored: the entries are garbage-collection
//! roots ([`roots`]), so image removals and berthd's start keep them, up to [`MAX_BYTES`] of
//! the most recently used layers; [`prune`] drops them all (`berth builder prune`).

use std::collections::HashSet;
use std::path::Path;
use std::time::SystemTime;

use super::Builder;
use super::layer::Layer;
use crate::image::digest::{Digest, Hasher};

/// The compressed size of the cached layers kept as roots, most recently used first: the older
/// entries beyond it are dropped at the next garbage collection.
pub const MAX_BYTES: u64 = 10 << 30;

/// What a cache entry file holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    #[serde(flatten)]
    layer: Layer,
    /// The layer's snapshot chain id (absent in entries written before it was recorded).
    #[serde(default)]
    chain: Option<Digest>,
}

/// A cache key: the digest of everything a step's result depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// The key of a stage's starting point (an image id, or `scratch`).
    pub fn start(base: &str) -> Key {
        Key(Digest::of(format!("base\0{base}").as_bytes()).to_string())
    }

    /// The key of the next step. Every part, and every build arg on its own, goes in with its
    /// length first, so no two different lists of parts hash the same bytes (`A=1\nB=2` as one
    /// arg is not `A=1` and `B=2`).
    pub fn next(&self, text: &str, args: &[String], sources: &str) -> Key {
        let mut hasher = Hasher::default();
        let mut part = |bytes: &[u8]| {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        part(self.0.as_bytes());
        part(text.as_bytes());
        part(&(args.len() as u64).to_le_bytes());
        for arg in args {
            part(arg.as_bytes());
        }
        part(sources.as_bytes());
        Key(hasher.finish().to_string())
    }

    fn file(&self) -> String {
        self.0.trim_start_matches("sha256:").to_string()
    }
}

/// The layer and chain id `key` made before, if they are still stored.
pub fn lookup(builder: &Builder, key: &Key, parent: Option<&Digest>) -> Option<(Layer, Digest)> {
    let path = builder.dir.join("cache").join(key.file());
    let Entry { layer, .. } = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let store = builder.images.store();
    let chain = match parent {
        Some(parent) => Digest::of(format!("{parent} {}", layer.diff_id).as_bytes()),
        None => layer.diff_id.clone(),
    };
    let present = store.content.contains(&layer.descriptor.digest)
        && store.snapshots.get(&chain).ok().flatten().is_some();
    if present {
        // The entry was used now: the bound drops least recently used entries first.
        let _ = std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
    }
    present.then_some((layer, chain))
}

/// Remembers that `key` made `layer`, whose snapshot is `chain` (best effort: a lost entry is
/// a cache miss).
pub fn store(builder: &Builder, key: &Key, layer: &Layer, chain: &Digest) {
    let dir = builder.dir.join("cache");
    let tmp = dir.join(format!("tmp-{:016x}", rand::random::<u64>()));
    let entry = Entry {
        layer: layer.clone(),
        chain: Some(chain.clone()),
    };
    let Ok(json) = serde_json::to_vec(&entry) else {
        return;
    };
    if std::fs::write(&tmp, json).is_ok() && std::fs::rename(&tmp, dir.join(key.file())).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// When the step `key` first ran: kept with the cache, so an unchanged rebuild writes the same
/// history (and so the same image id). `fresh` (a step that ran again) records the time now.
pub fn created(builder: &Builder, key: &Key, fresh: bool) -> String {
    let path = builder
        .dir
        .join("cache")
        .join(format!("{}.created", key.file()));
    if !fresh && let Ok(text) = std::fs::read_to_string(&path) {
        return text;
    }
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let tmp = path.with_extension(format!("tmp-{:08x}", rand::random::<u32>()));
    if std::fs::write(&tmp, &now).is_ok() && std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    now
}

/// The cache entries in `dir`: (path, entry, last used), most recently used first.
fn entries(dir: &Path) -> Vec<(std::path::PathBuf, Entry, SystemTime)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<_> = read
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .filter_map(|e| {
            let used = e.metadata().and_then(|m| m.modified()).ok()?;
            let entry = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            Some((e.path(), entry, used))
        })
        .collect();
    found.sort_by_key(|e| std::cmp::Reverse(e.2));
    found
}

/// Removes a cache entry and its creation time.
fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("created"));
}

/// The blobs and snapshot chain ids the cache in `dir` keeps from garbage collection: those of
/// the most recently used entries while their layers add up to `max_bytes`; the entries beyond
/// are removed (a later build misses there and runs the step again).
pub fn roots(dir: &Path, max_bytes: u64) -> HashSet<Digest> {
    let mut keep = HashSet::new();
    let mut total = 0u64;
    for (path, entry, _) in entries(dir) {
        total = total.saturating_add(entry.layer.descriptor.size);
        match entry.chain {
            Some(chain) if total <= max_bytes => {
                keep.insert(entry.layer.descriptor.digest);
                keep.insert(chain);
            }
            _ => remove(&path),
        }
    }
    keep
}

/// Removes every cache entry in `dir`; returns how many there were. The layers go at the next
/// garbage collection unless an image uses them.
pub fn prune(dir: &Path) -> usize {
    let all = entries(dir);
    for (path, _, _) in &all {
        remove(path);
    }
    all.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::manifest::Descriptor;

    fn write(dir: &Path, n: u8, size: u64, chain: bool, age_secs: u64) -> (Digest, Digest) {
        let blob = Digest::of(&[n, 1]);
        let chain_id = Digest::of(&[n, 2]);
        let entry = Entry {
            layer: Layer {
                descriptor: Descriptor {
                    media_type: super::super::layer::LAYER_MEDIA_TYPE.into(),
                    digest: blob.clone(),
                    size,
                    platform: None,
                },
                diff_id: Digest::of(&[n, 3]),
            },
            chain: chain.then(|| chain_id.clone()),
        };
        let path = dir.join(Digest::of(&[n]).hex());
        std::fs::write(&path, serde_json::to_vec(&entry).unwrap()).unwrap();
        std::fs::write(path.with_extension("created"), "t").unwrap();
        let when = SystemTime::now() - std::time::Duration::from_secs(age_secs);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
        (blob, chain_id)
    }

    #[test]
    fn roots_keep_the_most_recently_used_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let (new_blob, new_chain) = write(dir.path(), 1, 40, true, 10);
        let (mid_blob, mid_chain) = write(dir.path(), 2, 40, true, 20);
        let (old_blob, old_chain) = write(dir.path(), 3, 40, true, 30);
        let (legacy_blob, _) = write(dir.path(), 4, 1, false, 5);
        std::fs::write(dir.path().join("tmp-0123"), "x").unwrap();

        let keep = roots(dir.path(), 100);
        let want: HashSet<Digest> = [new_blob, new_chain, mid_blob, mid_chain]
            .into_iter()
            .collect();
        assert_eq!(keep, want);
        assert!(!keep.contains(&old_blob) && !keep.contains(&old_chain));
        assert!(
            !keep.contains(&legacy_blob),
            "an entry without a chain is no root"
        );
        // The entries beyond the bound (and the one without a chain id) are gone.
        assert_eq!(entries(dir.path()).len(), 2);
        assert!(!dir.path().join(Digest::of(&[3]).hex()).exists());
        assert!(
            !dir.path()
                .join(format!("{}.created", Digest::of(&[3]).hex()))
                .exists()
        );
        assert_eq!(roots(dir.path(), 100).len(), 4, "what is kept stays kept");

        assert_eq!(prune(dir.path()), 2);
        assert!(roots(dir.path(), u64::MAX).is_empty());
        assert!(
            dir.path().join("tmp-0123").exists(),
            "prune leaves other files"
        );
    }
}

#[cfg(test)]
mod key_tests {
    use super::Key;

    #[test]
    fn args_and_parts_never_run_together() {
        let start = Key::start("scratch");
        let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let one = start.next("RUN x", &v(&["A=1\nB=2"]), "");
        let two = start.next("RUN x", &v(&["A=1", "B=2"]), "");
        assert_ne!(one, two);
        assert_ne!(
            start.next("RUN x", &v(&["A=1"]), ""),
            start.next("RUN x\0", &v(&[]), "A=1")
        );
        assert_ne!(
            start.next("RUN x", &v(&[""]), ""),
            start.next("RUN x", &v(&[]), "")
        );
        assert_eq!(two, start.next("RUN x", &v(&["A=1", "B=2"]), ""));
    }
}
