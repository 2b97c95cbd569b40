//! Images and registries that attack berthd itself rather than the container: an image whose
//! /etc/passwd would hang or exhaust berthd, blobs larger than their descriptors say, a token
//! realm that would receive credentials in clear text. Each test serves the hostile content from
//! a registry it controls and checks that berthd refuses it quickly, with a clear error, without
//! its memory growing, and keeps answering. Root (pods); no shared registry needed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth::cri::api;
use common::Daemon;
use common::fake_registry::{FakeRegistry, Reply, image_config, peak_rss_kib, status_field};
use common::pods::{container_config, pod_config, pull, run_pod};

const MIB: u64 = 1024 * 1024;

fn daemon(registry: &FakeRegistry) -> Daemon {
    Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        registry.addr
    ))
}

/// An uncompressed tar layer: the directory `etc` plus whatever `add` appends.
fn layer(add: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    b.append_data(&mut dir, "etc", std::io::empty()).unwrap();
    add(&mut b);
    b.into_inner().unwrap()
}

fn node(b: &mut tar::Builder<Vec<u8>>, path: &str, kind: tar::EntryType, dev: (u32, u32)) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(0);
    h.set_device_major(dev.0).unwrap();
    h.set_device_minor(dev.1).unwrap();
    b.append_data(&mut h, path, std::io::empty()).unwrap();
}

/// Kills berthd if its resident memory passes `limit_kib`, so a test that would otherwise run
/// the node out of memory fails instead. Returns the flag that says it had to.
fn memory_watchdog(pid: u32, limit_kib: u64, done: Arc<AtomicBool>) -> Arc<AtomicBool> {
    let fired = Arc::new(AtomicBool::new(false));
    let flag = fired.clone();
    std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                return;
            };
            let rss = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
            if rss > limit_kib {
                flag.store(true, Ordering::Relaxed);
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    fired
}

/// Pulls an image whose only layer is `layer` and whose USER is a name, creates a container of
/// it, and checks that CreateContainer fails fast naming /etc/passwd while berthd's memory stays
/// put and it keeps answering.
async fn hostile_passwd(name: &str, layer: Vec<u8>) {
    let registry = FakeRegistry::start(None).await;
    let layers = vec![layer];
    let image = registry.image(
        &format!("hostile/{name}"),
        "v1",
        &image_config(&layers, "nobody"),
        &layers,
    );
    let d = daemon(&registry);
    let mut cri = d.client().await;
    pull(&mut cri, &image).await;
    let pod = run_pod(&mut cri, pod_config(name, &d.dir.path().join("logs"))).await;
    let hwm_before = peak_rss_kib(d.pid());
    let rss_before = status_field(d.pid(), "VmRSS:");
    let done = Arc::new(AtomicBool::new(false));
    let killed = memory_watchdog(d.pid(), rss_before + 512 * 1024, done.clone());

    let req = api::CreateContainerRequest {
        pod_sandbox_id: pod.id.clone(),
        config: Some(container_config(name, &image, &["/bin/true"])),
        sandbox_config: Some(pod.config.clone()),
    };
    let started = Instant::now();
    let answer =
        tokio::time::timeout(Duration::from_secs(15), cri.runtime.create_container(req)).await;
    done.store(true, Ordering::Relaxed);
    assert!(
        !killed.load(Ordering::Relaxed),
        "{name}: berthd grew past 512 MiB reading the image's /etc/passwd"
    );
    let err = answer
        .unwrap_or_else(|_| panic!("{name}: CreateContainer hung on the image's /etc/passwd"))
        .expect_err("a hostile /etc/passwd is refused");
    assert_eq!(
        err.code(),
        tonic::Code::FailedPrecondition,
        "{name}: {err:?}"
    );
    assert!(err.message().contains("/etc/passwd"), "{name}: {err:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{name}: slow");
    let grown = peak_rss_kib(d.pid()) - hwm_before;
    assert!(grown < 16 * 1024, "{name}: peak RSS grew by {grown} KiB");
    let mut cri = d.client().await;
    cri.runtime
        .version(api::VersionRequest::default())
        .await
        .expect("berthd still answers");
}

#[tokio::test]
async fn passwd_fifo_does_not_block_berthd() {
    let layer = layer(|b| node(b, "etc/passwd", tar::EntryType::Fifo, (0, 0)));
    hostile_passwd("fifo", layer).await;
}

#[tokio::test]
async fn passwd_symlink_to_dev_zero_does_not_exhaust_berthd() {
    let layer = layer(|b| {
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        b.append_data(&mut dir, "dev", std::io::empty()).unwrap();
        node(b, "dev/zero", tar::EntryType::Char, (1, 5));
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        b.append_link(&mut link, "etc/passwd", "/dev/zero").unwrap();
    });
    hostile_passwd("devzero", layer).await;
}

#[tokio::test]
async fn passwd_as_a_device_node_is_not_opened() {
    let layer = layer(|b| node(b, "etc/passwd", tar::EntryType::Char, (1, 5)));
    hostile_passwd("chardev", layer).await;
}

#[tokio::test]
async fn huge_passwd_is_refused_without_reading_it() {
    let layer = layer(|b| {
        let size = 100 * MIB;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(size);
        let first = b"nobody:x:65534:65534::/:/bin/sh\n";
        let rest = std::io::Read::take(std::io::repeat(b'#'), size - first.len() as u64);
        let data = std::io::Read::chain(&first[..], rest);
        b.append_data(&mut h, "etc/passwd", data).unwrap();
    });
    hostile_passwd("huge", layer).await;
}

/// Pulls `image` while a watchdog keeps berthd under `limit_mib` more resident memory; returns
/// the pull's error and how much berthd's peak RSS grew, in KiB.
async fn pull_watched(d: &Daemon, image: &str, limit_mib: u64) -> (tonic::Status, u64) {
    let (pid, hwm) = (d.pid(), peak_rss_kib(d.pid()));
    let done = Arc::new(AtomicBool::new(false));
    let killed = memory_watchdog(
        pid,
        status_field(pid, "VmRSS:") + limit_mib * 1024,
        done.clone(),
    );
    let mut cri = d.client().await;
    let req = api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer = tokio::time::timeout(Duration::from_secs(30), cri.image.pull_image(req)).await;
    done.store(true, Ordering::Relaxed);
    assert!(
        !killed.load(Ordering::Relaxed),
        "{image}: berthd grew past {limit_mib} MiB"
    );
    let err = answer
        .unwrap_or_else(|_| panic!("{image}: the pull did not end"))
        .expect_err("the pull fails");
    let grown = peak_rss_kib(pid) - hwm;
    let mut cri = d.client().await;
    cri.runtime
        .version(api::VersionRequest::default())
        .await
        .expect("berthd still answers");
    (err, grown)
}

/// A manifest for `repo:tag` whose config descriptor says `config_size`, with one empty layer.
fn manifest_with_config(registry: &FakeRegistry, repo: &str, config_size: u64, config: Reply) {
    let layers = vec![layer(|_| {})];
    let config_bytes = image_config(&layers, "");
    let name = registry.image(repo, "v1", &config_bytes, &layers);
    assert!(name.ends_with(":v1"));
    let config_digest = common::fake_registry::sha256(&config_bytes);
    registry.route(&format!("/v2/{repo}/blobs/{config_digest}"), config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": common::fake_registry::OCI_MANIFEST,
        "config": {
            "mediaType": common::fake_registry::OCI_CONFIG,
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": common::fake_registry::OCI_LAYER_TAR,
            "digest": common::fake_registry::sha256(&layers[0]),
            "size": layers[0].len(),
        }],
    });
    registry.route(
        &format!("/v2/{repo}/manifests/v1"),
        Reply::ok(
            common::fake_registry::OCI_MANIFEST,
            serde_json::to_vec(&manifest).unwrap(),
        ),
    );
}

#[tokio::test]
async fn blobs_larger_than_their_descriptor_are_cut_off() {
    let registry = FakeRegistry::start(None).await;
    let huge = |length| Reply::Zeros {
        len: 300 * MIB,
        content_type: "application/octet-stream",
        length,
    };
    // A config descriptor of size 0 promises an empty blob, not "any size".
    manifest_with_config(&registry, "hostile/zero-size-config", 0, huge(true));
    manifest_with_config(&registry, "hostile/small-config", 100, huge(false));
    let d = daemon(&registry);
    for repo in ["hostile/zero-size-config", "hostile/small-config"] {
        let image = format!("{}/{repo}:v1", registry.addr);
        let started = Instant::now();
        let (err, grown) = pull_watched(&d, &image, 200).await;
        assert!(
            err.message().contains("more than the")
                && err.message().contains("bytes the descriptor says"),
            "{repo}: {err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{repo}: slow");
        assert!(grown < 32 * 1024, "{repo}: peak RSS grew by {grown} KiB");
    }
}

#[tokio::test]
async fn huge_manifests_are_refused() {
    let registry = FakeRegistry::start(None).await;
    for (repo, length) in [
        ("hostile/huge-declared", true),
        ("hostile/huge-streamed", false),
    ] {
        registry.route(
            &format!("/v2/{repo}/manifests/v1"),
            Reply::Zeros {
                len: 300 * MIB,
                content_type: common::fake_registry::OCI_MANIFEST,
                length,
            },
        );
    }
    let d = daemon(&registry);
    for repo in ["hostile/huge-declared", "hostile/huge-streamed"] {
        let image = format!("{}/{repo}:v1", registry.addr);
        let (err, grown) = pull_watched(&d, &image, 200).await;
        assert_eq!(
            err.code(),
            tonic::Code::ResourceExhausted,
            "{repo}: {err:?}"
        );
        assert!(
            err.message().contains("larger than the 4194304 byte limit"),
            "{repo}: {err:?}"
        );
        assert!(grown < 32 * 1024, "{repo}: peak RSS grew by {grown} KiB");
    }
}

fn auth(server_address: &str) -> api::AuthConfig {
    api::AuthConfig {
        username: "alice".into(),
        password: "secret".into(),
        server_address: server_address.into(),
        ..Default::default()
    }
}

async fn pull_with(d: &Daemon, image: &str, auth: api::AuthConfig) -> tonic::Status {
    let mut cri = d.client().await;
    let req = api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        auth: Some(auth),
        sandbox_config: None,
    };
    cri.image.pull_image(req).await.expect_err("the pull fails")
}

#[tokio::test]
async fn credentials_never_go_to_a_plain_http_token_realm() {
    let realm = FakeRegistry::start(None).await;
    realm.route(
        "/token",
        Reply::ok("application/json", br#"{"token":"stolen"}"#.to_vec()),
    );
    let (tls, ca) = common::fake_registry::tls_with_ca();
    let registry = FakeRegistry::start(Some(tls)).await;
    let challenge = Reply::Body {
        status: 401,
        headers: vec![(
            "WWW-Authenticate".into(),
            format!(
                r#"Bearer realm="http://{}/token",service="fake""#,
                realm.addr
            ),
        )],
        body: Arc::new(vec![]),
    };
    registry.route("/v2/", challenge.clone());
    registry.route("/v2/secret/app/manifests/v1", challenge);
    let certs = tempfile::tempdir().unwrap();
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    ca_file: {}\n",
        registry.addr,
        ca_file.display()
    ));
    let image = format!("{}/secret/app:v1", registry.addr);
    let err = pull_with(&d, &image, auth("")).await;
    assert!(
        registry
            .seen()
            .iter()
            .any(|s| s.path.contains("/manifests/")),
        "the registry was asked over TLS: {:?}",
        registry.seen()
    );
    let leaked: Vec<_> = realm
        .seen()
        .into_iter()
        .filter(|s| s.authorization.is_some())
        .collect();
    assert!(leaked.is_empty(), "credentials sent over http: {leaked:?}");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("not https"), "{err:?}");
}

#[tokio::test]
async fn credentials_for_another_server_address_are_not_used() {
    let registry = FakeRegistry::start(None).await;
    let challenge = Reply::Body {
        status: 401,
        headers: vec![("WWW-Authenticate".into(), r#"Basic realm="fake""#.into())],
        body: Arc::new(vec![]),
    };
    registry.route("/v2/private/app/manifests/v1", challenge);
    let d = daemon(&registry);
    let image = format!("{}/private/app:v1", registry.addr);
    let err = pull_with(&d, &image, auth("https://other.example.com")).await;
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let sent = |seen: Vec<common::fake_registry::Seen>| {
        seen.into_iter()
            .filter(|s| s.authorization.is_some())
            .count()
    };
    assert_eq!(
        sent(registry.seen()),
        0,
        "credentials meant for another server were sent"
    );
    // The same credentials for this registry (with or without a scheme) are presented.
    for address in [format!("http://{}", registry.addr), registry.addr.clone()] {
        let before = sent(registry.seen());
        pull_with(&d, &image, auth(&address)).await;
        assert!(
            sent(registry.seen()) > before,
            "{address}: credentials not presented"
        );
    }
}
