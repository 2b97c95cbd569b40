//! Pulling from a real registry (Debian's docker-registry on 127.0.0.1) through berthd's CRI
//! ImageService: tags, digests, indexes, credentials over TLS, listing, status, removal and
//! what stays on disk. Needs `hack/registry.sh start` and `hack/testimages/build.sh`.

mod common;

use std::path::Path;

use berth::cri::api;
use common::Daemon;
use common::registry::{Registries, registries};

fn daemon(r: &Registries, extra: &str) -> Daemon {
    Daemon::start(&format!(
        "registries:\n  \"{plain}\":\n    insecure: true\n  \"{proxy}\":\n    insecure: true\n  \"{tls}\":\n    ca_file: {ca}\n{extra}",
        plain = r.plain,
        proxy = r.proxy,
        tls = r.tls,
        ca = r.ca.display(),
    ))
}

fn spec(image: &str) -> Option<api::ImageSpec> {
    Some(api::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

async fn pull(
    d: &Daemon,
    image: &str,
    auth: Option<api::AuthConfig>,
) -> Result<String, tonic::Status> {
    let mut cri = d.client().await;
    let req = api::PullImageRequest {
        image: spec(image),
        auth,
        sandbox_config: None,
    };
    Ok(cri.image.pull_image(req).await?.into_inner().image_ref)
}

async fn status(d: &Daemon, image: &str) -> Option<(api::Image, serde_json::Value)> {
    let mut cri = d.client().await;
    let req = api::ImageStatusRequest {
        image: spec(image),
        verbose: true,
    };
    let resp = cri.image.image_status(req).await.unwrap().into_inner();
    let info = resp
        .info
        .get("info")
        .map(|i| serde_json::from_str(i).unwrap());
    resp.image.map(|i| (i, info.unwrap_or_default()))
}

async fn list(d: &Daemon) -> Vec<api::Image> {
    let mut cri = d.client().await;
    let req = api::ListImagesRequest { filter: None };
    cri.image
        .list_images(req)
        .await
        .unwrap()
        .into_inner()
        .images
}

/// Files left in the daemon's staging and ingest areas (must be none between pulls).
fn leftovers(d: &Daemon) -> Vec<String> {
    let root = d.dir.path().join("root");
    let mut out = vec![];
    for (dir, prefix) in [
        (root.join("snapshots"), "tmp-"),
        (root.join("content/ingest"), ""),
    ] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(prefix) {
                out.push(format!("{}/{name}", dir.display()));
            }
        }
    }
    out
}

#[tokio::test]
async fn pull_by_tag_lists_and_unpacks_busybox() {
    let r = registries();
    let d = daemon(&r, "");
    let image = format!("{}/library/busybox:latest", r.plain);
    let id = pull(&d, &image, None).await.expect("pull busybox");
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let images = list(&d).await;
    assert_eq!(images.len(), 1);
    let img = &images[0];
    assert_eq!(img.id, id);
    assert_eq!(img.repo_tags, std::slice::from_ref(&image));
    assert_eq!(img.repo_digests.len(), 1);
    assert!(img.repo_digests[0].starts_with(&format!("{}/library/busybox@sha256:", r.plain)));
    assert!(
        img.size > 500_000,
        "busybox is about 1 MB compressed: {}",
        img.size
    );

    let (by_digest, info) = status(&d, &img.repo_digests[0])
        .await
        .expect("status by digest");
    assert_eq!(by_digest.id, id);
    assert_eq!(info["imageSpec"]["config"]["Cmd"][0], "sh");
    let top = info["snapshotDirs"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let busybox = Path::new(&top).join("bin/busybox");
    assert!(busybox.is_file(), "{} unpacked", busybox.display());
    assert!(
        std::fs::symlink_metadata(Path::new(&top).join("bin/sh"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // the id and its short forms find it too
    assert_eq!(status(&d, &id).await.unwrap().0.id, id);
    assert_eq!(status(&d, &id[7..19]).await.unwrap().0.id, id);
    assert!(
        status(&d, &format!("{}/library/busybox:nope", r.plain))
            .await
            .is_none()
    );
    assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
}

#[tokio::test]
async fn pull_by_digest_and_by_tag_with_digest() {
    let r = registries();
    let d = daemon(&r, "");
    let tagged = format!("{}/library/busybox:latest", r.plain);
    let id = pull(&d, &tagged, None).await.unwrap();
    let digest = status(&d, &tagged).await.unwrap().0.repo_digests[0].clone();

    let d2 = daemon(&r, "");
    assert_eq!(pull(&d2, &digest, None).await.unwrap(), id);
    let img = status(&d2, &digest).await.unwrap().0;
    assert!(
        img.repo_tags.is_empty(),
        "a digest pull adds no tag: {:?}",
        img.repo_tags
    );
    let both = format!("{tagged}@{}", digest.split('@').nth(1).unwrap());
    assert_eq!(pull(&d2, &both, None).await.unwrap(), id);

    // a pinned digest that does not exist in the repository is NotFound
    let wrong = format!("{}/library/busybox@sha256:{}", r.plain, "0".repeat(64));
    let err = pull(&d2, &wrong, None).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
}

#[tokio::test]
async fn malformed_references_are_invalid_arguments() {
    let r = registries();
    let d = daemon(&r, "");
    for bad in ["", "UPPER/case", "busybox:", "a//b", "busybox@sha256:123"] {
        let err = pull(&d, bad, None).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad:?}: {err:?}");
    }
    let err = pull(&d, &format!("{}/library/no-such-image:1", r.plain), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert!(list(&d).await.is_empty());
    assert!(leftovers(&d).is_empty());
}

#[tokio::test]
async fn multi_platform_index_selects_the_node_platform() {
    let r = registries();
    let d = daemon(&r, "");
    let image = format!("{}/test/multiarch:latest", r.plain);
    pull(&d, &image, None).await.expect("pull multiarch");
    let (img, info) = status(&d, &image).await.unwrap();
    assert_eq!(info["imageSpec"]["architecture"], "amd64");
    assert_eq!(
        info["indexDigest"].as_str().unwrap(),
        img.repo_digests[0].split('@').nth(1).unwrap()
    );

    let err = pull(&d, &format!("{}/test/multiarch:arm-only", r.plain), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert!(err.message().contains("linux/amd64"), "{}", err.message());

    // the platform is configurable
    let arm = daemon(&r, "image:\n  platform: linux/arm64/v8\n");
    pull(&arm, &image, None).await.expect("pull arm64");
    assert_eq!(
        status(&arm, &image).await.unwrap().1["imageSpec"]["architecture"],
        "arm64"
    );
}

#[tokio::test]
async fn tls_registry_with_credentials() {
    let r = registries();
    let d = daemon(&r, "");
    let image = format!("{}/library/busybox:latest", r.tls);
    let err = pull(&d, &image, None).await.unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::PermissionDenied,
        "anonymous: {err:?}"
    );
    let wrong = api::AuthConfig {
        username: r.user.clone(),
        password: "wrong".into(),
        ..Default::default()
    };
    let err = pull(&d, &image, Some(wrong)).await.unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::PermissionDenied,
        "wrong password: {err:?}"
    );
    let right = api::AuthConfig {
        username: r.user.clone(),
        password: r.password.clone(),
        ..Default::default()
    };
    pull(&d, &image, Some(right))
        .await
        .expect("pull with credentials");

    // the same registry without its CA is refused at the TLS handshake
    let no_ca = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    username: {}\n    password: {}\n",
        r.tls, r.user, r.password
    ));
    let err = pull(&no_ca, &image, None).await.unwrap_err();
    assert_ne!(err.code(), tonic::Code::Ok);
    // credentials from the config file work without an AuthConfig
    let configured = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    ca_file: {}\n    username: {}\n    password: {}\n",
        r.tls,
        r.ca.display(),
        r.user,
        r.password
    ));
    pull(&configured, &image, None)
        .await
        .expect("pull with configured credentials");
}

#[tokio::test]
async fn remove_frees_what_no_other_image_uses() {
    let r = registries();
    let d = daemon(&r, "");
    let busybox = format!("{}/library/busybox:latest", r.plain);
    let alias = format!("{}/library/busybox:1.36", r.plain);
    let layered = format!("{}/test/layered:gzip", r.plain);
    let id = pull(&d, &busybox, None).await.unwrap();
    assert_eq!(
        pull(&d, &alias, None).await.unwrap(),
        id,
        "same content, same image"
    );
    pull(&d, &layered, None).await.unwrap();
    assert_eq!(list(&d).await.len(), 2);
    let snapshots = d.dir.path().join("root/snapshots");
    let count = || std::fs::read_dir(&snapshots).unwrap().count();
    let before = count();

    // by tag: every name of the image goes
    let mut cri = d.client().await;
    cri.image
        .remove_image(api::RemoveImageRequest {
            image: spec(&alias),
        })
        .await
        .unwrap();
    assert!(
        status(&d, &busybox).await.is_none(),
        "all tags removed with the image"
    );
    assert_eq!(list(&d).await.len(), 1);
    // the layered image is built on busybox's layer, which therefore stays
    assert_eq!(count(), before, "shared base snapshot kept");
    let (_, info) = status(&d, &layered).await.unwrap();
    for dir in info["snapshotDirs"].as_array().unwrap() {
        assert!(Path::new(dir.as_str().unwrap()).is_dir());
    }
    // unknown images are fine
    cri.image
        .remove_image(api::RemoveImageRequest {
            image: spec(&busybox),
        })
        .await
        .unwrap();
    cri.image
        .remove_image(api::RemoveImageRequest {
            image: spec(&layered),
        })
        .await
        .unwrap();
    assert_eq!(count(), 0, "all snapshots freed");
    let blobs = std::fs::read_dir(d.dir.path().join("root/content/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "all blobs freed");
    // The removed snapshots' files go too, soon after, from the trash.
    let trash = d.dir.path().join("root/trash");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(&trash).unwrap().count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the trash was not emptied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn image_fs_info_reports_real_usage() {
    let r = registries();
    let d = daemon(&r, "");
    let mut cri = d.client().await;
    let empty = cri
        .image
        .image_fs_info(api::ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let used =
        |resp: &api::ImageFsInfoResponse| resp.image_filesystems[0].used_bytes.unwrap().value;
    pull(&d, &format!("{}/library/busybox:latest", r.plain), None)
        .await
        .unwrap();
    let full = cri
        .image
        .image_fs_info(api::ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        used(&full) > used(&empty) + 1_000_000,
        "{} vs {}",
        used(&full),
        used(&empty)
    );
    let inodes = full.image_filesystems[0].inodes_used.unwrap().value;
    assert!(
        inodes > 267,
        "busybox has 267 applet links, got {inodes} inodes"
    );
}

#[tokio::test]
async fn discarding_compressed_layers_keeps_only_manifest_and_config() {
    let r = registries();
    let d = daemon(&r, "image:\n  discard_compressed_layers: true\n");
    let image = format!("{}/library/debian:bookworm", r.plain);
    pull(&d, &image, None).await.expect("pull");
    let blobs = std::fs::read_dir(d.dir.path().join("root/content/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 2, "manifest and config only, no layer blobs");
    let (_, info) = status(&d, &image).await.unwrap();
    assert_eq!(info["snapshotDirs"].as_array().unwrap().len(), 3);
    // a second pull still transfers nothing: the snapshots are what counts
    pull(&d, &image, None).await.expect("second pull");
    assert!(leftovers(&d).is_empty());
}

#[tokio::test]
async fn mirrors_serve_first_and_fall_back_to_the_registry() {
    let r = registries();
    // The "upstream" cannot be resolved: only its mirror (the local registry) can serve it.
    let d = Daemon::start(&format!(
        "registries:\n  \"{plain}\":\n    insecure: true\n    mirrors: [\"http://127.0.0.1:9\"]\n  \"upstream.invalid\":\n    mirrors: [\"http://127.0.0.1:9\", \"http://{plain}\"]\n",
        plain = r.plain,
    ));
    let via_mirror = "upstream.invalid/library/busybox:latest";
    let id = pull(&d, via_mirror, None)
        .await
        .expect("pulled from the second mirror");
    let img = status(&d, via_mirror).await.unwrap().0;
    assert_eq!(
        img.repo_tags,
        [via_mirror.to_string()],
        "named as asked, not as the mirror"
    );
    // a dead mirror in front of a live registry only costs a fallback
    let direct = format!("{}/library/busybox:latest", r.plain);
    assert_eq!(
        pull(&d, &direct, None)
            .await
            .expect("fallback to the registry"),
        id
    );
}
