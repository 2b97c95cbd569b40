//! `berth tag` and `berth push` against the real local registries (`hack/registry.sh start`):
//! only missing blobs go over the wire (counted by a fault proxy of this test's own in front of
//! the plain registry), cross-repository mounts, the TLS registry with Basic auth, and a pull of
//! the pushed image on a fresh data dir that runs it. Needs root and `hack/testimages/build.sh`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::client::proto::{PushRequest, PushResult, TagRequest};
use berth::cri::api;
use common::Daemon;
use common::pods::{container_config, pod_config, pull, run_pod, start_container, wait_exited};
use common::registry::{Registries, http, registries};

/// A fault proxy (mode none) of this test alone, so its request log is this test's.
struct CountingProxy {
    addr: String,
    child: Child,
}

impl CountingProxy {
    fn start(upstream: &str) -> CountingProxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/faultproxy.py");
        let child = Command::new("python3")
            .args([script, "--listen", &addr, "--upstream"])
            .arg(format!("http://{upstream}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start hack/faultproxy.py with python3");
        let deadline = Instant::now() + Duration::from_secs(10);
        while http(&addr, "GET", "/__fault/state", "").is_err() {
            assert!(
                Instant::now() < deadline,
                "faultproxy on {addr} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        CountingProxy { addr, child }
    }

    /// (method, path, status) of every registry request seen, oldest first.
    fn log(&self) -> Vec<(String, String, u64)> {
        let (_, body) = http(&self.addr, "GET", "/__fault/log", "").expect("proxy log");
        let entries: Vec<serde_json::Value> = serde_json::from_str(&body).expect("JSON log");
        entries
            .iter()
            .map(|e| {
                (
                    e["method"].as_str().unwrap_or("").to_string(),
                    e["path"].as_str().unwrap_or("").to_string(),
                    e["status"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn daemon(r: &Registries, proxy: &str) -> Daemon {
    Daemon::start(&format!(
        "registries:\n  \"{plain}\":\n    insecure: true\n  \"{proxy}\":\n    insecure: true\n  \"{tls}\":\n    ca_file: {ca}\n",
        plain = r.plain,
        tls = r.tls,
        ca = r.ca.display(),
    ))
}

async fn push(
    d: &Daemon,
    image: &str,
    dest: &str,
    creds: Option<(&str, &str)>,
) -> Result<(PushResult, Vec<String>), tonic::Status> {
    let mut client = d.client().await;
    let (username, password) = creds.unwrap_or_default();
    let request = PushRequest {
        image: image.into(),
        destination: dest.into(),
        username: username.into(),
        password: password.into(),
    };
    let mut stream = client.images.push(request).await?.into_inner();
    while let Some(progress) = stream.message().await? {
        if let Some(result) = progress.result {
            let states = progress.blobs.iter().map(|b| b.state.clone()).collect();
            return Ok((result, states));
        }
    }
    panic!("push stream ended without a result");
}

async fn tag(d: &Daemon, source: &str, target: &str) -> Result<String, tonic::Status> {
    let mut client = d.client().await;
    let request = TagRequest {
        source: source.into(),
        target: target.into(),
    };
    Ok(client.images.tag(request).await?.into_inner().id)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// Blob upload requests (POST starting one, PATCH/PUT sending bytes) in `log`.
fn uploads(log: &[(String, String, u64)]) -> Vec<String> {
    log.iter()
        .filter(|(m, p, _)| m != "HEAD" && m != "GET" && p.contains("/blobs/uploads/"))
        .map(|(m, p, s)| format!("{m} {p} -> {s}"))
        .collect()
}

#[tokio::test]
async fn push_sends_only_missing_blobs_mounts_across_repositories_and_pulls_back() {
    let r = registries();
    let proxy = CountingProxy::start(&r.plain);
    let a = daemon(&r, &proxy.addr);
    let source = format!("{}/library/busybox:latest", r.plain);
    let mut cri = a.client().await;
    let id = pull(&mut cri, &source).await;

    let repo = unique("push-test/busybox");
    let name = format!("{}/{repo}:v1", proxy.addr);
    assert_eq!(tag(&a, &source, &name).await.unwrap(), id);
    let err = tag(&a, &source, &format!("{name}@sha256:{}", "a".repeat(64)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let err = tag(&a, "no/such:image", &name).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");

    // First push: every blob is new to this repository, so every blob is uploaded.
    let (first, states) = push(&a, &name, "", None).await.unwrap();
    let blobs = states.len();
    assert!(blobs >= 2, "config and at least one layer: {states:?}");
    assert_eq!(first.uploaded as usize, blobs, "{first:?}");
    assert!(states.iter().all(|s| s == "pushed"), "{states:?}");
    let log = proxy.log();
    let puts = log
        .iter()
        .filter(|(m, p, s)| m == "PUT" && p.contains("/blobs/uploads/") && *s == 201)
        .count();
    assert_eq!(puts, blobs, "one upload per blob: {:?}", uploads(&log));
    let manifest_puts: Vec<_> = log
        .iter()
        .filter(|(m, p, _)| m == "PUT" && p.ends_with(&format!("{repo}/manifests/v1")))
        .collect();
    assert_eq!(manifest_puts.len(), 1, "{log:?}");
    assert_eq!(manifest_puts[0].2, 201);

    // Second push: HEAD finds every blob; not one upload starts.
    let seen = log.len();
    let (second, states) = push(&a, &name, "", None).await.unwrap();
    assert_eq!(second.uploaded, 0, "{second:?}");
    assert_eq!(second.digest, first.digest);
    assert!(states.iter().all(|s| s == "exists"), "{states:?}");
    let log = proxy.log();
    assert_eq!(uploads(&log[seen..]), Vec::<String>::new(), "no blob sent");
    let heads = log[seen..]
        .iter()
        .filter(|(m, _, s)| m == "HEAD" && *s == 200);
    assert_eq!(heads.count(), blobs);

    // Another repository on the same registry: blobs are mounted from the first one.
    let seen = log.len();
    let other = format!("{}/{}:v2", proxy.addr, unique("push-test/mounted"));
    let (mounted, states) = push(&a, &name, &other, None).await.unwrap();
    assert_eq!(mounted.uploaded, 0, "{mounted:?}");
    assert!(states.iter().all(|s| s == "mounted"), "{states:?}");
    let log = proxy.log();
    let sent = uploads(&log[seen..]);
    assert_eq!(sent.len(), blobs, "{sent:?}");
    assert!(
        sent.iter().all(|u| u.starts_with("POST")
            && u.contains(&format!("from={}", repo.replace('/', "%2F")))
            && u.ends_with("201")),
        "{sent:?}"
    );

    // The pushed image pulls on a fresh data dir and runs there.
    drop(cri);
    let b = daemon(&r, &proxy.addr);
    let mut cri = b.client().await;
    let pulled = format!("{}/{repo}:v1", r.plain);
    assert_eq!(pull(&mut cri, &pulled).await, id, "same image id");
    let logs = b.dir.path().join("logs");
    let pod = run_pod(&mut cri, pod_config("pushed", &logs)).await;
    let config = container_config("hello", &pulled, &["sh", "-c", "echo pushed-image-runs"]);
    let container = start_container(&mut cri, &pod, config).await;
    let status = wait_exited(&mut cri, &container).await;
    assert_eq!(status.exit_code, 0, "{status:?}");
    let log = std::fs::read_to_string(logs.join("hello/0.log")).expect("container log");
    assert!(log.contains("pushed-image-runs"), "{log}");
    let req = api::RemovePodSandboxRequest {
        pod_sandbox_id: pod.id,
    };
    let _ = cri.runtime.remove_pod_sandbox(req).await;
}

#[tokio::test]
async fn push_to_the_tls_registry_needs_its_credentials() {
    let r = registries();
    let a = daemon(&r, &r.proxy);
    let source = format!("{}/library/busybox:latest", r.plain);
    let mut cri = a.client().await;
    let id = pull(&mut cri, &source).await;
    let dest = format!("{}/{}:v1", r.tls, unique("push-test/tls"));

    let err = push(&a, &source, &dest, None).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let err = push(&a, &source, &dest, Some((&r.user, "wrong")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");

    let creds = Some((r.user.as_str(), r.password.as_str()));
    let (first, _) = push(&a, &source, &dest, creds).await.unwrap();
    assert!(first.uploaded > 0, "{first:?}");
    let (second, states) = push(&a, &source, &dest, creds).await.unwrap();
    assert_eq!(second.uploaded, 0, "{second:?}");
    assert!(states.iter().all(|s| s == "exists"), "{states:?}");

    // Pulled back over TLS with the credentials on a fresh node: the same image.
    let b = daemon(&r, &r.proxy);
    let mut cri = b.client().await;
    let req = api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: dest.clone(),
            ..Default::default()
        }),
        auth: Some(api::AuthConfig {
            username: r.user.clone(),
            password: r.password.clone(),
            ..Default::default()
        }),
        sandbox_config: None,
    };
    let pulled = cri.image.pull_image(req).await.unwrap().into_inner();
    assert_eq!(pulled.image_ref, id);
}

#[tokio::test]
async fn the_cli_prints_one_line_per_blob_and_the_result() {
    let r = registries();
    let a = daemon(&r, &r.proxy);
    let source = format!("{}/library/busybox:latest", r.plain);
    let mut cri = a.client().await;
    pull(&mut cri, &source).await;
    let dest = format!("{}/{}:cli", r.plain, unique("push-test/cli"));
    let berth = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--socket")
            .arg(&a.socket)
            .args(args)
            .output()
            .expect("run berth")
    };
    let tagged = berth(&["tag", &source, &dest]);
    assert!(tagged.status.success(), "{tagged:?}");
    let out = berth(&["push", &dest]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(&format!("{dest}: pushed sha256:")),
        "{stdout}"
    );
    let again = berth(&["push", &dest]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(stdout.contains("(0 blob(s) uploaded)"), "{stdout}");
    let missing = berth(&["push", "no/such:image"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("no such image"), "{stderr}");
}
