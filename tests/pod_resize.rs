//! UpdatePodSandboxResources (in-place pod resize) through a real berthd on this host's cgroups:
//! the pod cgroup gets resources plus overhead, the sandbox record keeps them across a berthd
//! restart, and bad requests get InvalidArgument, NotFound or FailedPrecondition. Root, local
//! registry; cgroup v1 on this host, cgroup v2 in e2e/vm/suite.sh's guest.

mod common;

use std::path::PathBuf;

use berth::client::CriClient;
use berth::cri::api;
use common::Daemon;
use common::host::{CgroupParent, cgroup_roots};
use common::pods::*;
use common::registry::registries;

const MIB: i64 = 1 << 20;

fn cgroup_v2_host() -> bool {
    let st = nix::sys::statfs::statfs("/sys/fs/cgroup").expect("statfs /sys/fs/cgroup");
    st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC
}

/// The pod cgroup's memory limit, CPU quota, CPU period and CPU weight as the kernel holds them,
/// from the v1 files or the v2 ones (v1 shares given as the v2 weight berth converts them to).
fn limits(parent: &str) -> (String, String, String, String) {
    if cgroup_v2_host() {
        let max = pod_file(parent, "cpu.max");
        let (quota, period) = max.split_once(' ').expect("cpu.max");
        let weight = pod_file(parent, "cpu.weight");
        (
            pod_file(parent, "memory.max"),
            quota.into(),
            period.into(),
            weight,
        )
    } else {
        let shares: u64 = pod_file(parent, "cpu.shares").parse().unwrap();
        (
            pod_file(parent, "memory.limit_in_bytes"),
            pod_file(parent, "cpu.cfs_quota_us"),
            pod_file(parent, "cpu.cfs_period_us"),
            berth::cgroup::shares_to_weight(shares).to_string(),
        )
    }
}

fn want(memory: i64, quota: &str, shares: u64) -> (String, String, String, String) {
    let weight = berth::cgroup::shares_to_weight(shares).to_string();
    (memory.to_string(), quota.into(), "100000".into(), weight)
}

/// The pod cgroup's `file`, read from whichever mounted hierarchy has it.
fn pod_file(parent: &str, file: &str) -> String {
    let paths: Vec<PathBuf> = cgroup_roots()
        .into_iter()
        .map(|root| root.join(parent.trim_start_matches('/')).join(file))
        .collect();
    let found = paths.iter().find(|p| p.exists());
    let path = found.unwrap_or_else(|| panic!("no hierarchy has {parent}/{file}: {paths:?}"));
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

fn res(quota: i64, shares: i64, memory: i64) -> api::LinuxContainerResources {
    api::LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: quota,
        cpu_shares: shares,
        memory_limit_in_bytes: memory,
        ..Default::default()
    }
}

async fn resize(
    cri: &mut CriClient,
    pod: &str,
    overhead: Option<api::LinuxContainerResources>,
    resources: Option<api::LinuxContainerResources>,
) -> Result<(), tonic::Status> {
    let req = api::UpdatePodSandboxResourcesRequest {
        pod_sandbox_id: pod.into(),
        overhead,
        resources,
    };
    cri.runtime.update_pod_sandbox_resources(req).await?;
    Ok(())
}

/// The `linux` part of the config berthd keeps for the pod (verbose PodSandboxStatus).
async fn kept_linux(cri: &mut CriClient, pod: &str) -> serde_json::Value {
    let req = api::PodSandboxStatusRequest {
        pod_sandbox_id: pod.into(),
        verbose: true,
    };
    let reply = cri.runtime.pod_sandbox_status(req).await.unwrap();
    let info: serde_json::Value = serde_json::from_str(&reply.into_inner().info["info"]).unwrap();
    info["config"]["linux"].clone()
}

#[tokio::test]
async fn a_pod_resize_reaches_the_pod_cgroup_and_survives_a_restart() {
    let parent = CgroupParent::new("berth-resize");
    let r = registries();
    let mut d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    let image = format!("{}/library/busybox:latest", r.plain);
    let mut cri = d.client().await;
    pull(&mut cri, &image).await;
    let logs = d.dir.path().join("logs");
    let mut config = pod_config("resize", &logs);
    config.linux = Some(api::LinuxPodSandboxConfig {
        cgroup_parent: parent.0.clone(),
        ..Default::default()
    });
    let pod = run_pod(&mut cri, config).await;
    let ctr = container_config("sleeper", &image, &["sleep", "600"]);
    start_container(&mut cri, &pod, ctr).await;

    resize(
        &mut cri,
        &pod.id,
        Some(res(10_000, 10, 8 * MIB)),
        Some(res(50_000, 512, 64 * MIB)),
    )
    .await
    .expect("UpdatePodSandboxResources");
    assert_eq!(limits(&parent.0), want(72 * MIB, "60000", 522));

    // A smaller pod: the limits go down too; the overhead given before still counts.
    resize(&mut cri, &pod.id, None, Some(res(20_000, 256, 48 * MIB)))
        .await
        .expect("shrink");
    assert_eq!(limits(&parent.0), want(56 * MIB, "30000", 266));
    let linux = kept_linux(&mut cri, &pod.id).await;
    assert_eq!(linux["resources"]["memory_limit_in_bytes"], 48 * MIB);
    assert_eq!(linux["overhead"]["memory_limit_in_bytes"], 8 * MIB);

    d.kill9();
    d.restart();
    let mut cri = d.client().await;
    let linux = kept_linux(&mut cri, &pod.id).await;
    assert_eq!(linux["resources"]["cpu_quota"], 20_000, "{linux}");
    assert_eq!(linux["overhead"]["cpu_shares"], 10, "{linux}");

    let bad = resize(&mut cri, &pod.id, None, Some(res(0, 0, -5))).await;
    let status = bad.expect_err("negative memory");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("memory_limit_in_bytes"),
        "{status:?}"
    );
    let status = resize(&mut cri, &pod.id, None, None).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(
        limits(&parent.0),
        want(56 * MIB, "30000", 266),
        "a refused request changes nothing"
    );
    let status = resize(&mut cri, &"e".repeat(64), None, Some(res(0, 2, 0)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    stop_pod(&mut cri, &pod.id).await;
    let status = resize(&mut cri, &pod.id, None, Some(res(0, 2, 0)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("not ready"), "{status:?}");
    remove_pod(&mut cri, &pod.id).await;
}

#[tokio::test]
async fn a_pod_without_its_own_cgroup_cannot_be_resized() {
    let d = Daemon::start("");
    let mut cri = d.client().await;
    let logs = d.dir.path().join("logs");
    let pod = run_pod(&mut cri, pod_config("shared-tree", &logs)).await;
    let status = resize(&mut cri, &pod.id, None, Some(res(50_000, 2, 64 * MIB)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("cgroup parent"), "{status:?}");
    stop_pod(&mut cri, &pod.id).await;
    remove_pod(&mut cri, &pod.id).await;
}
