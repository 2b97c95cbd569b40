//! Image records and their names, and garbage collection of content and snapshots that no image
//! uses any more. Records live in the metadata database (schema in `crate::store`).

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::content::{ContentError, ContentStore};
use super::digest::Digest;
use super::reference::ImageRef;
use crate::error::{Classify, Kind};
use crate::snapshot::{SnapshotError, Snapshotter};
use crate::store::{Store, StoreError, Table};

/// One pulled image, keyed by its id (the config digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: Digest,
    /// `registry/repo:tag` names pointing at this image.
    pub repo_tags: Vec<String>,
    /// `registry/repo@sha256:..` names (the digest the registry resolved the tag to).
    pub repo_digests: Vec<String>,
    /// The platform manifest, and the index it was chosen from, if any.
    pub manifest: Digest,
    pub index: Option<Digest>,
    /// Compressed layer blobs, bottom first.
    pub layers: Vec<Digest>,
    /// Snapshot chain ids, bottom first; the last is the image's rootfs.
    pub chain_ids: Vec<Digest>,
    /// Config plus compressed layer bytes, as registries report image size.
    pub size: u64,
    /// The config's USER, verbatim.
    pub user: String,
    /// Pinned images are never removed by kubelet's image GC.
    pub pinned: bool,
}

impl ImageRecord {
    fn names(&self) -> impl Iterator<Item = &String> {
        self.repo_tags.iter().chain(&self.repo_digests)
    }

    /// The content this image keeps alive.
    pub(super) fn blobs(&self) -> impl Iterator<Item = &Digest> {
        std::iter::once(&self.id)
            .chain(std::iter::once(&self.manifest))
            .chain(&self.index)
            .chain(&self.layers)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageStoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

impl Classify for ImageStoreError {
    fn kind(&self) -> Kind {
        match self {
            ImageStoreError::Store(e) => e.kind(),
            ImageStoreError::Content(e) => e.kind(),
            ImageStoreError::Snapshot(e) => e.kind(),
        }
    }
}

/// What a garbage-collection pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub blobs: usize,
    pub snapshots: usize,
}

/// Image records over the database, content store and snapshotter.
pub struct ImageStore {
    pub db: Arc<Store>,
    pub content: ContentStore,
    pub snapshots: Snapshotter,
    /// Makes pulled content durable in the background (`flush`).
    pub flusher: super::flush::Flusher,
}

impl ImageStore {
    /// Finds an image the way kubelet and crictl name it: by id (`sha256:<hex>`, bare hex, or an
    /// unambiguous hex prefix of at least 12 characters), by tag, or by digest reference.
    pub fn lookup(&self, spec: &str) -> Result<Option<ImageRecord>, ImageStoreError> {
        let hex = spec.strip_prefix("sha256:").unwrap_or(spec);
        let is_hex = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if is_hex && (hex.len() == 64 || hex.len() >= 12) {
            let mut found = self
                .list()?
                .into_iter()
                .filter(|r| r.id.hex().starts_with(hex));
            if let (Some(record), None) = (found.next(), found.next()) {
                return Ok(Some(record));
            }
        }
        let Ok(reference) = spec.parse::<ImageRef>() else {
            return Ok(None);
        };
        // `name:tag@digest` is found by its digest; the tag is informational.
        let key = match reference.digest() {
            Some(digest) => reference.repo_digest(digest),
            None => reference.to_string(),
        };
        self.db
            .read(|r| {
                let Some(id) = r.get::<String>(Table::ImageNames, &key)? else {
                    return Ok(None);
                };
                r.get::<ImageRecord>(Table::Images, &id)
            })
            .map_err(Into::into)
    }

    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageStoreError> {
        let rows: Vec<(String, ImageRecord)> = self.db.read(|r| r.list(Table::Images))?;
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }

    /// Records a pulled image. Its names move to it from any image that had them; an image that
    /// already exists under this id gains the new names.
    pub fn add(&self, mut record: ImageRecord) -> Result<ImageRecord, ImageStoreError> {
        let saved = self.db.write(|w| {
            if let Some(existing) = w.get::<ImageRecord>(Table::Images, record.id.as_str())? {
                for tag in existing.repo_tags {
                    if !record.repo_tags.contains(&tag) {
                        record.repo_tags.push(tag);
                    }
                }
                for digest in existing.repo_digests {
                    if !record.repo_digests.contains(&digest) {
                        record.repo_digests.push(digest);
                    }
                }
                record.pinned |= existing.pinned;
            }
            for name in record.names() {
                let previous: Option<String> = w.get(Table::ImageNames, name)?;
                if let Some(previous) = previous.filter(|p| p != record.id.as_str())
                    && let Some(mut other) = w.get::<ImageRecord>(Table::Images, &previous)?
                {
                    other.repo_tags.retain(|n| n != name);
                    other.repo_digests.retain(|n| n != name);
                    w.put(Table::Images, &previous, &other)?;
                }
                w.put(Table::ImageNames, name, record.id.as_str())?;
            }
            w.put(Table::Images, record.id.as_str(), &record)?;
            Ok(record)
        })?;
        Ok(saved)
    }

    /// Removes an image record and all its names. Returns the removed record, if any.
    pub fn remove(&self, id: &Digest) -> Result<Option<ImageRecord>, ImageStoreError> {
        let removed = self.db.write(|w| {
            let Some(record) = w.get::<ImageRecord>(Table::Images, id.as_str())? else {
                return Ok(None);
            };
            for name in record.names() {
                w.delete(Table::ImageNames, name)?;
            }
            w.delete(Table::Images, id.as_str())?;
            Ok(Some(record))
        })?;
        Ok(removed)
    }

    /// Deletes every blob and snapshot no image refers to. `in_use` adds chain ids and blobs
    /// held by something else (containers, running pulls, failed pulls' layers in their grace).
    pub fn collect_garbage(&self, in_use: &HashSet<Digest>) -> Result<Swept, ImageStoreError> {
        let images = self.list()?;
        let mut blobs: HashSet<&Digest> = images.iter().flat_map(|i| i.blobs()).collect();
        blobs.extend(in_use);
        let mut chains: HashSet<&Digest> = images.iter().flat_map(|i| &i.chain_ids).collect();
        chains.extend(in_use);
        // A snapshot in use keeps the snapshots below it (its parents) too.
        let snapshots = self.snapshots.list()?;
        let parents: std::collections::HashMap<&Digest, &Digest> = snapshots
            .iter()
            .filter_map(|(chain, r)| r.parent.as_ref().map(|p| (chain, p)))
            .collect();
        let mut pending: Vec<&Digest> = chains.iter().copied().collect();
        while let Some(chain) = pending.pop() {
            if let Some(parent) = parents.get(chain)
                && chains.insert(parent)
            {
                pending.push(parent);
            }
        }
        let mut swept = Swept::default();
        let mut deleted = vec![];
        for digest in self.content.list()? {
            if !blobs.contains(&digest) {
                self.content.delete(&digest)?;
                deleted.push(digest);
            }
        }
        swept.blobs = deleted.len();
        self.unmark_blobs(&deleted)?;
        for (chain_id, _) in &snapshots {
            if !chains.contains(chain_id) {
                self.snapshots.remove(chain_id)?;
                swept.snapshots += 1;
            }
        }
        Ok(swept)
    }
}

#[cfg(test)]
impl ImageStore {
    /// An image store with its database, content and snapshots under `dir`, for unit tests.
    pub(crate) fn open_for_tests(dir: &std::path::Path) -> ImageStore {
        let db = Arc::new(Store::open(&dir.join("meta.redb")).unwrap());
        ImageStore {
            content: ContentStore::open(&dir.join("content")).unwrap(),
            snapshots: Snapshotter::open(&dir.join("snapshots"), db.clone()).unwrap(),
            db,
            flusher: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> ImageStore {
        ImageStore::open_for_tests(dir)
    }

    fn record(config: &[u8], tag: &str) -> ImageRecord {
        ImageRecord {
            id: Digest::of(config),
            repo_tags: vec![tag.to_string()],
            repo_digests: vec![format!(
                "{}@{}",
                tag.split(':').next().unwrap(),
                Digest::of(tag.as_bytes())
            )],
            manifest: Digest::of(tag.as_bytes()),
            index: None,
            layers: vec![],
            chain_ids: vec![],
            size: 1,
            user: String::new(),
            pinned: false,
        }
    }

    #[test]
    fn lookup_by_id_prefix_tag_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let r = s
            .add(record(b"cfg", "docker.io/library/busybox:latest"))
            .unwrap();
        for spec in [
            r.id.to_string(),
            r.id.hex().to_string(),
            r.id.hex()[..12].to_string(),
            "busybox".to_string(),
            "docker.io/library/busybox:latest".to_string(),
            r.repo_digests[0].clone(),
            format!(
                "busybox:latest@{}",
                r.repo_digests[0].split('@').nth(1).unwrap()
            ),
        ] {
            assert_eq!(s.lookup(&spec).unwrap().as_ref(), Some(&r), "{spec}");
        }
        assert_eq!(s.lookup("busybox:other").unwrap(), None);
        assert_eq!(s.lookup("NOT A REF").unwrap(), None);
    }

    #[test]
    fn a_tag_moves_to_the_newer_image() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let old = s.add(record(b"old", "r.io/app:v1")).unwrap();
        let new = s.add(record(b"new", "r.io/app:v1")).unwrap();
        assert_eq!(s.lookup("r.io/app:v1").unwrap().unwrap().id, new.id);
        let old_now = s.lookup(old.id.as_str()).unwrap().unwrap();
        assert!(old_now.repo_tags.is_empty(), "{old_now:?}");
        s.remove(&new.id).unwrap();
        assert_eq!(s.lookup("r.io/app:v1").unwrap(), None);
        assert_eq!(s.list().unwrap().len(), 1);
    }

    #[test]
    fn garbage_collection_keeps_only_referenced_content() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let kept = Digest::of(b"kept-config");
        s.content.put(&kept, b"kept-config").unwrap();
        s.content.put(&Digest::of(b"orphan"), b"orphan").unwrap();
        let staging = s.snapshots.staging().unwrap();
        let chain = Digest::of(b"layer");
        s.snapshots
            .commit(staging, &chain, None, &chain, 0, 0)
            .unwrap();
        let mut r = record(b"kept-config", "r.io/a:1");
        r.id = kept.clone();
        s.add(r).unwrap();
        let swept = s.collect_garbage(&HashSet::from([chain.clone()])).unwrap();
        assert_eq!(
            swept,
            Swept {
                blobs: 1,
                snapshots: 0
            }
        );
        assert!(s.content.contains(&kept));
        let swept = s.collect_garbage(&HashSet::new()).unwrap();
        assert_eq!(
            swept,
            Swept {
                blobs: 0,
                snapshots: 1
            }
        );
    }

    #[test]
    fn blobs_in_use_are_kept_too() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let (kept, gone) = (Digest::of(b"kept-layer"), Digest::of(b"gone"));
        s.content.put(&kept, b"kept-layer").unwrap();
        s.content.put(&gone, b"gone").unwrap();
        let swept = s.collect_garbage(&HashSet::from([kept.clone()])).unwrap();
        assert_eq!(swept.blobs, 1);
        assert!(s.content.contains(&kept));
        assert!(!s.content.contains(&gone));
    }

    #[test]
    fn a_snapshot_in_use_keeps_its_parents() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let (base, mid, top, other) = (
            Digest::of(b"base"),
            Digest::of(b"mid"),
            Digest::of(b"top"),
            Digest::of(b"other"),
        );
        for (chain, parent) in [(&base, None), (&mid, Some(&base)), (&top, Some(&mid))] {
            let staging = s.snapshots.staging().unwrap();
            s.snapshots
                .commit(staging, chain, parent, chain, 0, 0)
                .unwrap();
        }
        let staging = s.snapshots.staging().unwrap();
        s.snapshots
            .commit(staging, &other, None, &other, 0, 0)
            .unwrap();
        // A container holds only its image's top chain id.
        let swept = s.collect_garbage(&HashSet::from([top.clone()])).unwrap();
        assert_eq!(swept.snapshots, 1, "only the unrelated snapshot goes");
        for chain in [&base, &mid, &top] {
            assert!(s.snapshots.get(chain).unwrap().is_some(), "{chain}");
        }
        assert!(s.snapshots.get(&other).unwrap().is_none());
    }
}
