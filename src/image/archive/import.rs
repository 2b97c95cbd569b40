//! Importing an archive: index it, plan its images, then pull each through the archive registry
//! and record it under the archive's names. Nothing is recorded unless every image imported.

use std::path::Path;
use std::sync::Arc;

use super::plan::{ImagePlan, plan};
use super::{ArchiveError, Entries};
use crate::image::pull::{Progress, Puller};
use crate::image::store::ImageRecord;

/// Stands in for an image name where the pipeline wants one; error messages say `archive`.
const PLACEHOLDER: &str = "archive.invalid/import:latest";

/// Imports every image of the archive at `path` for the puller's platform, returning their
/// records. On error some content may be stored but no image is recorded: the caller collects
/// the garbage.
pub async fn import(puller: &Puller, path: &Path) -> Result<Vec<ImageRecord>, ArchiveError> {
    let owned = path.to_path_buf();
    let platform = puller.settings.platform.clone();
    let plans = tokio::task::spawn_blocking(move || plan(Entries::index(&owned)?, &platform))
        .await
        .map_err(|e| ArchiveError::Worker(format!("indexing stopped: {e}")))??;
    let mut fetched = Vec::new();
    let mut claims = Vec::new();
    for ImagePlan { registry, names } in plans {
        let label = match names.first() {
            Some(name) => name.to_string(),
            None => registry.top.to_string(),
        };
        let image = names
            .first()
            .cloned()
            .unwrap_or_else(|| PLACEHOLDER.parse().expect("valid placeholder"));
        let archive_puller = Puller {
            registry: Arc::new(registry),
            images: puller.images.clone(),
            settings: puller.settings.clone(),
            retainer: puller.retainer.clone(),
        };
        // Claimed until every image is recorded, so a sweep beside the import deletes none of it.
        // No grace: a failed import keeps nothing (a retry reads the local archive again).
        let claim = puller.retainer.claim(std::time::Duration::ZERO);
        let content = archive_puller
            .fetch(&image, None, &Progress::default(), &claim)
            .await
            .map_err(|source| ArchiveError::Pull {
                image: label,
                source: Box::new(source),
            })?;
        fetched.push((content, names));
        claims.push(claim);
    }
    let mut records = Vec::new();
    for (content, names) in fetched {
        let tags = names.iter().filter_map(|n| n.repo_tag()).collect();
        let digests = names
            .iter()
            .map(|n| n.repo_digest(&content.manifest))
            .collect();
        let record = content.record(tags, digests);
        records.push(puller.images.add(record).map_err(|e| ArchiveError::Pull {
            image: "record".into(),
            source: Box::new(e.into()),
        })?);
    }
    claims.into_iter().for_each(|c| c.succeeded());
    Ok(records)
}
