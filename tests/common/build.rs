//! Helpers for `berth build` tests: a daemon that reaches the local test registry, a build
//! through the admin API, and a container run of the built image.

use std::path::Path;

use berth::client::proto::BuildRequest;
use berth::cri::api;

use super::Daemon;
use super::pods::{container_config, pod_config, run_pod, start_container, wait_exited};
use super::registry::registries;

/// A daemon allowed to pull from the local registry, and the busybox base image there.
pub fn daemon() -> (Daemon, String) {
    let r = registries();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    (d, format!("{}/library/busybox:latest", r.plain))
}

/// Builds; returns (lines, image id) or the error status.
pub async fn build(
    d: &Daemon,
    context: &Path,
    tags: &[&str],
    args: &[(&str, &str)],
    target: &str,
) -> Result<(Vec<String>, String), tonic::Status> {
    let mut client = d.client().await;
    let request = BuildRequest {
        context: context.display().to_string(),
        dockerfile: String::new(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        target: target.into(),
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        no_cache: false,
        network: String::new(),
    };
    let mut stream = client.images.build(request).await?.into_inner();
    let mut lines = Vec::new();
    while let Some(out) = stream.message().await? {
        if !out.image_id.is_empty() {
            return Ok((lines, out.image_id));
        }
        lines.push(out.line);
    }
    panic!("build stream ended without a result: {lines:#?}");
}

/// Runs `script` (or the image's own command when empty) in a container of `image`; returns
/// its output. The container must exit 0.
pub async fn run(d: &Daemon, image: &str, script: &str) -> String {
    let mut cri = d.client().await;
    let logs = d
        .dir
        .path()
        .join(format!("logs-{:08x}", rand::random::<u32>()));
    let pod = run_pod(&mut cri, pod_config("built", &logs)).await;
    let mut config = container_config("c", image, &[]);
    if !script.is_empty() {
        config.command = vec!["sh".into(), "-c".into(), script.into()];
    }
    let id = start_container(&mut cri, &pod, config).await;
    let status = wait_exited(&mut cri, &id).await;
    let log = std::fs::read_to_string(logs.join("c/0.log")).unwrap_or_default();
    assert_eq!(status.exit_code, 0, "{status:?} {log}");
    let req = api::RemovePodSandboxRequest {
        pod_sandbox_id: pod.id,
    };
    let _ = cri.runtime.remove_pod_sandbox(req).await;
    log.lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .collect::<Vec<_>>()
        .join("\n")
}
