//! The layer cache: a step's key is a digest over its parent's key, its instruction text, the
//! build args in scope and (for COPY/ADD) the content of its sources; the key names the layer
//! the step made last time (`<root_dir>/build/cache/<key>`). A hit needs the layer's blob and
//! snapshot to still be stored.

use super::Builder;
use super::layer::Layer;
use crate::image::digest::{Digest, Hasher};

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
    let layer: Layer = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let store = builder.images.store();
    let chain = match parent {
        Some(parent) => Digest::of(format!("{parent} {}", layer.diff_id).as_bytes()),
        None => layer.diff_id.clone(),
    };
    let present = store.content.contains(&layer.descriptor.digest)
        && store.snapshots.get(&chain).ok().flatten().is_some();
    present.then_some((layer, chain))
}

/// Remembers that `key` made `layer` (best effort: a lost entry is a cache miss).
pub fn store(builder: &Builder, key: &Key, layer: &Layer) {
    let dir = builder.dir.join("cache");
    let tmp = dir.join(format!("tmp-{:016x}", rand::random::<u64>()));
    let Ok(json) = serde_json::to_vec(layer) else {
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
