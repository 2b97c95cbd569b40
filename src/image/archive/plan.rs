//! Reading an archive's table of contents: which images it holds, under which names, and where
//! their blobs are. OCI layouts list manifests in `index.json`; docker archives list configs and
//! layer tarballs in `manifest.json` and have no manifest, so one is made up here.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::Arc;

use serde::Deserialize;

use super::registry::ArchiveRegistry;
use super::{ArchiveError, Entries, Entry, MAX_JSON_BYTES};
use crate::image::digest::{Digest, Hasher};
use crate::image::manifest::{ImageConfig, Platform};
use crate::image::reference::ImageRef;
use crate::image::registry::{FetchedManifest, OCI_MANIFEST};

/// containerd's (and Docker's) annotation for an image's full name in an OCI layout.
pub const NAME_ANNOTATION: &str = "io.containerd.image.name";
/// The OCI annotation for an image's reference name (often only a tag).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// One image to import: a registry over the archive that serves it, and its names.
pub struct ImagePlan {
    pub registry: ArchiveRegistry,
    pub names: Vec<ImageRef>,
}

/// The images in the archive indexed as `entries` that run on `platform`.
pub fn plan(entries: Entries, platform: &Platform) -> Result<Vec<ImagePlan>, ArchiveError> {
    let entries = Arc::new(entries);
    let plans = if entries.contains("index.json") {
        oci(&entries, platform)?
    } else if entries.contains("manifest.json") {
        docker(&entries)?
    } else {
        return Err(ArchiveError::UnknownFormat);
    };
    if plans.is_empty() {
        return Err(ArchiveError::Invalid(format!(
            "no image for platform {platform}"
        )));
    }
    Ok(plans)
}

#[derive(Deserialize)]
struct LayoutIndex {
    #[serde(default)]
    manifests: Vec<LayoutDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutDescriptor {
    digest: Digest,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

fn oci(entries: &Arc<Entries>, platform: &Platform) -> Result<Vec<ImagePlan>, ArchiveError> {
    let index: LayoutIndex = entries.json("index.json")?;
    let mut plans: Vec<ImagePlan> = Vec::new();
    for desc in index.manifests {
        if desc.platform.as_ref().is_some_and(|p| !platform.matches(p)) {
            continue;
        }
        let names = oci_names(&desc.annotations)?;
        if let Some(plan) = plans.iter_mut().find(|p| p.registry.top == desc.digest) {
            for name in names {
                if !plan.names.contains(&name) {
                    plan.names.push(name);
                }
            }
            continue;
        }
        entries.blob(&desc.digest)?;
        plans.push(ImagePlan {
            registry: ArchiveRegistry {
                entries: entries.clone(),
                top: desc.digest,
                documents: HashMap::new(),
                aliases: HashMap::new(),
            },
            names,
        });
    }
    Ok(plans)
}

/// The full name of an index entry: containerd's annotation, or the OCI one when it holds more
/// than a bare tag.
fn oci_names(annotations: &BTreeMap<String, String>) -> Result<Vec<ImageRef>, ArchiveError> {
    let name = annotations.get(NAME_ANNOTATION).or_else(|| {
        annotations
            .get(REF_NAME_ANNOTATION)
            .filter(|n| n.contains('/') || n.contains(':'))
    });
    name.map(|n| parse_name(n)).into_iter().collect()
}

fn parse_name(name: &str) -> Result<ImageRef, ArchiveError> {
    name.parse().map_err(|source| ArchiveError::Name {
        name: name.to_string(),
        source,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

fn docker(entries: &Arc<Entries>) -> Result<Vec<ImagePlan>, ArchiveError> {
    let images: Vec<DockerEntry> = entries.json("manifest.json")?;
    let mut hashed = HashMap::new();
    images
        .into_iter()
        .map(|image| docker_image(entries, image, &mut hashed))
        .collect()
}

/// Each layer tarball's digest and media type, by where it is: a tarball listed many times
/// (by one image or several) is hashed once.
type Hashed = HashMap<Entry, (Digest, &'static str)>;

/// Makes up the OCI manifest a docker archive's image would have had: the config as is, each
/// layer tarball by the digest of its bytes and a media type from its magic number.
fn docker_image(
    entries: &Arc<Entries>,
    image: DockerEntry,
    hashed: &mut Hashed,
) -> Result<ImagePlan, ArchiveError> {
    let config_bytes = entries.read(&image.config, MAX_JSON_BYTES)?;
    let config_digest = Digest::of(&config_bytes);
    // docker save names the config by its digest: a name that says otherwise is a lie.
    let stem = image.config.rsplit('/').next().unwrap_or("");
    let stem = stem.strip_suffix(".json").unwrap_or(stem);
    if stem.len() == 64
        && stem.bytes().all(|b| b.is_ascii_hexdigit())
        && stem != config_digest.hex()
    {
        return Err(ArchiveError::Invalid(format!(
            "manifest.json: config {:?}: digest mismatch, got {config_digest}",
            image.config
        )));
    }
    let config = ImageConfig::parse(&config_digest, &config_bytes)?;
    if config.rootfs.diff_ids.len() != image.layers.len() {
        return Err(ArchiveError::Invalid(format!(
            "manifest.json: {} lists {} layers but its config has {} diff ids",
            image.config,
            image.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let mut aliases = HashMap::from([(config_digest.clone(), entries.get(&image.config)?)]);
    let mut layers = Vec::new();
    for path in &image.layers {
        let entry = entries.get(path)?;
        let (digest, media_type) = match hashed.get(&entry) {
            Some(known) => known.clone(),
            None => {
                let found = hash_layer(entries, entry)?;
                hashed.insert(entry, found.clone());
                found
            }
        };
        aliases.insert(digest.clone(), entry);
        layers.push(serde_json::json!({
            "mediaType": media_type,
            "digest": digest,
            "size": entry.size,
        }));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_bytes.len(),
        },
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).expect("a JSON value serialises");
    let digest = Digest::of(&bytes);
    let document = FetchedManifest {
        media_type: OCI_MANIFEST.to_string(),
        digest: digest.clone(),
        bytes: bytes.into(),
    };
    let names = image
        .repo_tags
        .unwrap_or_default()
        .iter()
        .map(|n| parse_name(n))
        .collect::<Result<_, _>>()?;
    Ok(ImagePlan {
        registry: ArchiveRegistry {
            entries: entries.clone(),
            top: digest.clone(),
            documents: HashMap::from([(digest, document)]),
            aliases,
        },
        names,
    })
}

/// A layer tarball's digest, and its OCI media type from its first bytes.
fn hash_layer(entries: &Entries, entry: Entry) -> Result<(Digest, &'static str), ArchiveError> {
    let mut reader = entries.open(entry)?;
    let mut hasher = Hasher::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut magic = Vec::new();
    loop {
        let n = reader.read(&mut buf).map_err(|source| ArchiveError::Io {
            path: entries.path.clone(),
            source,
        })?;
        if n == 0 {
            break;
        }
        if magic.len() < 4 {
            magic.extend_from_slice(&buf[..n.min(4 - magic.len())]);
        }
        hasher.update(&buf[..n]);
    }
    let media_type = match magic.as_slice() {
        [0x1f, 0x8b, ..] => "application/vnd.oci.image.layer.v1.tar+gzip",
        [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd",
        _ => "application/vnd.oci.image.layer.v1.tar",
    };
    Ok((hasher.finish(), media_type))
}
