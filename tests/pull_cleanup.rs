//! Failed and cancelled pulls leave nothing that no image references, except the layers they
//! completed and verified, kept for `image.failed_pull_grace` so a retry reuses them, then
//! collected (and at startup). Pulls of the real test registry through a fault proxy of each
//! test's own (hack/faultproxy.py), which breaks one chosen layer. And a pull berthd is killed
//! right after, before its content was flushed, keeps its image (`image::flush`).

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use berth::cri::api;
use common::Daemon;
use common::registry::{FaultProxy, Registries, registries};

fn daemon(proxy: &FaultProxy, image_yaml: &str) -> Daemon {
    Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\nimage:\n{image_yaml}",
        proxy.addr
    ))
}

/// The config and layer digests of `repo:tag` in the plain registry.
fn manifest(r: &Registries, repo: &str, tag: &str) -> (String, Vec<String>) {
    let mut s = std::net::TcpStream::connect(&r.plain).expect("registry is up");
    write!(
        s,
        "GET /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {}\r\nAccept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json\r\nConnection: close\r\n\r\n",
        r.plain
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").expect("a body").1;
    let m: serde_json::Value = serde_json::from_str(body).expect("manifest JSON");
    let digest = |v: &serde_json::Value| v["digest"].as_str().unwrap().to_string();
    let layers: Vec<String> = m["layers"].as_array().unwrap().iter().map(digest).collect();
    (digest(&m["config"]), layers)
}

fn request(image: &str) -> api::PullImageRequest {
    api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        auth: None,
        sandbox_config: None,
    }
}

async fn pull(d: &Daemon, image: &str) -> Result<String, tonic::Status> {
    let mut cri = d.client().await;
    Ok(cri
        .image
        .pull_image(request(image))
        .await?
        .into_inner()
        .image_ref)
}

/// What berthd's root holds: committed blobs, committed snapshots, and staging dirs and ingest
/// files of unfinished writes.
#[derive(Debug, PartialEq)]
struct Stored {
    blobs: BTreeSet<String>,
    snapshots: usize,
    unfinished: Vec<String>,
}

fn names(dir: std::path::PathBuf) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn stored(d: &Daemon) -> Stored {
    let root = d.dir.path().join("root");
    let snapshots = names(root.join("snapshots"));
    let mut unfinished: Vec<String> = snapshots
        .iter()
        .filter(|n| n.starts_with("tmp-"))
        .cloned()
        .collect();
    unfinished.extend(names(root.join("content/ingest")));
    Stored {
        blobs: names(root.join("content/blobs/sha256"))
            .into_iter()
            .map(|h| format!("sha256:{h}"))
            .collect(),
        snapshots: snapshots.len() - unfinished.len(),
        unfinished,
    }
}

/// Polls until `done` holds for what is stored, or `within` passes; returns the last state.
async fn wait_stored(d: &Daemon, within: Duration, done: impl Fn(&Stored) -> bool) -> Stored {
    let deadline = Instant::now() + within;
    loop {
        let s = stored(d);
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn set(layers: &[String]) -> BTreeSet<String> {
    layers.iter().cloned().collect()
}

/// Pulls test/layered:gzip (5 layers, one at a time) with its last layer corrupted; returns the
/// daemon, the image name, the config digest and the layers.
async fn failed_pull(
    proxy: &FaultProxy,
    image_yaml: &str,
) -> (Daemon, String, String, Vec<String>) {
    let r = registries();
    let (config, layers) = manifest(&r, "test/layered", "gzip");
    assert_eq!(layers.len(), 5, "test/layered:gzip has 5 layers");
    proxy.set(&format!(
        r#"{{"mode": "wrongdigest", "digest": "{}"}}"#,
        layers[4]
    ));
    let yaml = format!("  max_concurrent_downloads: 1\n{image_yaml}");
    let d = daemon(proxy, &yaml);
    let image = format!("{}/test/layered:gzip", proxy.addr);
    let err = pull(&d, &image).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("mismatch"), "{err:?}");
    (d, image, config, layers)
}

#[tokio::test]
async fn a_failed_pull_keeps_only_its_verified_layers_and_the_retry_reuses_them() {
    let proxy = FaultProxy::private(&registries());
    let (d, image, config, layers) = failed_pull(&proxy, "").await;
    let s = wait_stored(&d, Duration::from_secs(5), |s| s.unfinished.is_empty()).await;
    assert_eq!(
        s,
        Stored {
            blobs: set(&layers[..4]),
            snapshots: 4,
            unfinished: vec![],
        },
        "the 4 verified layers stay; config, corrupt layer and temp files go"
    );
    proxy.reset();
    pull(&d, &image).await.expect("the retry succeeds");
    let gets = set(&proxy.blob_gets());
    let fetched: BTreeSet<String> = set(&layers)
        .into_iter()
        .chain([config.clone()])
        .filter(|digest| gets.iter().any(|path| path.ends_with(digest.as_str())))
        .collect();
    assert_eq!(
        fetched,
        set(&[layers[4].clone(), config]),
        "the retry fetches only the config and the broken layer: {gets:?}"
    );
}

#[tokio::test]
async fn kept_layers_are_collected_when_the_grace_ends() {
    let proxy = FaultProxy::private(&registries());
    let (d, _, _, layers) = failed_pull(&proxy, "  failed_pull_grace: 3s\n").await;
    let kept = stored(&d);
    assert_eq!(kept.blobs, set(&layers[..4]), "kept during the grace");
    let s = wait_stored(&d, Duration::from_secs(10), |s| {
        s.blobs.is_empty() && s.snapshots == 0
    })
    .await;
    assert_eq!(
        s,
        Stored {
            blobs: BTreeSet::new(),
            snapshots: 0,
            unfinished: vec![],
        },
        "collected after the grace"
    );
}

#[tokio::test]
async fn a_restart_collects_kept_layers() {
    let proxy = FaultProxy::private(&registries());
    let (mut d, _, _, layers) = failed_pull(&proxy, "").await;
    assert_eq!(stored(&d).blobs, set(&layers[..4]));
    d.kill9();
    d.restart();
    let s = stored(&d);
    assert!(
        s.blobs.is_empty() && s.snapshots == 0,
        "startup collects what no image references: {s:?}"
    );
}

#[tokio::test]
async fn a_cancelled_pull_leaves_only_the_layers_it_completed() {
    let r = registries();
    let proxy = FaultProxy::private(&r);
    let (_, layers) = manifest(&r, "test/layered", "gzip");
    // The big bottom layer stalls; the four small ones complete; the deadline cancels the pull.
    proxy.set(&format!(
        r#"{{"mode": "stall", "stall_seconds": 60, "digest": "{}"}}"#,
        layers[0]
    ));
    let d = daemon(&proxy, "  max_concurrent_downloads: 5\n");
    let mut cri = d.client().await;
    let mut req = tonic::Request::new(request(&format!("{}/test/layered:gzip", proxy.addr)));
    req.set_timeout(Duration::from_secs(4));
    let err = cri.image.pull_image(req).await.unwrap_err();
    let client_side = err.code() == tonic::Code::Cancelled && err.message().contains("Timeout");
    assert!(
        err.code() == tonic::Code::DeadlineExceeded || client_side,
        "{err:?}"
    );
    let s = wait_stored(&d, Duration::from_secs(5), |s| {
        s.unfinished.is_empty() && s.blobs.len() <= 4
    })
    .await;
    assert_eq!(
        s,
        Stored {
            blobs: set(&layers[1..]),
            snapshots: 4,
            unfinished: vec![],
        },
        "the config and the stalled layer's partial data are gone"
    );
}

/// How many pulled blobs and snapshots berthd's database marks unflushed (berthd not running).
fn unflushed_marks(d: &Daemon) -> usize {
    let db = berth::store::Store::open(&d.dir.path().join("root/meta.redb")).expect("open");
    let marks: Vec<(String, serde_json::Value)> = db
        .read(|r| r.list(berth::store::Table::Unflushed))
        .expect("read the unflushed marks");
    marks.len()
}

#[tokio::test]
async fn a_berthd_killed_right_after_a_pull_keeps_the_image_and_flushes_it_at_start() {
    let r = registries();
    let mut d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    let image = format!("{}/library/busybox:latest", r.plain);
    // The flush runs after the pull replies. Dirty data on the filesystem makes its syncfs
    // slower than the kill that follows the reply; tried again should the flush win anyway.
    let mut marked = 0;
    for attempt in 0..5 {
        if attempt > 0 {
            d.restart();
            let req = api::RemoveImageRequest {
                image: Some(api::ImageSpec {
                    image: image.clone(),
                    ..Default::default()
                }),
            };
            d.client().await.image.remove_image(req).await.unwrap();
        }
        let dirty = vec![7u8; 64 << 20];
        std::fs::write(d.dir.path().join("dirty"), &dirty).unwrap();
        pull(&d, &image).await.unwrap();
        d.kill9();
        marked = unflushed_marks(&d);
        if marked > 0 {
            break;
        }
    }
    let _ = std::fs::remove_file(d.dir.path().join("dirty"));
    assert!(
        marked > 0,
        "the kill never came before the flush ended: {marked} marks"
    );
    d.restart();
    let mut cri = d.client().await;
    let pod = common::pods::run_pod(
        &mut cri,
        common::pods::pod_config("flushed", &d.dir.path().join("logs")),
    )
    .await;
    // The image is there and whole: its shell runs and reads the layer's files.
    let config = common::pods::container_config(
        "reader",
        &image,
        &["sh", "-c", "cat /bin/busybox /etc/passwd > /dev/null"],
    );
    let id = common::pods::start_container(&mut cri, &pod, config).await;
    let status = common::pods::wait_exited(&mut cri, &id).await;
    assert_eq!(status.exit_code, 0, "{status:?}");
    common::pods::remove_pod(&mut cri, &pod.id).await;
    drop(cri);
    d.kill9();
    assert_eq!(
        unflushed_marks(&d),
        0,
        "startup flushed and cleared the marks"
    );
}
