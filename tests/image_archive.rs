//! `berth import`/`export` through berthd's admin Images service: an exported image imported on
//! a fresh daemon runs a container; a docker-save archive made by hand imports; hostile or
//! malformed archives fail with InvalidArgument and leave nothing behind (no image, blob,
//! snapshot or spooled upload, and nothing written outside the store). Needs root and, for the
//! busybox cases, `hack/registry.sh start`.

mod common;

use std::io::Read;

use berth::client::proto::{ExportRequest, ImportChunk, ImportedImage};
use berth::cri::api;
use common::Daemon;
use common::pods::{container_config, pod_config, pull, run_pod, start_container, wait_exited};
use common::registry::registries;
use sha2::Digest as _;

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

async fn export(d: &Daemon, images: &[&str], format: &str) -> Vec<u8> {
    let mut cri = d.client().await;
    let request = ExportRequest {
        images: images.iter().map(|s| s.to_string()).collect(),
        format: format.into(),
    };
    let mut stream = cri
        .transfer
        .export(request)
        .await
        .expect("Export")
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await.expect("export chunk") {
        out.extend_from_slice(&chunk.data);
    }
    out
}

async fn import(d: &Daemon, archive: &[u8]) -> Result<Vec<ImportedImage>, tonic::Status> {
    let mut cri = d.client().await;
    let chunks: Vec<ImportChunk> = archive
        .chunks(300_000)
        .map(|c| ImportChunk { data: c.to_vec() })
        .collect();
    let reply = cri.transfer.import(futures::stream::iter(chunks)).await?;
    Ok(reply.into_inner().images)
}

/// Runs `sh -c 'echo imported-ok'` from `image` on `d`; returns the exit code and the log.
async fn run_echo(d: &Daemon, image: &str) -> (i32, String) {
    let mut cri = d.client().await;
    let logs = d.dir.path().join("logs");
    let pod = run_pod(&mut cri, pod_config("imported", &logs)).await;
    let config = container_config("echo", image, &["sh", "-c", "echo imported-ok"]);
    let id = start_container(&mut cri, &pod, config).await;
    let status = wait_exited(&mut cri, &id).await;
    let log = std::fs::read_to_string(logs.join("echo/0.log")).unwrap_or_default();
    (status.exit_code, log)
}

async fn image_names(d: &Daemon) -> Vec<(String, Vec<String>)> {
    let mut cri = d.client().await;
    let req = api::ListImagesRequest { filter: None };
    let images = cri
        .image
        .list_images(req)
        .await
        .unwrap()
        .into_inner()
        .images;
    images.into_iter().map(|i| (i.id, i.repo_tags)).collect()
}

/// Every file under the daemon's content store and snapshot dirs.
fn stored_files(d: &Daemon) -> Vec<String> {
    let root = d.dir.path().join("root");
    let mut out = Vec::new();
    for dir in ["content/blobs/sha256", "content/ingest", "snapshots"] {
        for e in std::fs::read_dir(root.join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(format!("{dir}/{}", e.file_name().to_string_lossy()));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn exported_image_imported_on_a_fresh_daemon_runs_a_container() {
    let r = registries();
    let a = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    let image = format!("{}/library/busybox:latest", r.plain);
    let id = pull(&mut a.client().await, &image).await;
    for format in ["oci", "docker"] {
        let archive = export(&a, &[&image], format).await;
        let files = tar_files(&archive);
        assert!(files.contains(&"index.json".to_string()), "{files:?}");
        assert_eq!(
            files.contains(&"manifest.json".to_string()),
            format == "docker",
            "{files:?}"
        );
        // A fresh daemon that knows no registry at all.
        let b = Daemon::start("");
        let imported = import(&b, &archive).await.expect("import");
        assert_eq!(imported.len(), 1, "{imported:?}");
        assert_eq!(imported[0].id, id);
        assert_eq!(imported[0].repo_tags, vec![image.clone()]);
        assert_eq!(
            image_names(&b).await,
            vec![(id.clone(), vec![image.clone()])]
        );
        let (code, log) = run_echo(&b, &image).await;
        assert_eq!(code, 0, "{format}: {log}");
        assert!(log.contains("stdout F imported-ok"), "{format}: {log:?}");
    }
    let err = import(&a, b"").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let mut cri = a.client().await;
    let request = ExportRequest {
        images: vec!["no.such/image:1".into()],
        format: String::new(),
    };
    let Err(err) = cri.transfer.export(request).await else {
        panic!("export of an unknown image succeeded");
    };
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
}

/// The upload is spooled to disk before it is read: it stops at `image.max_import_bytes` and
/// at the disk reserve, with ResourceExhausted naming the key, and leaves nothing behind.
#[tokio::test]
async fn the_import_spool_is_capped_and_keeps_the_disk_reserve() {
    let r = registries();
    let a = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut a.client().await, &image).await;
    let archive = export(&a, &[&image], "oci").await;
    let small = Daemon::start("image:\n  max_import_bytes: 65536\n");
    let err = import(&small, &archive).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("image.max_import_bytes"), "{err:?}");
    assert_eq!(stored_files(&small), Vec::<String>::new());
    // berthd's data on a 16 MiB tmpfs with a 60% reserve: the first 8 MiB of spool do not fit.
    let mut root = std::path::PathBuf::new();
    let full = Daemon::start_with(
        |dir| {
            root = dir.join("root");
            std::fs::create_dir_all(&root).unwrap();
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
                .arg(&root)
                .status()
                .unwrap();
            assert!(status.success(), "mount a tmpfs (needs root)");
        },
        "image:\n  disk_reserve: 60%\n",
    );
    let unmount = scopeguard(root.clone());
    let err = import(&full, &archive).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("image.disk_reserve"), "{err:?}");
    assert_eq!(stored_files(&full), Vec::<String>::new());
    assert!(image_names(&full).await.is_empty());
    drop(full);
    drop(unmount);
}

/// Unmounts a tmpfs on drop.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn scopeguard(path: std::path::PathBuf) -> Unmount {
    Unmount(path)
}

/// A docker-save archive as Docker before version 25 wrote it: `<id>/layer.tar` (uncompressed),
/// `<id>/VERSION`, `<id>/json`, `<config hex>.json`, `manifest.json` and `repositories`.
#[tokio::test]
async fn docker_save_archive_made_by_hand_imports_and_runs() {
    let r = registries();
    let a = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    let id = pull(
        &mut a.client().await,
        &format!("{}/library/busybox:latest", r.plain),
    )
    .await;
    // busybox's config and its one layer, decompressed, straight from daemon a's store.
    let blobs = a.dir.path().join("root/content/blobs/sha256");
    let config = std::fs::read(blobs.join(&id[7..])).unwrap();
    let mut layer = Vec::new();
    for e in std::fs::read_dir(&blobs).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut layer)
                .unwrap();
        }
    }
    assert!(!layer.is_empty(), "busybox's layer blob");
    let layer_id = &sha256(&layer)[7..];
    let name = "example.test/handmade:v1";
    let manifest = serde_json::json!([{
        "Config": format!("{}.json", &id[7..]),
        "RepoTags": [name],
        "Layers": [format!("{layer_id}/layer.tar")],
    }]);
    let repositories = serde_json::json!({"example.test/handmade": {"v1": layer_id}});
    let archive = tar_of(&[
        (&format!("{layer_id}/VERSION"), b"1.0".to_vec()),
        (&format!("{layer_id}/json"), br#"{"id":"x"}"#.to_vec()),
        (&format!("{layer_id}/layer.tar"), layer),
        (&format!("{}.json", &id[7..]), config),
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ("repositories", serde_json::to_vec(&repositories).unwrap()),
    ]);
    let b = Daemon::start("");
    let imported = import(&b, &archive)
        .await
        .expect("import a docker-save archive");
    assert_eq!(imported.len(), 1);
    assert_eq!(
        (imported[0].id.as_str(), imported[0].repo_tags.as_slice()),
        (id.as_str(), &[name.to_string()][..])
    );
    let (code, log) = run_echo(&b, name).await;
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("stdout F imported-ok"), "{log:?}");
}

/// A tiny OCI layout: one image (`example.test/tiny:1`) whose layer holds `hello.txt`.
struct Tiny {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
    index: Vec<u8>,
}

fn tiny(layer: Vec<u8>) -> Tiny {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": sha256(&manifest), "size": manifest.len(),
                       "annotations": {"io.containerd.image.name": "example.test/tiny:1"}}],
    }))
    .unwrap();
    Tiny {
        layer,
        config,
        manifest,
        index,
    }
}

impl Tiny {
    /// The layout's entries; `layer_entry` replaces the layer blob's (name, type, data, link).
    fn entries(&self) -> Vec<Raw> {
        let blob = |b: &[u8]| format!("blobs/sha256/{}", &sha256(b)[7..]);
        vec![
            Raw::file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            Raw::file(&blob(&self.config), &self.config),
            Raw::file(&blob(&self.manifest), &self.manifest),
            Raw::file(&blob(&self.layer), &self.layer),
            Raw::file("index.json", &self.index),
        ]
    }

    fn layer_path(&self) -> String {
        format!("blobs/sha256/{}", &sha256(&self.layer)[7..])
    }
}

/// One tar entry written byte by byte, so tests can write what `tar::Builder` refuses to.
#[derive(Clone)]
struct Raw {
    name: Vec<u8>,
    kind: tar::EntryType,
    data: Vec<u8>,
    link: Vec<u8>,
    /// The size the header claims (defaults to the data's).
    size: Option<u64>,
}

impl Raw {
    fn file(name: &str, data: &[u8]) -> Raw {
        Raw {
            name: name.into(),
            kind: tar::EntryType::Regular,
            data: data.to_vec(),
            link: vec![],
            size: None,
        }
    }
    fn link(name: &str, kind: tar::EntryType, target: &str) -> Raw {
        Raw {
            name: name.into(),
            kind,
            data: vec![],
            link: target.into(),
            size: None,
        }
    }
}

fn raw_tar(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..e.name.len()].copy_from_slice(&e.name);
        h.as_old_mut().linkname[..e.link.len()].copy_from_slice(&e.link);
        h.set_entry_type(e.kind);
        h.set_size(e.size.unwrap_or(e.data.len() as u64));
        h.set_mode(0o644);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    raw_tar(
        &files
            .iter()
            .map(|(n, d)| Raw::file(n, d))
            .collect::<Vec<_>>(),
    )
}

fn tar_files(archive: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(archive);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[tokio::test]
async fn hostile_archives_are_refused_and_leave_nothing() {
    let d = Daemon::start("");
    let outside = d.dir.path().join("escaped");
    let good = tiny(tar_of(&[("hello.txt", b"hi\n".to_vec())]));
    let with = |extra: Raw| {
        let mut e = good.entries();
        e.insert(1, extra);
        raw_tar(&e)
    };
    let replacing_layer = |layer: Raw| {
        let mut e = good.entries();
        e[3] = layer;
        raw_tar(&e)
    };
    let escaping_layer = tiny(raw_tar(&[
        Raw::file("ok.txt", b"fine"),
        Raw::file(&format!("../../../../../..{}", outside.display()), b"pwned"),
    ]));
    let wrong_bytes = {
        let mut e = good.entries();
        e[3].data = tar_of(&[("hello.txt", b"HI\n".to_vec())]);
        raw_tar(&e)
    };
    let truncated = {
        let full = raw_tar(&good.entries());
        full[..full.len() - 1024 - 600].to_vec()
    };
    let lying_size = with(Raw {
        size: Some(1 << 40),
        ..Raw::file("big", b"")
    });
    // Two images: the first is fine, the second's layer is missing; neither may be imported.
    let two_images = {
        let second = tiny(tar_of(&[("other.txt", b"x".to_vec())]));
        let mut index: serde_json::Value = serde_json::from_slice(&good.index).unwrap();
        let second_index: serde_json::Value = serde_json::from_slice(&second.index).unwrap();
        let mut entry = second_index["manifests"][0].clone();
        entry["annotations"]["io.containerd.image.name"] = "example.test/second:1".into();
        index["manifests"].as_array_mut().unwrap().push(entry);
        let mut e = good.entries();
        e.pop();
        for s in second.entries().into_iter().skip(1).take(2) {
            e.push(s); // its config and manifest, not its layer
        }
        e.push(Raw::file(
            "index.json",
            &serde_json::to_vec(&index).unwrap(),
        ));
        raw_tar(&e)
    };
    // A docker archive whose config file is named by a digest its bytes do not have.
    let lying_config = {
        let other = format!("{}.json", &sha256(b"something else")[7..]);
        let manifest = serde_json::json!([{"Config": other, "RepoTags": ["example.test/lie:1"],
                                           "Layers": ["l/layer.tar"]}]);
        tar_of(&[
            (&other, good.config.clone()),
            ("l/layer.tar", good.layer.clone()),
            ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ])
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "docker config named by another digest",
            lying_config,
            "digest mismatch",
        ),
        (
            "not a tar",
            b"GIF89a this is not a tarball at all".repeat(40),
            "archive",
        ),
        (
            "path with ..",
            with(Raw::file("../escape", b"x")),
            "unsafe path",
        ),
        (
            "absolute path",
            with(Raw::file("/tmp/escape", b"x")),
            "unsafe path",
        ),
        (
            "duplicate entry",
            with(Raw::file("index.json", b"{}")),
            "appears twice",
        ),
        (
            "layer blob is a symlink",
            replacing_layer(Raw::link(
                &good.layer_path(),
                tar::EntryType::Symlink,
                "/etc/shadow",
            )),
            "not a regular file",
        ),
        (
            "layer blob is a hard link",
            replacing_layer(Raw::link(
                &good.layer_path(),
                tar::EntryType::Link,
                "/etc/shadow",
            )),
            "not a regular file",
        ),
        (
            "layer bytes do not match their digest",
            wrong_bytes,
            "mismatch",
        ),
        (
            "layer climbs out with ..",
            raw_tar(&escaping_layer.entries()),
            "refused",
        ),
        ("truncated archive", truncated, "archive"),
        (
            "entry claims more bytes than the archive has",
            lying_size,
            "archive",
        ),
        (
            "index.json is not JSON",
            with_index(&good, b"{not json"),
            "malformed JSON",
        ),
        (
            "second image incomplete",
            two_images,
            "missing or not a regular file",
        ),
        (
            "neither layout",
            tar_of(&[("hello", b"x".to_vec())]),
            "neither an OCI image layout",
        ),
    ];
    let before = stored_files(&d);
    for (what, archive, message) in cases {
        let err = import(&d, &archive).await.expect_err(what);
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{what}: {err:?}");
        assert!(
            err.message().contains(message),
            "{what}: {:?} lacks {message:?}",
            err.message()
        );
        assert_eq!(image_names(&d).await, vec![], "{what}: no image recorded");
        assert_eq!(
            stored_files(&d),
            before,
            "{what}: nothing left in the store"
        );
        assert!(!outside.exists(), "{what}: wrote {}", outside.display());
    }
    // The same layout, intact, imports.
    let imported = import(&d, &raw_tar(&good.entries()))
        .await
        .expect("the intact layout");
    assert_eq!(
        imported[0].repo_tags,
        vec!["example.test/tiny:1".to_string()]
    );
    assert!(!outside.exists());
}

fn with_index(t: &Tiny, index: &[u8]) -> Vec<u8> {
    let mut e = t.entries();
    e[4] = Raw::file("index.json", index);
    raw_tar(&e)
}
