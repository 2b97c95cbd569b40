//! Where requests for one registry go: its mirrors in order, then the registry itself, each with
//! a scheme, an HTTP client carrying that host's TLS settings, and that host's configured
//! credentials.
//!
//! Schemes: `https` unless the host's entry says `insecure: true` (then `http`, and any
//! certificate is accepted should a redirect lead to https). A loopback host (`localhost`,
//! `127.0.0.0/8`, `[::1]`) with no `insecure` setting is tried over https first and, when the
//! server answers the TLS handshake with something that is not TLS or does not complete the
//! connection within the connect timeout (a plain-http server waiting for a request line never
//! answers a ClientHello), over plain http — the rule containerd applies to local registries. A
//! certificate error is an error, not a reason to drop TLS. Once http worked, that endpoint stays
//! on http.
//!
//! Every new connection (name lookup, TCP connect, TLS handshake) is bounded by
//! `image.connect_timeout`, and by [`LOOPBACK_CONNECT_TIMEOUT`] at most for a loopback host.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::{ImageConfig, RegistryConfig};

use super::Credentials;
use super::error::RegistryError;

/// Docker Hub's name in references and config, and the host its API is served from.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// The connect bound for loopback hosts: no name lookup, no network, so a connection that is
/// not up by then never will be; it keeps the https probe of a plain-http local registry short.
pub(super) const LOOPBACK_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One host requests can be sent to.
#[derive(Debug)]
pub(super) struct Endpoint {
    /// `host[:port]`, as written in URLs.
    pub host: String,
    pub client: reqwest::Client,
    /// A mirror gets only its own configured credentials, never the caller's.
    pub mirror: bool,
    /// The username/password from this host's `registries` entry.
    pub configured: Option<Credentials>,
    /// The bound on a new connection `client` applies (shown when it is exceeded).
    pub connect_timeout: Duration,
    secure: bool,
    http_fallback: bool,
    fell_back: AtomicBool,
}

impl Endpoint {
    /// `scheme://host/v2/<path>`.
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.is_https() { "https" } else { "http" };
        format!("{scheme}://{}/v2/{path}", self.host)
    }

    /// Whether requests to this endpoint go over TLS (https, and no fallback to http happened).
    pub fn is_https(&self) -> bool {
        self.secure && !self.fell_back.load(Ordering::Relaxed)
    }

    /// After an https connection failure (not TLS, or no connection in time): switches a loopback
    /// endpoint to http and says whether it did (false when there is nothing to fall back to).
    pub fn fall_back_to_http(&self) -> bool {
        self.http_fallback && !self.fell_back.swap(true, Ordering::Relaxed)
    }

    /// The credentials to present: a mirror's own, or the caller's before the configured ones.
    pub fn credentials<'a>(&'a self, caller: Option<&'a Credentials>) -> Option<&'a Credentials> {
        if self.mirror {
            self.configured.as_ref()
        } else {
            caller.or(self.configured.as_ref())
        }
    }
}

/// The mirrors of one registry, in order, then the registry itself.
#[derive(Debug)]
pub(super) struct Endpoints {
    pub mirrors: Vec<Arc<Endpoint>>,
    pub upstream: Arc<Endpoint>,
}

/// The HTTP clients for every configured host, made once; unconfigured hosts share one (one
/// for loopback hosts, with their shorter connect bound).
pub(super) struct Clients {
    configs: BTreeMap<String, RegistryConfig>,
    dedicated: BTreeMap<String, reqwest::Client>,
    shared: reqwest::Client,
    shared_loopback: reqwest::Client,
    connect_timeout: Duration,
}

impl Clients {
    /// Builds the clients and checks every mirror entry and CA file now, so bad config fails at
    /// startup with the key named.
    pub fn new(
        registries: &BTreeMap<String, RegistryConfig>,
        image: &ImageConfig,
    ) -> Result<Clients, RegistryError> {
        // reqwest is built without a crypto provider and panics without one; ring is berth's.
        // Another part of the process may have installed it already, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut dedicated = BTreeMap::new();
        for (host, config) in registries {
            for mirror in &config.mirrors {
                parse_mirror(mirror).map_err(|reason| RegistryError::Config {
                    key: format!("{host}.mirrors"),
                    reason,
                })?;
            }
            if config.insecure || config.ca_file.is_some() {
                let timeout = connect_timeout(host, image.connect_timeout);
                dedicated.insert(host.clone(), build_client(host, Some(config), timeout)?);
            }
        }
        Ok(Clients {
            configs: registries.clone(),
            dedicated,
            shared: build_client("(default)", None, image.connect_timeout)?,
            shared_loopback: build_client(
                "(default, loopback)",
                None,
                connect_timeout("localhost", image.connect_timeout),
            )?,
            connect_timeout: image.connect_timeout,
        })
    }

    /// The endpoints serving `registry` (a reference's registry name, `docker.io` for the Hub).
    pub fn endpoints(&self, registry: &str) -> Endpoints {
        let mirrors = self
            .configs
            .get(registry)
            .map(|c| c.mirrors.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|m| parse_mirror(m).ok())
            .map(|(scheme, host)| Arc::new(self.endpoint(host, host, scheme, true)))
            .collect();
        // Docker Hub's settings live under `docker.io`, not under its API host.
        let host = if registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            registry
        };
        Endpoints {
            mirrors,
            upstream: Arc::new(self.endpoint(registry, host, None, false)),
        }
    }

    /// An endpoint for `host`, configured by the `registries` entry `key`.
    fn endpoint(&self, key: &str, host: &str, scheme: Option<Scheme>, mirror: bool) -> Endpoint {
        let config = self.configs.get(key);
        let insecure = config.is_some_and(|c| c.insecure);
        let (secure, http_fallback) = match scheme {
            Some(Scheme::Https) => (true, false),
            Some(Scheme::Http) => (false, false),
            None if insecure => (false, false),
            None => (true, is_loopback(host)),
        };
        let shared = if is_loopback(key) {
            &self.shared_loopback
        } else {
            &self.shared
        };
        Endpoint {
            host: host.to_string(),
            client: self.dedicated.get(key).unwrap_or(shared).clone(),
            mirror,
            configured: config.and_then(configured_credentials),
            connect_timeout: connect_timeout(key, self.connect_timeout),
            secure,
            http_fallback,
            fell_back: AtomicBool::new(false),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

/// `host[:port]`, optionally prefixed with `http://` or `https://`, and nothing else.
fn parse_mirror(entry: &str) -> Result<(Option<Scheme>, &str), String> {
    let (scheme, host) = if let Some(rest) = entry.strip_prefix("https://") {
        (Some(Scheme::Https), rest)
    } else if let Some(rest) = entry.strip_prefix("http://") {
        (Some(Scheme::Http), rest)
    } else {
        (None, entry)
    };
    let host = host.strip_suffix('/').unwrap_or(host);
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if valid {
        Ok((scheme, host))
    } else {
        Err(format!(
            "mirror {entry:?} must be host[:port], optionally prefixed with http:// or https://"
        ))
    }
}

fn configured_credentials(config: &RegistryConfig) -> Option<Credentials> {
    config.username.as_ref().map(|username| Credentials::Basic {
        username: username.clone(),
        password: config.password.clone().unwrap_or_default(),
    })
}

/// The connect bound for `host`'s client: `configured`, at most [`LOOPBACK_CONNECT_TIMEOUT`] on
/// loopback.
fn connect_timeout(host: &str, configured: Duration) -> Duration {
    if is_loopback(host) {
        configured.min(LOOPBACK_CONNECT_TIMEOUT)
    } else {
        configured
    }
}

/// `localhost`, `127.0.0.0/8` or `[::1]`, with or without a port.
fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(inside, _)| inside)
    } else {
        host.split_once(':').map_or(host, |(name, _)| name)
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn build_client(
    host: &str,
    config: Option<&RegistryConfig>,
    connect_timeout: Duration,
) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::limited(10));
    if let Some(config) = config {
        if let Some(path) = &config.ca_file {
            let config_error = |reason: String| RegistryError::Config {
                key: format!("{host}.ca_file"),
                reason: format!("{}: {reason}", path.display()),
            };
            let pem = std::fs::read(path).map_err(|e| config_error(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| config_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(config_error("no PEM certificate in the file".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder = builder.danger_accept_invalid_certs(config.insecure);
    }
    builder.build().map_err(|source| RegistryError::Client {
        host: host.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "registry.local:5000",
            "10.0.0.1:5000",
            "[::2]:5000",
            "localhost.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn loopback_hosts_get_a_short_connect_bound() {
        let ten = Duration::from_secs(10);
        assert_eq!(connect_timeout("registry.local:5000", ten), ten);
        assert_eq!(
            connect_timeout("127.0.0.1:5000", ten),
            LOOPBACK_CONNECT_TIMEOUT
        );
        let one = Duration::from_secs(1);
        assert_eq!(
            connect_timeout("localhost", one),
            one,
            "a lower setting wins"
        );

        let image = ImageConfig {
            connect_timeout: ten,
            ..ImageConfig::default()
        };
        let clients = Clients::new(&BTreeMap::new(), &image).unwrap();
        assert_eq!(clients.endpoints("r.example").upstream.connect_timeout, ten);
        let local = clients.endpoints("127.0.0.1:5000").upstream;
        assert_eq!(local.connect_timeout, LOOPBACK_CONNECT_TIMEOUT);
        assert!(local.fall_back_to_http());
    }

    #[test]
    fn docker_hub_mirrors_and_credentials() {
        let hub = RegistryConfig {
            mirrors: vec!["mirror.example".into(), "http://10.0.0.5:5000".into()],
            username: Some("hub-user".into()),
            ..RegistryConfig::default()
        };
        let mirror = RegistryConfig {
            username: Some("mirror-user".into()),
            ..RegistryConfig::default()
        };
        let registries = BTreeMap::from([
            ("docker.io".to_string(), hub),
            ("mirror.example".to_string(), mirror),
        ]);
        let clients = Clients::new(&registries, &ImageConfig::default()).unwrap();
        let Endpoints { mirrors, upstream } = clients.endpoints("docker.io");
        assert_eq!(
            upstream.url("library/x/manifests/1"),
            "https://registry-1.docker.io/v2/library/x/manifests/1"
        );
        assert_eq!(mirrors[0].url("p"), "https://mirror.example/v2/p");
        assert_eq!(mirrors[1].url("p"), "http://10.0.0.5:5000/v2/p");

        let caller = Credentials::RegistryToken("t".into());
        let user = |c: Option<&Credentials>| match c {
            Some(Credentials::Basic { username, .. }) => Some(username.clone()),
            _ => None,
        };
        assert_eq!(upstream.credentials(Some(&caller)), Some(&caller));
        assert_eq!(
            user(upstream.credentials(None)).as_deref(),
            Some("hub-user")
        );
        assert_eq!(
            user(mirrors[0].credentials(Some(&caller))).as_deref(),
            Some("mirror-user")
        );
        assert_eq!(mirrors[1].credentials(Some(&caller)), None);
        assert!(
            !upstream.fall_back_to_http(),
            "only loopback hosts fall back"
        );
    }

    #[test]
    fn mirror_entries() {
        assert_eq!(parse_mirror("m.io"), Ok((None, "m.io")));
        assert_eq!(
            parse_mirror("http://127.0.0.1:5000/"),
            Ok((Some(Scheme::Http), "127.0.0.1:5000"))
        );
        assert_eq!(
            parse_mirror("https://[::1]:443"),
            Ok((Some(Scheme::Https), "[::1]:443"))
        );
        for bad in ["", "https://", "m.io/v2/hub", "ftp://m.io", "user@m.io"] {
            assert!(parse_mirror(bad).is_err(), "{bad}");
        }
    }
}
