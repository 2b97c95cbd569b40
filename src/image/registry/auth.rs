//! Registry authentication pieces: `WWW-Authenticate` challenges, `Authorization` header values,
//! token endpoint answers, and the cache of headers per (host, repository, credentials).
//!
//! Header values built here are marked sensitive so they never show in `Debug` output or logs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::HeaderValue;

use super::Credentials;
use crate::image::digest::Hasher;

/// How long a token is used when the token endpoint does not say (`expires_in`), per the
/// distribution token spec.
pub(super) const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60);
/// A token is dropped this long before it expires, so it is not refused in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// What a 401 answer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// The first usable challenge of the `WWW-Authenticate` headers; Bearer wins over Basic.
pub(super) fn challenge(headers: &http::HeaderMap) -> Option<Challenge> {
    let mut found = None;
    for value in headers.get_all(http::header::WWW_AUTHENTICATE) {
        let Ok(text) = value.to_str() else { continue };
        match parse_challenge(text) {
            Some(bearer @ Challenge::Bearer { .. }) => return Some(bearer),
            Some(Challenge::Basic) => found = Some(Challenge::Basic),
            None => {}
        }
    }
    found
}

/// `Scheme key="value", key=token, ...`; unknown schemes and a Bearer without realm are None.
fn parse_challenge(text: &str) -> Option<Challenge> {
    let text = text.trim();
    let (scheme, params) = text.split_once(' ').unwrap_or((text, ""));
    let params = parse_params(params);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm").filter(|r| !r.is_empty())?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

/// Comma-separated `key=value` pairs; values may be quoted strings with `\` escapes.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ',' || c.is_whitespace()).is_some() {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ','))
            .collect::<String>()
            .trim()
            .to_string();
        if key.is_empty() || chars.next_if_eq(&'=').is_none() {
            // Not a `key=value` pair: step over the character that ended it.
            if chars.next().is_none() {
                return params;
            }
            continue;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => value.extend(chars.next()),
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| *c != ',')));
            value = value.trim().to_string();
        }
        params.push((key, value));
    }
}

/// `Basic base64(user:password)`, marked sensitive.
pub(super) fn basic(username: &str, password: &str) -> HeaderValue {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    sensitive(format!("Basic {encoded}"))
}

/// `Bearer <token>`, marked sensitive.
pub(super) fn bearer(token: &str) -> HeaderValue {
    sensitive(format!("Bearer {token}"))
}

fn sensitive(text: String) -> HeaderValue {
    // Tokens and base64 are visible ASCII; anything else could not be sent anyway, and an empty
    // value makes the registry refuse the request, which is the honest outcome.
    let mut value = HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

/// A token endpoint's JSON answer; Docker's `token` and OAuth2's `access_token` are both read.
#[derive(Debug, serde::Deserialize)]
pub(super) struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long it may be used, or None when the answer carries no token.
    pub fn into_token(self) -> Option<(String, Duration)> {
        let token = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        let ttl = self
            .expires_in
            .filter(|s| *s > 0)
            .map_or(DEFAULT_TOKEN_TTL, Duration::from_secs);
        Some((token, ttl))
    }
}

/// Whose authorization a cached header is: tokens are never shared between different
/// credentials, so one pull secret cannot ride on another's token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    host: String,
    repository: String,
    credentials: Option<String>,
}

impl CacheKey {
    pub fn new(host: &str, repository: &str, credentials: Option<&Credentials>) -> CacheKey {
        CacheKey {
            host: host.to_string(),
            repository: repository.to_string(),
            credentials: credentials.map(fingerprint),
        }
    }
}

/// A sha256 over the credentials, so the cache keys hold no secret.
fn fingerprint(credentials: &Credentials) -> String {
    let mut hasher = Hasher::default();
    let parts: [&str; 3] = match credentials {
        Credentials::Basic { username, password } => ["basic", username, password],
        Credentials::IdentityToken(token) => ["identity", token, ""],
        Credentials::RegistryToken(token) => ["registry", token, ""],
    };
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    hasher.finish().to_string()
}

/// `Authorization` headers that worked, until they expire.
#[derive(Default)]
pub(super) struct AuthCache(Mutex<HashMap<CacheKey, (HeaderValue, Option<Instant>)>>);

impl AuthCache {
    pub fn get(&self, key: &CacheKey) -> Option<HeaderValue> {
        let mut entries = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match entries.get(key) {
            Some((_, Some(expires))) if *expires <= Instant::now() => {
                entries.remove(key);
                None
            }
            Some((value, _)) => Some(value.clone()),
            None => None,
        }
    }

    /// Stores `value` for `ttl` (a token), or until refused (Basic credentials, `None`).
    pub fn put(&self, key: CacheKey, value: HeaderValue, ttl: Option<Duration>) {
        let expires = ttl.map(|ttl| {
            let usable = if ttl > EXPIRY_MARGIN * 2 {
                ttl - EXPIRY_MARGIN
            } else {
                ttl
            };
            Instant::now() + usable
        });
        let mut entries = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.insert(key, (value, expires));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let bearer = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            bearer,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"basic realm="Registry Realm, \"quoted\"""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_params(r#"realm="a, \"b\"", service=svc , x"#),
            vec![
                ("realm".to_string(), r#"a, "b""#.to_string()),
                ("service".to_string(), "svc".to_string()),
            ]
        );
        assert_eq!(
            parse_params("=junk, realm=r,,"),
            vec![("realm".to_string(), "r".to_string())],
            "garbage is stepped over"
        );
        assert_eq!(
            parse_challenge("Bearer service=x"),
            None,
            "realm is required"
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn bearer_challenge_wins_over_basic() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=x"),
        );
        headers.append(
            "www-authenticate",
            HeaderValue::from_static(r#"Bearer realm="http://a/token""#),
        );
        assert!(matches!(
            challenge(&headers),
            Some(Challenge::Bearer { .. })
        ));
    }

    #[test]
    fn token_answers_and_expiry() {
        let parse = |json: &str| {
            serde_json::from_str::<TokenResponse>(json)
                .unwrap()
                .into_token()
        };
        assert_eq!(
            parse(r#"{"token":"t","expires_in":300}"#),
            Some(("t".into(), Duration::from_secs(300)))
        );
        assert_eq!(
            parse(r#"{"access_token":"a"}"#),
            Some(("a".into(), DEFAULT_TOKEN_TTL))
        );
        assert_eq!(parse(r#"{"token":""}"#), None);

        let cache = AuthCache::default();
        let key = CacheKey::new("h", "r", None);
        cache.put(key.clone(), bearer("t"), Some(Duration::ZERO));
        assert_eq!(cache.get(&key), None, "an expired token is not used");
        cache.put(key.clone(), bearer("t"), Some(DEFAULT_TOKEN_TTL));
        assert_eq!(cache.get(&key).unwrap(), "Bearer t");
        assert!(cache.get(&key).unwrap().is_sensitive());
        let other = Credentials::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        assert_eq!(cache.get(&CacheKey::new("h", "r", Some(&other))), None);
    }

    #[test]
    fn basic_header_encodes_user_and_password() {
        assert_eq!(basic("user", "pass"), "Basic dXNlcjpwYXNz");
    }
}
