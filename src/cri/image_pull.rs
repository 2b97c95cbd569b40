//! `PullImage`: parse the reference and credentials, honour the caller's deadline, pull.

use std::time::Duration;

use base64::Engine as _;
use tonic::metadata::MetadataMap;

use super::api;
use crate::error::{Classify, Kind};
use crate::image::registry::Credentials;
use crate::image::service::{ImageError, ImageService};
use crate::image::{ImageRef, reference::ReferenceError};

#[derive(Debug, thiserror::Error)]
pub enum PullImageError {
    #[error("pull: no image given")]
    NoImage,
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("pull {0}: auth: the base64 `auth` field is not user:password")]
    Auth(String),
    #[error("pull {image}: deadline of {deadline:?} exceeded")]
    Deadline { image: String, deadline: Duration },
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl Classify for PullImageError {
    fn kind(&self) -> Kind {
        match self {
            PullImageError::NoImage | PullImageError::Reference(_) | PullImageError::Auth(_) => {
                Kind::InvalidArgument
            }
            PullImageError::Deadline { .. } => Kind::DeadlineExceeded,
            PullImageError::Image(e) => e.kind(),
        }
    }
}

pub async fn pull_image(
    images: &ImageService,
    metadata: &MetadataMap,
    req: api::PullImageRequest,
) -> Result<api::PullImageResponse, PullImageError> {
    let spec = req.image.map(|i| i.image).unwrap_or_default();
    if spec.is_empty() {
        return Err(PullImageError::NoImage);
    }
    super::record("image", &spec);
    let image: ImageRef = spec.parse()?;
    let creds = req
        .auth
        .map(|auth| credentials(&image, auth))
        .transpose()?
        .flatten();
    let pull = images.pull(&image, creds);
    let record =
        match grpc_timeout(metadata) {
            Some(deadline) => tokio::time::timeout(deadline, pull).await.map_err(|_| {
                PullImageError::Deadline {
                    image: image.to_string(),
                    deadline,
                }
            })??,
            None => pull.await?,
        };
    Ok(api::PullImageResponse {
        image_ref: record.id.to_string(),
    })
}

/// CRI AuthConfig to registry credentials: username/password, else the base64 `auth` pair,
/// else an identity (refresh) token, else a registry (bearer) token. Credentials whose
/// `server_address` names another registry are not used at all (as containerd does): the pull
/// goes on anonymously.
fn credentials(
    image: &ImageRef,
    auth: api::AuthConfig,
) -> Result<Option<Credentials>, PullImageError> {
    if !auth.server_address.is_empty() && !same_registry(&auth.server_address, image.registry()) {
        tracing::debug!(
            image = %image,
            server_address = %auth.server_address,
            "pull credentials are for another registry; not used"
        );
        return Ok(None);
    }
    if !auth.username.is_empty() {
        return Ok(Some(Credentials::Basic {
            username: auth.username,
            password: auth.password,
        }));
    }
    if !auth.auth.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| PullImageError::Auth(image.to_string()))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| PullImageError::Auth(image.to_string()))?;
        return Ok(Some(Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    if !auth.identity_token.is_empty() {
        return Ok(Some(Credentials::IdentityToken(auth.identity_token)));
    }
    if !auth.registry_token.is_empty() {
        return Ok(Some(Credentials::RegistryToken(auth.registry_token)));
    }
    Ok(None)
}

/// Whether `server_address` (`host[:port]`, optionally with a scheme and a path, as kubelet
/// passes it) names `registry`. Docker Hub answers to its several names.
fn same_registry(server_address: &str, registry: &str) -> bool {
    let rest = server_address
        .split_once("://")
        .map_or(server_address, |(_, rest)| rest);
    let host = rest.split('/').next().unwrap_or_default();
    let canonical = |h: &str| {
        let h = h.to_ascii_lowercase();
        match h.as_str() {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
                "docker.io".to_string()
            }
            _ => h,
        }
    };
    !host.is_empty() && canonical(host) == canonical(registry)
}

/// The caller's deadline from the `grpc-timeout` header (`<digits><H|M|S|m|u|n>`).
pub fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        let mut m = MetadataMap::new();
        assert_eq!(grpc_timeout(&m), None);
        for (v, d) in [
            ("5S", Duration::from_secs(5)),
            ("250m", Duration::from_millis(250)),
            ("2M", Duration::from_secs(120)),
        ] {
            m.insert("grpc-timeout", v.parse().unwrap());
            assert_eq!(grpc_timeout(&m), Some(d), "{v}");
        }
        m.insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(grpc_timeout(&m), None);
    }

    #[test]
    fn server_address_must_name_the_registry() {
        for (address, registry, same) in [
            ("r.io", "r.io", true),
            ("https://r.io", "r.io", true),
            ("https://R.io/v1/", "r.io", true),
            ("127.0.0.1:5000", "127.0.0.1:5000", true),
            ("127.0.0.1:5001", "127.0.0.1:5000", false),
            ("https://index.docker.io/v1/", "docker.io", true),
            ("registry-1.docker.io", "docker.io", true),
            ("other.io", "r.io", false),
            ("https://", "r.io", false),
        ] {
            assert_eq!(
                same_registry(address, registry),
                same,
                "{address} vs {registry}"
            );
        }
        let image: ImageRef = "r.io/a".parse().unwrap();
        let auth = |address: &str| api::AuthConfig {
            username: "u".into(),
            password: "p".into(),
            server_address: address.into(),
            ..Default::default()
        };
        assert_eq!(credentials(&image, auth("other.io")).unwrap(), None);
        assert!(credentials(&image, auth("https://r.io")).unwrap().is_some());
    }

    #[test]
    fn auth_config_forms() {
        let image: ImageRef = "r.io/a".parse().unwrap();
        let basic = |u: &str, p: &str| {
            Some(Credentials::Basic {
                username: u.into(),
                password: p.into(),
            })
        };
        let c = credentials(
            &image,
            api::AuthConfig {
                username: "u".into(),
                password: "p".into(),
                ..Default::default()
            },
        );
        assert_eq!(c.unwrap(), basic("u", "p"));
        let c = credentials(
            &image,
            api::AuthConfig {
                auth: "dTpwOng=".into(),
                ..Default::default()
            },
        );
        assert_eq!(c.unwrap(), basic("u", "p:x"), "password may contain ':'");
        let c = credentials(
            &image,
            api::AuthConfig {
                auth: "!!".into(),
                ..Default::default()
            },
        );
        assert!(matches!(c, Err(PullImageError::Auth(_))));
        let c = credentials(
            &image,
            api::AuthConfig {
                identity_token: "t".into(),
                ..Default::default()
            },
        );
        assert_eq!(c.unwrap(), Some(Credentials::IdentityToken("t".into())));
        let c = credentials(&image, api::AuthConfig::default());
        assert_eq!(c.unwrap(), None);
    }
}
