//! Writing images as a tarball: an OCI image layout (`oci-layout`, `index.json`, `blobs/`),
//! plus, for the docker format, the `manifest.json` of `docker save`, whose
//! paths point into `blobs/` (the layout Docker itself writes since version 25).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use serde_json::json;

use super::blob_path;
use super::plan::{NAME_ANNOTATION, REF_NAME_ANNOTATION};
use crate::image::content::ContentStore;
use crate::image::digest::Digest;
use crate::image::reference::ImageRef;
use crate::image::registry::OCI_MANIFEST;
use crate::image::store::ImageRecord;

/// Which kind of tarball to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Oci,
    Docker,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "export {image}: blob {digest} is not stored (image.discard_compressed_layers was on \
         when it was pulled); remove the image and pull it again to export it"
    )]
    MissingBlob { image: String, digest: Digest },
    #[error("export: writing the archive: {0}")]
    Write(#[from] std::io::Error),
}

impl crate::error::Classify for ExportError {
    fn kind(&self) -> crate::error::Kind {
        match self {
            ExportError::MissingBlob { .. } => crate::error::Kind::FailedPrecondition,
            ExportError::Write(_) => crate::error::Kind::Unavailable,
        }
    }
}

/// Checks that every blob of `images` is stored, before a byte is written.
pub fn check(content: &ContentStore, images: &[ImageRecord]) -> Result<(), ExportError> {
    for image in images {
        for digest in blobs(image) {
            if !content.contains(digest) {
                return Err(ExportError::MissingBlob {
                    image: name_of(image),
                    digest: digest.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Writes `images` to `out` as one tarball.
pub fn write(
    content: &ContentStore,
    images: &[ImageRecord],
    format: Format,
    out: impl Write,
) -> Result<(), ExportError> {
    check(content, images)?;
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    add(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut written = HashSet::new();
    for image in images {
        for digest in blobs(image) {
            if written.insert(digest.clone()) {
                let path = content.path(digest);
                let mut file = std::fs::File::open(&path)?;
                tar.append_file(blob_path(digest), &mut file)?;
            }
        }
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": crate::image::registry::OCI_INDEX,
        "manifests": images.iter().flat_map(|i| index_entries(content, i)).collect::<Vec<_>>(),
    });
    add(
        &mut tar,
        "index.json",
        &serde_json::to_vec(&index).expect("JSON"),
    )?;
    if format == Format::Docker {
        let manifest: Vec<_> = images
            .iter()
            .map(|i| {
                json!({
                    "Config": blob_path(&i.id),
                    "RepoTags": i.repo_tags,
                    "Layers": i.layers.iter().map(blob_path).collect::<Vec<_>>(),
                })
            })
            .collect();
        add(
            &mut tar,
            "manifest.json",
            &serde_json::to_vec(&manifest).expect("JSON"),
        )?;
    }
    tar.into_inner()?.flush()?;
    Ok(())
}

/// The blobs an exported image needs: config, platform manifest, layers.
fn blobs(image: &ImageRecord) -> impl Iterator<Item = &Digest> {
    [&image.id, &image.manifest]
        .into_iter()
        .chain(&image.layers)
}

fn name_of(image: &ImageRecord) -> String {
    image
        .repo_tags
        .first()
        .cloned()
        .unwrap_or_else(|| image.id.to_string())
}

/// `index.json` entries for one image: one per tag (annotated with its name), or one unnamed.
fn index_entries(content: &ContentStore, image: &ImageRecord) -> Vec<serde_json::Value> {
    let size = content.size(&image.manifest).unwrap_or(0);
    let media_type = content
        .read(&image.manifest)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| OCI_MANIFEST.to_string());
    let entry = |annotations: Option<BTreeMap<&str, String>>| {
        let mut value = json!({
            "mediaType": media_type,
            "digest": image.manifest,
            "size": size,
        });
        if let Some(a) = annotations {
            value["annotations"] = json!(a);
        }
        value
    };
    if image.repo_tags.is_empty() {
        return vec![entry(None)];
    }
    image
        .repo_tags
        .iter()
        .map(|name| {
            let tag = name
                .parse::<ImageRef>()
                .ok()
                .and_then(|r| r.tag().map(str::to_string))
                .unwrap_or_default();
            entry(Some(BTreeMap::from([
                (NAME_ANNOTATION, name.clone()),
                (REF_NAME_ANNOTATION, tag),
            ])))
        })
        .collect()
}

fn add(tar: &mut tar::Builder<impl Write>, path: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, path, bytes)
}
