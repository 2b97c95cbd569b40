//! A decompression bomb on a small data filesystem: unpacking stops before the free space falls
//! below `image.disk_reserve`, the pull fails with ResourceExhausted naming the reserve, and the
//! partial data is gone within 5 s. Needs root (it mounts a tmpfs as berthd's root dir).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth::cri::api;
use common::Daemon;
use common::fake_registry::{FakeRegistry, OCI_CONFIG, OCI_MANIFEST, Reply, sha256};
use common::host::{Tmpfs, mount_tmpfs};

const MIB: u64 = 1024 * 1024;
/// The data filesystem's size.
const FS_SIZE: u64 = 64 * MIB;
/// What the bomb unpacks to: four times the filesystem.
const BOMB_SIZE: u64 = 256 * MIB;

/// Available bytes on the filesystem holding `path`, as kubelet counts them.
fn available(path: &Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(path).expect("statvfs");
    s.blocks_available() * s.fragment_size()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A gzip layer of one file of [`BOMB_SIZE`] zero bytes: gzip members of 1 MiB of zeros each
/// (a gzip stream may be a series of members), about 1 KiB apiece.
fn bomb() -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_path("bomb").unwrap();
    header.set_size(BOMB_SIZE);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = gzip(header.as_bytes());
    let zeros = gzip(&vec![0u8; MIB as usize]);
    for _ in 0..BOMB_SIZE / MIB {
        out.extend_from_slice(&zeros);
    }
    out.extend_from_slice(&gzip(&[0u8; 1024]));
    out
}

/// Serves `repo:latest` with the bomb as its only layer; returns the image name.
fn serve_bomb(registry: &FakeRegistry, repo: &str) -> String {
    let layer = bomb();
    assert!(
        layer.len() < (MIB as usize),
        "the bomb is small: {}",
        layer.len()
    );
    let layer_digest = sha256(&layer);
    // The diff id is never reached: the unpack fails first.
    let config = common::fake_registry::image_config(&[b"bomb".to_vec()], "");
    let config_digest = sha256(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest, "size": layer.len(),
        }],
    });
    registry.route(
        &format!("/v2/{repo}/blobs/{config_digest}"),
        Reply::ok("application/octet-stream", config),
    );
    registry.route(
        &format!("/v2/{repo}/blobs/{layer_digest}"),
        Reply::ok("application/octet-stream", layer),
    );
    registry.route(
        &format!("/v2/{repo}/manifests/latest"),
        Reply::ok(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap()),
    );
    format!("{}/{repo}:latest", registry.addr)
}

/// Staging dirs and ingest files under `root`.
fn partial_data(root: &Path) -> Vec<String> {
    let mut out = vec![];
    for dir in [root.join("snapshots"), root.join("content/ingest")] {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            out.push(e.path().display().to_string());
        }
    }
    out
}

#[tokio::test]
async fn a_decompression_bomb_stops_at_the_disk_reserve_and_its_data_is_gone_within_5s() {
    let registry = FakeRegistry::start(None).await;
    let image = serve_bomb(&registry, "bomb");
    let mut root = PathBuf::new();
    let d = Daemon::start_with(
        |dir| {
            root = dir.join("root");
            mount_tmpfs(&root, &FS_SIZE.to_string());
        },
        &format!(
            "registries:\n  \"{}\":\n    insecure: true\nimage:\n  disk_reserve: 15%\n",
            registry.addr
        ),
    );
    let _unmount = Tmpfs(root.clone());
    let d = d;
    // The default reserve (15% of the filesystem), which tests elsewhere lower to 1%.
    let reserve = FS_SIZE * 15 / 100;
    let before = available(&root);
    assert!(
        before > reserve + 32 * MIB,
        "tmpfs is nearly empty: {before}"
    );

    // Watches the free space while the bomb goes off.
    let lowest = Arc::new(AtomicU64::new(u64::MAX));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (lowest, stop, root) = (lowest.clone(), stop.clone(), root.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                lowest.fetch_min(available(&root), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut cri = d.client().await;
    let req = api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: image.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = cri.image.pull_image(req).await.unwrap_err();
    let failed_at = Instant::now();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("image.disk_reserve: 15%"),
        "the message names the reserve: {err:?}"
    );

    // The partial layer goes at once: within 5 s the space is back.
    loop {
        let left = partial_data(&root);
        if left.is_empty() && available(&root) + 4 * MIB >= before {
            break;
        }
        assert!(
            failed_at.elapsed() < Duration::from_secs(5),
            "partial data still there 5 s after the failure: {left:?}, {} bytes free of {before}",
            available(&root)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let lowest = lowest.load(Ordering::Relaxed);
    assert!(
        lowest + MIB >= reserve,
        "free space fell to {lowest} bytes, below the {reserve}-byte reserve"
    );
    assert!(
        lowest < before / 2,
        "the bomb did write until near the reserve: lowest {lowest} of {before}"
    );
}
