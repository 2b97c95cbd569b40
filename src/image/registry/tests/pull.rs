//! Plain pulls: manifests and blobs anonymously, and the answers the client must refuse.

use super::server::{Reply, TestServer};
use super::*;
use crate::error::{Classify, Kind};
use crate::image::registry::{ACCEPTED_MEDIA_TYPES, MAX_MANIFEST_BYTES, Registry};

#[tokio::test]
async fn anonymous_pull_of_manifest_and_blob() {
    let manifest = manifest_body();
    let layer = blob(10_000);
    let digest = Digest::of(&layer);
    let (m, l) = (manifest.clone(), layer.clone());
    let server = TestServer::start(move |req, _| match req.path() {
        MANIFEST_PATH => manifest_reply(&m),
        _ => Reply::ok(l.clone()),
    })
    .await;
    let client = plain_client(&server.host());
    let image = image(&server.host());

    let fetched = client.fetch_manifest(&image, "v1", None).await.unwrap();
    assert_eq!(fetched.media_type, OCI_MANIFEST);
    assert_eq!(fetched.digest, Digest::of(&manifest));
    assert_eq!(fetched.bytes, manifest);
    let stream = client
        .fetch_blob(&image, &digest, 10_000, None)
        .await
        .unwrap();
    assert_eq!(collect(stream).await.unwrap(), layer);

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let accept = requests[0].header("accept").unwrap();
    for media_type in ACCEPTED_MEDIA_TYPES {
        assert!(
            accept.contains(media_type),
            "Accept {accept} lists {media_type}"
        );
    }
    assert_eq!(requests[1].path(), blob_path(&digest));
    assert!(requests.iter().all(|r| r.header("authorization").is_none()));
}

#[tokio::test]
async fn manifest_by_digest_must_match_the_bytes() {
    let manifest = manifest_body();
    let good = Digest::of(&manifest);
    let wrong = Digest::of(b"something else");
    let m = manifest.clone();
    let server = TestServer::start(move |_, _| manifest_reply(&m)).await;
    let client = plain_client(&server.host());
    let image = image(&server.host());

    let fetched = client.fetch_manifest(&image, good.as_str(), None).await;
    assert_eq!(fetched.unwrap().digest, good);
    let err = client
        .fetch_manifest(&image, wrong.as_str(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(wrong.as_str()) && message.contains(good.as_str()),
        "{message}"
    );
    assert!(message.contains("team/app"), "{message}");
}

#[tokio::test]
async fn tag_digest_header_must_match_the_bytes() {
    let manifest = manifest_body();
    let wrong = Digest::of(b"other");
    let server = TestServer::start(move |_, _| {
        manifest_reply(&manifest).header("docker-content-digest", wrong.to_string())
    })
    .await;
    let client = plain_client(&server.host());
    let err = client
        .fetch_manifest(&image(&server.host()), "v1", None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert_eq!(err.kind(), Kind::Internal);
}

#[tokio::test]
async fn unknown_manifest_and_blob_are_not_found() {
    let server = TestServer::start(|_, _| Reply::status(404)).await;
    let client = plain_client(&server.host());
    let image = image(&server.host());

    let err = client.fetch_manifest(&image, "v1", None).await.unwrap_err();
    assert_eq!(err.kind(), Kind::NotFound);
    let message = err.to_string();
    let named = format!("{}/team/app: manifest v1", server.host());
    assert!(message.contains(&named), "{message}");

    let digest = Digest::of(b"x");
    let err = match client.fetch_blob(&image, &digest, 1, None).await {
        Ok(_) => panic!("a missing blob opened"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), Kind::NotFound);
    assert!(err.to_string().contains(digest.as_str()), "{err}");
    assert_eq!(server.requests().len(), 2, "404 is not retried");
}

#[tokio::test]
async fn schema1_and_unknown_media_types_are_refused() {
    let server = TestServer::start(|req, _| {
        let media_type = if req.path().ends_with("/old") {
            "application/vnd.docker.distribution.manifest.v1+prettyjws"
        } else {
            "application/vnd.example.thing+json"
        };
        Reply::ok(r#"{"schemaVersion":1}"#).header("content-type", media_type)
    })
    .await;
    let client = plain_client(&server.host());
    let image = image(&server.host());

    let err = client
        .fetch_manifest(&image, "old", None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Schema1 { .. }), "{err}");
    assert_eq!(err.kind(), Kind::InvalidArgument);
    assert!(err.to_string().contains("schema 1"), "{err}");
    let err = client
        .fetch_manifest(&image, "odd", None)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::MediaType { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("application/vnd.example.thing+json")
    );
}

#[tokio::test]
async fn oversize_manifest_is_refused() {
    let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
    let server = TestServer::start(move |_, _| manifest_reply(&big)).await;
    let client = plain_client(&server.host());
    let err = client
        .fetch_manifest(&image(&server.host()), "v1", None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::ManifestTooLarge { .. }),
        "{err}"
    );
    assert_eq!(err.kind(), Kind::ResourceExhausted);
}

#[tokio::test]
async fn blob_longer_than_its_size_is_an_error() {
    let layer = blob(1000);
    let server = TestServer::start(move |_, _| Reply::ok(layer.clone())).await;
    let client = plain_client(&server.host());
    let digest = Digest::of(b"whatever");
    let stream = client
        .fetch_blob(&image(&server.host()), &digest, 600, None)
        .await
        .unwrap();
    let err = collect(stream).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::BlobTooLarge { size: 600, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn credentials_debug_output_hides_secrets() {
    let shown = format!(
        "{:?} {:?} {:?}",
        basic("alice", "hunter2"),
        Credentials::IdentityToken("refresh-secret".into()),
        Credentials::RegistryToken("bearer-secret".into())
    );
    assert!(shown.contains("alice"), "{shown}");
    for secret in ["hunter2", "refresh-secret", "bearer-secret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}
