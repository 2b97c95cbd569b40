//! The read-only image RPCs: `ListImages`, `ImageStatus` and `ImageFsInfo`.

use std::collections::HashMap;
use std::path::Path;

use super::api;
use crate::image::service::{ImageError, ImageService};
use crate::image::store::ImageRecord;

pub fn list_images(
    images: &ImageService,
    req: api::ListImagesRequest,
) -> Result<api::ListImagesResponse, ImageError> {
    let filter = req.filter.and_then(|f| f.image).map(|i| i.image);
    let records = images.list(filter.as_deref().filter(|f| !f.is_empty()))?;
    Ok(api::ListImagesResponse {
        images: records.iter().map(to_cri).collect(),
    })
}

/// An unknown image is not an error: the response simply has no image.
pub fn image_status(
    images: &ImageService,
    req: api::ImageStatusRequest,
) -> Result<api::ImageStatusResponse, ImageError> {
    let spec = req.image.map(|i| i.image).unwrap_or_default();
    super::record("image", &spec);
    let Some(record) = images.status(&spec)? else {
        return Ok(api::ImageStatusResponse::default());
    };
    let mut info = HashMap::new();
    if req.verbose {
        info.insert("info".to_string(), verbose_info(images, &record));
    }
    Ok(api::ImageStatusResponse {
        image: Some(to_cri(&record)),
        info,
    })
}

pub fn image_fs_info(
    images: &ImageService,
    root_dir: &Path,
) -> Result<api::ImageFsInfoResponse, ImageError> {
    let (bytes, inodes) = images.usage()?;
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let usage = api::FilesystemUsage {
        timestamp,
        fs_id: Some(api::FilesystemIdentifier {
            mountpoint: root_dir.display().to_string(),
        }),
        used_bytes: Some(api::UInt64Value { value: bytes }),
        inodes_used: Some(api::UInt64Value { value: inodes }),
    };
    Ok(api::ImageFsInfoResponse {
        image_filesystems: vec![usage],
        container_filesystems: vec![],
    })
}

/// The CRI view of an image record. A numeric USER becomes `uid`, a name becomes `username`.
pub fn to_cri(record: &ImageRecord) -> api::Image {
    let user = record.user.split(':').next().unwrap_or_default();
    let (uid, username) = match user.parse::<i64>() {
        Ok(uid) => (Some(api::Int64Value { value: uid }), String::new()),
        Err(_) => (None, user.to_string()),
    };
    api::Image {
        id: record.id.to_string(),
        repo_tags: record.repo_tags.clone(),
        repo_digests: record.repo_digests.clone(),
        size: record.size,
        uid,
        username,
        spec: Some(api::ImageSpec {
            image: record.id.to_string(),
            ..Default::default()
        }),
        pinned: record.pinned,
    }
}

/// `crictl inspecti` detail: the image config (with history), manifest, chain ids and where each
/// layer is unpacked.
fn verbose_info(images: &ImageService, record: &ImageRecord) -> String {
    let store = images.store();
    let snapshot_dirs: Vec<String> = record
        .chain_ids
        .iter()
        .map(|c| match store.snapshots.get(c) {
            Ok(Some(s)) => store.snapshots.dir(&s).display().to_string(),
            _ => String::new(),
        })
        .collect();
    let config: serde_json::Value = store
        .content
        .read(&record.id)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "imageSpec": config,
        "manifestDigest": record.manifest,
        "indexDigest": record.index,
        "chainIDs": record.chain_ids,
        "layers": record.layers,
        "snapshotDirs": snapshot_dirs,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Digest;

    #[test]
    fn user_becomes_uid_or_username() {
        let mut r = ImageRecord {
            id: Digest::of(b"c"),
            repo_tags: vec![],
            repo_digests: vec![],
            manifest: Digest::of(b"m"),
            index: None,
            layers: vec![],
            chain_ids: vec![],
            size: 0,
            user: "1000:1000".into(),
            pinned: false,
        };
        let i = to_cri(&r);
        assert_eq!(i.uid.unwrap().value, 1000);
        assert_eq!(i.username, "");
        r.user = "app".into();
        let i = to_cri(&r);
        assert_eq!(i.uid, None);
        assert_eq!(i.username, "app");
        r.user = String::new();
        let i = to_cri(&r);
        assert_eq!((i.uid, i.username.as_str()), (None, ""));
    }
}
