//! Sending one registry request: authentication on 401 (Basic, or a Bearer token from the
//! realm the registry names — an https realm when the registry is reached over https), retries
//! with exponential backoff on connection failures, 408, 429 and 5xx, and a no-progress timeout
//! on waiting for the answer (connecting has its own bound, set on the endpoint's client). There
//! is no total timeout.

use std::time::Duration;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use reqwest::{RequestBuilder, Response, StatusCode};
use tracing::debug;

use super::Credentials;
use super::auth::{self, AuthCache, CacheKey, Challenge, TokenResponse};
use super::endpoint::Endpoint;
use super::error::{Cause, RegistryError, Subject};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The OAuth2 client id berth presents when trading an identity token for an access token.
const CLIENT_ID: &str = "berth";
/// Token endpoint answers are small; anything bigger is not a token.
const MAX_TOKEN_RESPONSE: usize = 1 << 20;

/// Retry policy and the authorization cache shared by every request of one client.
pub(super) struct Transport {
    max_attempts: u32,
    pub no_progress: Duration,
    /// The slowest a blob connection may deliver over a window before it is replaced.
    pub min_rate: MinRate,
    auth: AuthCache,
}

/// A minimum delivery rate in bytes per second, judged over `window`; a rate of 0 is no minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MinRate {
    pub bytes_per_second: u64,
    pub window: Duration,
}

impl Transport {
    pub fn new(max_attempts: u32, no_progress: Duration, min_rate: MinRate) -> Transport {
        Transport {
            max_attempts: max_attempts.max(1),
            no_progress,
            min_rate,
            auth: AuthCache::default(),
        }
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// GETs `/v2/<path>` on `endpoint` for `repository`, authenticating as the registry asks.
    /// Returns any answer other than 401 and transient failures; the caller judges the status.
    pub async fn get(
        &self,
        endpoint: &Endpoint,
        repository: &str,
        credentials: Option<&Credentials>,
        subject: &Subject,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Response, RegistryError> {
        let access = Access::pull(repository);
        let build = || {
            endpoint
                .client
                .get(endpoint.url(path))
                .headers(headers.clone())
        };
        self.request(endpoint, &access, credentials, subject, build)
            .await
    }

    /// Sends the request `build` makes to `endpoint` with the authorization `access` needs,
    /// asking for it as a 401 says. `build` is called once per attempt (its body is sent again).
    pub async fn request(
        &self,
        endpoint: &Endpoint,
        access: &Access,
        credentials: Option<&Credentials>,
        subject: &Subject,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let host = endpoint.host.as_str();
        let repository = access.repository.as_str();
        let key = CacheKey::new(host, repository, credentials);
        let mut authenticated = false;
        loop {
            let authorization = match credentials {
                Some(Credentials::RegistryToken(token)) => Some(auth::bearer(token)),
                _ => self.auth.get(&key),
            };
            let build = || match &authorization {
                Some(value) => build().header(AUTHORIZATION, value.clone()),
                None => build(),
            };
            let response = self.send(subject, host, endpoint, true, build).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            if authenticated || matches!(credentials, Some(Credentials::RegistryToken(_))) {
                let reason = match credentials {
                    Some(_) => "credentials refused",
                    None => "anonymous access refused; the image may need credentials",
                };
                return Err(subject.unauthorized(host, reason));
            }
            let challenge = auth::challenge(response.headers()).ok_or_else(|| {
                subject.bad_response(host, "401 without a Basic or Bearer challenge")
            })?;
            let (value, ttl) = match (challenge, credentials) {
                (Challenge::Basic, Some(Credentials::Basic { username, password })) => {
                    (auth::basic(username, password), None)
                }
                (Challenge::Basic, Some(_)) => {
                    return Err(
                        subject.unauthorized(host, "registry wants a username and password")
                    );
                }
                (Challenge::Basic, None) => {
                    return Err(subject.unauthorized(host, "registry requires credentials"));
                }
                (
                    Challenge::Bearer {
                        realm,
                        service,
                        scope,
                    },
                    _,
                ) => {
                    let scopes = access.scopes(scope);
                    let (token, ttl) = self
                        .token(endpoint, subject, credentials, &realm, service, &scopes)
                        .await?;
                    (auth::bearer(&token), Some(ttl))
                }
            };
            self.auth.put(key.clone(), value, ttl);
            authenticated = true;
        }
    }

    /// Asks the token endpoint `realm` for a pull token: GET with Basic credentials (or none),
    /// or the OAuth2 refresh-token POST for an identity token.
    async fn token(
        &self,
        endpoint: &Endpoint,
        subject: &Subject,
        credentials: Option<&Credentials>,
        realm: &str,
        service: Option<String>,
        scopes: &[String],
    ) -> Result<(String, Duration), RegistryError> {
        let mut url = reqwest::Url::parse(realm).map_err(|e| {
            subject.bad_response(&endpoint.host, format!("token realm {realm:?}: {e}"))
        })?;
        let realm_host = url.host_str().unwrap_or_default().to_string();
        // The token request carries the caller's credentials (or trades a refresh token): a
        // registry reached over TLS cannot send them to a realm in clear text.
        if endpoint.is_https() && url.scheme() != "https" {
            let reason = format!(
                "token realm {realm} is not https; credentials for a TLS registry are never sent \
                 over plain http"
            );
            return Err(subject.unauthorized(&endpoint.host, reason));
        }
        if !matches!(credentials, Some(Credentials::IdentityToken(_))) {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
        }
        let build = || match credentials {
            Some(Credentials::IdentityToken(refresh_token)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token.as_str()),
                    ("client_id", CLIENT_ID),
                ];
                form.extend(service.as_deref().map(|s| ("service", s)));
                form.extend(scopes.iter().map(|s| ("scope", s.as_str())));
                endpoint.client.post(url.clone()).form(&form)
            }
            Some(Credentials::Basic { username, password }) => endpoint
                .client
                .get(url.clone())
                .basic_auth(username, Some(password)),
            _ => endpoint.client.get(url.clone()),
        };
        let response = self
            .send(subject, &realm_host, endpoint, false, build)
            .await?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let reason = format!("token endpoint {realm} refused the credentials ({status})");
            return Err(subject.unauthorized(&endpoint.host, reason));
        }
        if !status.is_success() {
            return Err(subject.status(&realm_host, status.as_u16()));
        }
        let body = self
            .read_capped(response, MAX_TOKEN_RESPONSE)
            .await
            .map_err(|cause| subject.unavailable(&realm_host, 1, cause))?
            .ok_or_else(|| subject.bad_response(&realm_host, "token answer too large"))?;
        serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| subject.bad_response(&realm_host, "token endpoint sent no token"))
    }

    /// Sends the request `build` makes (with `endpoint`'s client), again after transient
    /// failures, up to the attempt limit. When `to_endpoint` (the request goes to `endpoint`
    /// itself, not to a token realm), a loopback endpoint whose https connection fails moves to
    /// http without using an attempt.
    async fn send(
        &self,
        subject: &Subject,
        host: &str,
        endpoint: &Endpoint,
        to_endpoint: bool,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (client, request) = build().build_split();
            let request = request.map_err(|e| subject.bad_response(host, e.to_string()))?;
            let (method, url) = (request.method().clone(), loggable(request.url()));
            debug!(%method, %url, attempt, "registry request");
            // Connecting has its own bound (in the client); the answer then gets `no_progress`.
            let answer = endpoint.connect_timeout + self.no_progress;
            let cause = match tokio::time::timeout(answer, client.execute(request)).await {
                Err(_) => Cause::NoAnswer(self.no_progress),
                Ok(Err(e))
                    if (not_tls(&e) || connect_timed_out(&e))
                        && to_endpoint
                        && endpoint.fall_back_to_http() =>
                {
                    debug!(%url, error = %e, "https failed on a loopback registry, trying http");
                    attempt -= 1;
                    continue;
                }
                Ok(Err(e)) if connect_timed_out(&e) => {
                    Cause::ConnectTimeout(endpoint.connect_timeout)
                }
                Ok(Err(e)) if bad_certificate(&e) => {
                    return Err(subject.unavailable(host, attempt, Cause::Http(e.without_url())));
                }
                Ok(Err(e)) if e.is_redirect() || e.is_builder() => {
                    return Err(subject.bad_response(host, e.to_string()));
                }
                Ok(Err(e)) => Cause::Http(e.without_url()),
                Ok(Ok(response)) => {
                    let status = response.status();
                    debug!(%method, %url, status = status.as_u16(), "registry response");
                    if !is_transient(status) {
                        return Ok(response);
                    }
                    Cause::Status(status.as_u16())
                }
            };
            if attempt >= self.max_attempts {
                return Err(subject.unavailable(host, attempt, cause));
            }
            debug!(%url, attempt, error = %cause, "registry request failed, retrying");
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    /// Reads a whole body of at most `limit` bytes (None when it is larger), failing when no
    /// byte arrives for the no-progress timeout.
    pub async fn read_capped(
        &self,
        mut response: Response,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, Cause> {
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Ok(None);
        }
        let mut body = Vec::new();
        loop {
            match tokio::time::timeout(self.no_progress, response.chunk()).await {
                Err(_) => return Err(Cause::Stalled(self.no_progress)),
                Ok(Err(e)) => return Err(Cause::Http(e.without_url())),
                Ok(Ok(None)) => return Ok(Some(body)),
                Ok(Ok(Some(chunk))) => {
                    if body.len() + chunk.len() > limit {
                        return Ok(None);
                    }
                    body.extend_from_slice(&chunk);
                }
            }
        }
    }
}

/// The delay before retry number `attempt` (1-based): 100ms, 200ms, 400ms, ... at most 2s.
pub(super) fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// The TLS error a request failed with, if any.
fn tls_error(error: &reqwest::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An io::Error's `source()` skips the error it wraps, so step into that one instead.
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// The server answered the TLS handshake with something that is not TLS: plain http.
fn not_tls(error: &reqwest::Error) -> bool {
    matches!(tls_error(error), Some(rustls::Error::InvalidMessage(_)))
}

/// No connection (name lookup, TCP connect, TLS handshake) within the client's connect bound.
fn connect_timed_out(error: &reqwest::Error) -> bool {
    error.is_connect() && error.is_timeout()
}

/// The server's certificate was refused; asking again will not change that.
fn bad_certificate(error: &reqwest::Error) -> bool {
    matches!(tls_error(error), Some(rustls::Error::InvalidCertificate(_)))
}

/// The repository access a request needs: pull, or pull and push, plus pull of the
/// repositories a cross-repository mount reads from.
#[derive(Debug, Clone)]
pub(super) struct Access {
    pub repository: String,
    pub push: bool,
    pub also_pull: Vec<String>,
}

impl Access {
    pub fn pull(repository: &str) -> Access {
        Access {
            repository: repository.to_string(),
            push: false,
            also_pull: Vec::new(),
        }
    }

    pub fn push(repository: &str) -> Access {
        Access {
            push: true,
            ..Access::pull(repository)
        }
    }

    /// The token scopes to ask for: this access, plus whatever other scope the registry's
    /// challenge named.
    fn scopes(&self, challenged: Option<String>) -> Vec<String> {
        let actions = if self.push { "pull,push" } else { "pull" };
        let mut scopes = vec![format!("repository:{}:{actions}", self.repository)];
        for other in &self.also_pull {
            scopes.push(format!("repository:{other}:pull"));
        }
        scopes.extend(challenged.filter(|s| !s.is_empty() && !scopes.contains(s)));
        scopes
    }
}

/// The URL without its query, which may carry signed-URL secrets.
fn loggable(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_two_seconds() {
        let delays: Vec<u64> = (1..=7).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn scope_always_includes_pull_of_the_repository() {
        let pull = Access::pull("a/b");
        assert_eq!(pull.scopes(None), ["repository:a/b:pull"]);
        assert_eq!(
            pull.scopes(Some("repository:a/b:pull".into())),
            ["repository:a/b:pull"]
        );
        assert_eq!(
            pull.scopes(Some("repository:a/b:pull,push".into())),
            ["repository:a/b:pull", "repository:a/b:pull,push"]
        );
    }

    #[test]
    fn push_scope_asks_for_push_and_pull_of_mount_sources() {
        let mut push = Access::push("a/b");
        push.also_pull.push("c/d".into());
        assert_eq!(
            push.scopes(Some("repository:a/b:pull,push".into())),
            ["repository:a/b:pull,push", "repository:c/d:pull"]
        );
    }

    #[test]
    fn logged_urls_have_no_query() {
        let url = reqwest::Url::parse("https://s3.example/blob?X-Amz-Signature=secret").unwrap();
        assert_eq!(loggable(&url), "https://s3.example/blob");
    }
}
