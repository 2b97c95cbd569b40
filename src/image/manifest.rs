//! Manifests, indexes and image configs: the JSON documents of the OCI image spec and their
//! Docker schema2 twins, and platform selection from an index.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// How a layer blob is compressed, from its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression of a layer media type; `None` for media types that are not layers.
    pub fn of_layer(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{what} {digest}: malformed JSON: {source}")]
    Json {
        what: &'static str,
        digest: Digest,
        source: serde_json::Error,
    },
    #[error("manifest {digest}: unsupported layer media type {media_type:?}")]
    LayerMediaType { digest: Digest, media_type: String },
    #[error("manifest {digest}: {layers} layers but the config lists {diff_ids} diff ids")]
    LayerCount {
        digest: Digest,
        layers: usize,
        diff_ids: usize,
    },
    #[error("index {digest}: no manifest for platform {platform}")]
    NoPlatform { digest: Digest, platform: Platform },
}

/// A content descriptor: what a manifest or index points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An image manifest (OCI or Docker schema2: same shape).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// An os/architecture/variant triple.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// This node's platform, as Go's GOOS/GOARCH name it.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]` (validated by the config loader).
    pub fn parse(text: &str) -> Option<Platform> {
        let mut parts = text.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?;
        let architecture = parts.next().filter(|s| !s.is_empty())?;
        let variant = parts.next().map(str::to_string);
        Some(Platform {
            os: os.into(),
            architecture: architecture.into(),
            variant,
        })
    }

    /// Whether an index entry for `candidate` can run here. A missing variant matches any; arm64
    /// treats "v8" and no variant alike.
    pub fn matches(&self, candidate: &Platform) -> bool {
        let norm = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            ("arm64", Some("v8")) => None,
            (_, v) => v.map(str::to_string),
        };
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && match (norm(self), norm(candidate)) {
                (Some(want), Some(have)) => want == have,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The parts of an image config berth uses; the raw JSON is kept beside it for inspection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
    #[serde(default)]
    pub history: Vec<History>,
}

/// The `config` object: how a container of this image runs by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub user: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub entrypoint: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub stop_signal: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub volumes: BTreeMap<String, serde_json::Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// Docker writes `null` for empty lists and maps.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn parse<T: for<'de> Deserialize<'de>>(
    what: &'static str,
    digest: &Digest,
    bytes: &[u8],
) -> Result<T, ManifestError> {
    serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
        what,
        digest: digest.clone(),
        source,
    })
}

impl Manifest {
    /// Parses a manifest and checks that every layer has a media type berth can unpack.
    pub fn parse(digest: &Digest, bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let manifest: Manifest = parse("manifest", digest, bytes)?;
        if let Some(bad) = manifest
            .layers
            .iter()
            .find(|l| Compression::of_layer(&l.media_type).is_none())
        {
            return Err(ManifestError::LayerMediaType {
                digest: digest.clone(),
                media_type: bad.media_type.clone(),
            });
        }
        Ok(manifest)
    }
}

impl Index {
    pub fn parse(digest: &Digest, bytes: &[u8]) -> Result<Index, ManifestError> {
        parse("index", digest, bytes)
    }

    /// The first image manifest whose platform matches `want`.
    pub fn select(&self, digest: &Digest, want: &Platform) -> Result<&Descriptor, ManifestError> {
        self.manifests
            .iter()
            .filter(|m| matches!(m.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST))
            .find(|m| m.platform.as_ref().is_some_and(|p| want.matches(p)))
            .ok_or_else(|| ManifestError::NoPlatform {
                digest: digest.clone(),
                platform: want.clone(),
            })
    }
}

impl ImageConfig {
    pub fn parse(digest: &Digest, bytes: &[u8]) -> Result<ImageConfig, ManifestError> {
        parse("config", digest, bytes)
    }

    /// Checks the config against its manifest: one diff id per layer.
    pub fn check_layers(&self, manifest: &Manifest, digest: &Digest) -> Result<(), ManifestError> {
        if self.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ManifestError::LayerCount {
                digest: digest.clone(),
                layers: manifest.layers.len(),
                diff_ids: self.rootfs.diff_ids.len(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn platform_matching() {
        assert!(p("linux/amd64").matches(&p("linux/amd64")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
        assert!(!p("linux/amd64").matches(&p("windows/amd64")));
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(p("linux/arm64/v8").matches(&p("linux/arm64")));
        assert!(!p("linux/arm/v7").matches(&p("linux/arm/v6")));
        assert!(p("linux/arm").matches(&p("linux/arm/v7")));
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_none());
    }

    #[test]
    fn index_selects_the_node_platform_and_skips_attestations() {
        let d = Digest::of(b"index");
        let m = |arch: &str, mt: &str, n: &str| {
            format!(
                r#"{{"mediaType":"{mt}","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"{arch}"}}}}"#,
                Digest::of(n.as_bytes())
            )
        };
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[{},{},{}]}}"#,
            m("amd64", "application/vnd.in-toto+json", "att"),
            m("arm64", OCI_MANIFEST, "arm"),
            m("amd64", OCI_MANIFEST, "amd"),
        );
        let index = Index::parse(&d, json.as_bytes()).unwrap();
        assert_eq!(
            index.select(&d, &p("linux/amd64")).unwrap().digest,
            Digest::of(b"amd")
        );
        let err = index.select(&d, &p("linux/s390x")).unwrap_err().to_string();
        assert!(err.contains("linux/s390x"), "{err}");
    }

    #[test]
    fn docker_config_with_nulls_parses() {
        let d = Digest::of(b"c");
        let json = br#"{"architecture":"amd64","os":"linux","config":{"User":"app","Env":null,"Cmd":["sh"],"Entrypoint":null,"Labels":null},
            "rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},
            "history":[{"created_by":"ADD rootfs"},{"created_by":"ENV X=1","empty_layer":true}]}"#;
        let c = ImageConfig::parse(&d, json).unwrap();
        assert_eq!(c.config.user, "app");
        assert_eq!(c.config.cmd, ["sh"]);
        assert!(c.config.env.is_empty() && c.config.entrypoint.is_empty());
        assert_eq!(c.history.len(), 2);
        assert!(c.history[1].empty_layer);
    }

    #[test]
    fn unknown_layer_media_type_is_rejected() {
        let d = Digest::of(b"m");
        let json = format!(
            r#"{{"config":{{"mediaType":"x","digest":"{0}","size":1}},"layers":[{{"mediaType":"application/vnd.example.weird","digest":"{0}","size":1}}]}}"#,
            Digest::of(b"x")
        );
        let err = Manifest::parse(&d, json.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("application/vnd.example.weird"), "{err}");
    }
}
