//! Authentication as registries ask for it: Basic, Bearer tokens from a token endpoint (with
//! Basic credentials, anonymously, or by OAuth2 refresh token) and ready registry tokens.

use super::server::{Reply, Request, TestServer};
use super::*;
use crate::error::{Classify, Kind};
use crate::image::registry::Registry;

const ALICE: &str = "Basic YWxpY2U6c2VjcmV0"; // alice:secret

/// A registry that wants `Basic alice:secret`.
async fn basic_registry() -> TestServer {
    let manifest = manifest_body();
    TestServer::start(move |req, _| {
        if req.header("authorization") == Some(ALICE) {
            manifest_reply(&manifest)
        } else {
            Reply::status(401).header("www-authenticate", r#"Basic realm="test registry""#)
        }
    })
    .await
}

/// A registry that wants `Bearer tok-1`, handed out by its `/token` endpoint to whoever
/// `token_for` accepts.
async fn bearer_registry(token_for: fn(&Request) -> bool) -> TestServer {
    let manifest = manifest_body();
    TestServer::start(move |req, _| {
        if req.path() == "/token" {
            return if token_for(req) {
                Reply::ok(r#"{"token":"tok-1","expires_in":300}"#)
            } else {
                Reply::status(401)
            };
        }
        if req.header("authorization") != Some("Bearer tok-1") {
            let host = req.header("host").unwrap_or_default();
            let challenge = format!(
                r#"Bearer realm="http://{host}/token",service="test-registry",scope="repository:team/app:pull""#
            );
            return Reply::status(401).header("www-authenticate", challenge);
        }
        if req.path().contains("/manifests/") {
            manifest_reply(&manifest)
        } else {
            Reply::ok(blob(100))
        }
    })
    .await
}

#[tokio::test]
async fn basic_challenge_is_answered_with_the_callers_credentials() {
    let server = basic_registry().await;
    let client = plain_client(&server.host());
    let image = image(&server.host());
    let alice = basic("alice", "secret");

    client
        .fetch_manifest(&image, "v1", Some(&alice))
        .await
        .unwrap();
    client
        .fetch_manifest(&image, "v1", Some(&alice))
        .await
        .unwrap();
    let auth: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(
        auth,
        [None, Some(ALICE.into()), Some(ALICE.into())],
        "anonymous first, then Basic, which is then sent straight away"
    );
}

#[tokio::test]
async fn configured_credentials_are_used_when_the_caller_has_none() {
    let server = basic_registry().await;
    let config = RegistryConfig {
        username: Some("alice".into()),
        password: Some("secret".into()),
        ..insecure()
    };
    let client = client_with(&[(&server.host(), config)], &image_config());
    client
        .fetch_manifest(&image(&server.host()), "v1", None)
        .await
        .unwrap();
}

#[tokio::test]
async fn refused_or_missing_credentials_are_permission_denied() {
    let server = basic_registry().await;
    let client = plain_client(&server.host());
    let image = image(&server.host());
    let wrong = basic("alice", "guess");

    let err = client
        .fetch_manifest(&image, "v1", Some(&wrong))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::PermissionDenied, "{err}");
    assert!(!err.to_string().contains("guess"), "{err}");
    let err = client.fetch_manifest(&image, "v1", None).await.unwrap_err();
    assert_eq!(err.kind(), Kind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("requires credentials"), "{err}");
}

#[tokio::test]
async fn bearer_token_is_fetched_with_basic_credentials_and_cached() {
    let server = bearer_registry(|req| req.header("authorization") == Some(ALICE)).await;
    let client = plain_client(&server.host());
    let image = image(&server.host());
    let alice = basic("alice", "secret");
    let digest = Digest::of(&blob(100));

    for _ in 0..2 {
        let stream = client
            .fetch_blob(&image, &digest, 100, Some(&alice))
            .await
            .unwrap();
        assert_eq!(collect(stream).await.unwrap(), blob(100));
    }
    let tokens = server.hits("/token");
    assert_eq!(tokens.len(), 1, "the token is cached for the second blob");
    assert_eq!(tokens[0].method, "GET");
    assert_eq!(tokens[0].query("service"), ["test-registry"]);
    assert_eq!(tokens[0].query("scope"), ["repository:team/app:pull"]);
    let blob_requests = server.hits(&blob_path(&digest));
    assert_eq!(blob_requests.len(), 3, "401, then two with the token");
    assert!(
        blob_requests[1..]
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer tok-1"))
    );
}

#[tokio::test]
async fn anonymous_bearer_token_for_public_images() {
    let server = bearer_registry(|req| req.header("authorization").is_none()).await;
    let client = plain_client(&server.host());
    let fetched = client
        .fetch_manifest(&image(&server.host()), "v1", None)
        .await
        .unwrap();
    assert_eq!(fetched.bytes, manifest_body());
    assert_eq!(server.hits("/token").len(), 1);
}

#[tokio::test]
async fn identity_token_is_traded_with_an_oauth2_post() {
    let server = bearer_registry(|req| {
        req.method == "POST"
            && req.form("grant_type") == ["refresh_token"]
            && req.form("refresh_token") == ["refresh-me"]
    })
    .await;
    let client = plain_client(&server.host());
    let identity = Credentials::IdentityToken("refresh-me".into());
    client
        .fetch_manifest(&image(&server.host()), "v1", Some(&identity))
        .await
        .unwrap();
    let token = &server.hits("/token")[0];
    assert_eq!(token.method, "POST");
    assert_eq!(token.form("client_id"), ["berth"]);
    assert_eq!(token.form("service"), ["test-registry"]);
    assert_eq!(token.form("scope"), ["repository:team/app:pull"]);
    assert!(token.header("authorization").is_none());
}

#[tokio::test]
async fn registry_token_is_sent_directly() {
    let server = bearer_registry(|_| false).await;
    let client = plain_client(&server.host());
    let image = image(&server.host());
    let token = Credentials::RegistryToken("tok-1".into());
    client
        .fetch_manifest(&image, "v1", Some(&token))
        .await
        .unwrap();
    assert_eq!(
        server.requests().len(),
        1,
        "no challenge round trip, no token endpoint"
    );

    let stale = Credentials::RegistryToken("stale".into());
    let err = client
        .fetch_manifest(&image, "v1", Some(&stale))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::PermissionDenied, "{err}");
    assert!(!err.to_string().contains("stale"), "{err}");
}
