//! Image references, parsed and normalised the way Docker and containerd do:
//! `busybox` is `docker.io/library/busybox:latest`, `host:port/repo:tag`, `repo@sha256:...` and
//! `repo:tag@sha256:...` all parse; anything else is rejected with the reason.

use std::fmt;
use std::str::FromStr;

use super::digest::{Digest, DigestError};

/// Docker Hub's canonical registry name.
pub const DOCKER_HUB: &str = "docker.io";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A normalised image reference: always a registry and a repository path, and a tag, a digest or
/// both (a reference with neither gets `latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("image reference is empty")]
    Empty,
    #[error("image reference {0:?}: repository name must be lowercase")]
    Uppercase(String),
    #[error("image reference {reference:?}: invalid repository path component {component:?}")]
    Component {
        reference: String,
        component: String,
    },
    #[error("image reference {reference:?}: invalid registry host {host:?}")]
    Host { reference: String, host: String },
    #[error("image reference {reference:?}: invalid tag {tag:?}")]
    Tag { reference: String, tag: String },
    #[error("image reference {reference:?}: {source}")]
    Digest {
        reference: String,
        source: DigestError,
    },
    #[error(
        "image reference {0:?}: normalised name (registry/repository) longer than 255 characters"
    )]
    TooLong(String),
}

impl ImageRef {
    /// The registry host, `docker.io` for Docker Hub.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest when pinned, the tag otherwise.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// `registry/repository:tag`, when the reference has a tag.
    pub fn repo_tag(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{t}", self.name()))
    }

    /// `registry/repository@digest` for a given manifest digest.
    pub fn repo_digest(&self, digest: &Digest) -> String {
        format!("{}@{digest}", self.name())
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<ImageRef, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let reference = || input.to_string();
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                let digest = digest.parse().map_err(|source| ReferenceError::Digest {
                    reference: reference(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a ':' before it is a port).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::Tag {
                reference: reference(),
                tag: tag.to_string(),
            });
        }
        let (registry, repository) = split_registry(name);
        if !valid_host(registry) {
            return Err(ReferenceError::Host {
                reference: reference(),
                host: registry.to_string(),
            });
        }
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(reference()));
        }
        if let Some(bad) = repository.split('/').find(|c| !valid_component(c)) {
            return Err(ReferenceError::Component {
                reference: reference(),
                component: bad.to_string(),
            });
        }
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        // Like Docker, the limit is on the normalised name: the one berth prints and parses back.
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong(reference()));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(ImageRef {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }
}

/// Splits `name` into (registry, repository): the first component is a registry host when it
/// has a '.' or a ':' or is `localhost`; otherwise the registry is Docker Hub.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    first_ok
        && tag.len() <= MAX_TAG_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A path component: lowercase alphanumerics separated by one '.', one or two '_', or any
/// number of '-'.
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A registry host: DNS labels or an IPv4 address, or a bracketed IPv6 address, with an optional
/// port.
fn valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, tail)) => {
                if v6.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, tail.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok());
    let name_ok = name.is_none_or(|n| {
        !n.is_empty()
            && n.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    });
    port_ok && name_ok
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn norm(s: &str) -> String {
        s.parse::<ImageRef>().unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("user/app:v1", "docker.io/user/app:v1"),
            (
                "index.docker.io/library/nginx",
                "docker.io/library/nginx:latest",
            ),
            ("docker.io/nginx", "docker.io/library/nginx:latest"),
            ("localhost/app", "localhost/app:latest"),
            (
                "127.0.0.1:5000/library/debian:bookworm",
                "127.0.0.1:5000/library/debian:bookworm",
            ),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
            ("quay.io/a/b/c:1.0-rc_1", "quay.io/a/b/c:1.0-rc_1"),
            ("[::1]:5000/x", "[::1]:5000/x:latest"),
            ("a__b/c-----d.e", "docker.io/a__b/c-----d.e:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), want, "{input}");
        }
    }

    #[test]
    fn digests_and_tags_together() {
        let r: ImageRef = format!("busybox@{D}").parse().unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.tag(), None);
        assert_eq!(r.manifest_reference(), D);
        let r: ImageRef = format!("host:5000/app:v2@{D}").parse().unwrap();
        assert_eq!(r.registry(), "host:5000");
        assert_eq!(r.repository(), "app");
        assert_eq!(r.tag(), Some("v2"));
        assert_eq!(r.manifest_reference(), D, "the digest wins over the tag");
        assert_eq!(r.repo_tag().unwrap(), "host:5000/app:v2");
        assert_eq!(
            r.repo_digest(r.digest().unwrap()),
            format!("host:5000/app@{D}")
        );
    }

    #[test]
    fn rejects_malformed_references_with_a_reason() {
        type Check = fn(&ReferenceError) -> bool;
        let cases: [(&str, Check); 10] = [
            ("", |e| matches!(e, ReferenceError::Empty)),
            ("Busybox", |e| matches!(e, ReferenceError::Uppercase(_))),
            ("busybox:", |e| matches!(e, ReferenceError::Tag { .. })),
            ("busybox:-x", |e| matches!(e, ReferenceError::Tag { .. })),
            ("busybox@sha256:abc", |e| {
                matches!(e, ReferenceError::Digest { .. })
            }),
            ("a//b", |e| matches!(e, ReferenceError::Component { .. })),
            ("a/b_/c", |e| matches!(e, ReferenceError::Component { .. })),
            ("host:port/x", |e| matches!(e, ReferenceError::Host { .. })),
            ("-a.io/x", |e| matches!(e, ReferenceError::Host { .. })),
            ("a b", |e| matches!(e, ReferenceError::Component { .. })),
        ];
        for (input, check) in cases {
            let err = input.parse::<ImageRef>().unwrap_err();
            assert!(check(&err), "{input:?} gave {err:?}");
            if !input.is_empty() {
                assert!(err.to_string().contains(input), "{err} names the reference");
            }
        }
        let long = format!("x/{}", "a".repeat(300));
        assert!(matches!(
            long.parse::<ImageRef>(),
            Err(ReferenceError::TooLong(_))
        ));
    }

    /// Found by the `image_reference` fuzz target: a name within the limit as written, but not
    /// once normalised, parsed, and its printed form (what ListImages reports and kubelet hands
    /// back to RemoveImage) did not.
    #[test]
    fn the_length_limit_applies_to_the_normalised_name() {
        let found = concat!(
            "bo-o-b_m999999999999999999999999999999999999999999999999999999999999999999999999",
            "99999999999999999999999go-b_o-obo-o-b_mgo-b_o-o-y.i-b_mgo-b_bo-ib_mgo-b_bo-b_mog",
            "-o-y.i-b_mgo-b_bo-igo-y.i-b_mgo-b_bo-ib_mgo-b_bo-b_mog-o-y.i-b_mgo-b_bo-igogo-b",
        );
        assert_eq!(found.len(), 239);
        assert!(matches!(
            found.parse::<ImageRef>(),
            Err(ReferenceError::TooLong(_))
        ));
        let too_long = "a".repeat(256 - "docker.io/library/".len());
        assert!(matches!(
            too_long.parse::<ImageRef>(),
            Err(ReferenceError::TooLong(_))
        ));
        let longest = "a".repeat(255 - "docker.io/library/".len());
        let reference: ImageRef = longest.parse().unwrap();
        assert_eq!(reference.name().len(), 255);
        assert_eq!(reference.to_string().parse::<ImageRef>(), Ok(reference));
    }
}
