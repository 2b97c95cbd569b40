//! The build cache survives garbage collection: after the built image is removed (a sweep) and
//! berthd restarts (the startup sweep), a rebuild runs no step, every layer comes from the cache;
//! `PruneBuildCache` (`berth builder prune`) drops it and the next build runs every step again.
//! Needs root and the local test registry.

mod common;

use std::path::Path;

use berth::client::proto::{BuildRequest, PruneBuildCacheRequest};
use berth::cri::api;
use common::Daemon;
use common::registry::registries;

/// Builds `context` as `tag`; returns each layer step's text with `CACHED` or `DONE ...`.
async fn build(d: &Daemon, context: &Path, tag: &str) -> Vec<(String, String)> {
    let mut client = d.client().await;
    let request = BuildRequest {
        context: context.display().to_string(),
        tags: vec![tag.to_string()],
        ..Default::default()
    };
    let mut stream = client.images.build(request).await.unwrap().into_inner();
    let mut lines = Vec::new();
    while let Some(out) = stream.message().await.unwrap() {
        if !out.image_id.is_empty() {
            break;
        }
        lines.push(out.line);
    }
    let mut steps = Vec::new();
    let mut current = String::new();
    for line in lines {
        if line.starts_with('#') {
            current = line
                .split_once("] ")
                .map(|(_, t)| t.to_string())
                .unwrap_or_default();
        } else if line == "CACHED" || line.starts_with("DONE") {
            steps.push((current.clone(), line));
        }
    }
    steps
}

#[tokio::test]
async fn the_build_cache_survives_image_removal_and_restart_until_pruned() {
    let r = registries();
    let mut d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    let base = format!("{}/library/busybox:latest", r.plain);
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base} AS build\nRUN echo one > /one && echo scratch > /scratch\n\
             FROM {base}\nCOPY --from=build /one /one\nRUN cat /one /one > /two\n"
        ),
    )
    .unwrap();
    let tag = "localhost/cache-test:v1";

    let first = build(&d, &ctx, tag).await;
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(
        first.iter().all(|(_, r)| r.starts_with("DONE")),
        "{first:?}"
    );

    // Removing the image sweeps what no image uses: the cache's layers (the first stage's
    // never were an image) must stay; so must they through the sweep at berthd's start.
    let mut cri = d.client().await;
    cri.image
        .remove_image(api::RemoveImageRequest {
            image: Some(api::ImageSpec {
                image: tag.into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    d.kill9();
    d.restart();
    let again = build(&d, &ctx, tag).await;
    assert_eq!(again.len(), 3, "{again:?}");
    assert!(
        again.iter().all(|(_, r)| r == "CACHED"),
        "after removal and restart: {again:?}"
    );

    let mut client = d.client().await;
    let pruned = client
        .images
        .prune_build_cache(PruneBuildCacheRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pruned.entries, 3, "{pruned:?}");
    assert!(
        pruned.blobs >= 1,
        "the first stage's layer is freed: {pruned:?}"
    );
    let after = build(&d, &ctx, tag).await;
    assert!(
        after.iter().all(|(_, r)| r.starts_with("DONE")),
        "after prune: {after:?}"
    );
}
