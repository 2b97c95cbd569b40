//! Pressure stall information in ContainerStats and PodSandboxStats through a real berthd: on a
//! cgroup v2 host (e2e/vm/suite.sh runs this in its guest) CPU, memory and IO pressure are there
//! for the container and for a pod with its own cgroup; on cgroup v1 they are left unset, never
//! reported as zeros. Root, local registry.

mod common;

use berth::cri::api;
use common::Daemon;
use common::host::CgroupParent;
use common::pods::*;
use common::registry::registries;

fn cgroup_v2_host() -> bool {
    let st = nix::sys::statfs::statfs("/sys/fs/cgroup").expect("statfs /sys/fs/cgroup");
    st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC
}

/// Whether CPU, memory and IO pressure are all present, or all absent; anything else fails.
fn pressure_present(cpu: Option<&api::CpuUsage>, mem: Option<&api::MemoryUsage>, io: bool) -> bool {
    let cpu = cpu.expect("cpu usage").psi.as_ref();
    let mem = mem.expect("memory usage").psi.as_ref();
    let all = [cpu.is_some(), mem.is_some(), io];
    assert!(all.iter().all(|p| *p == all[0]), "cpu, memory, io: {all:?}");
    if let (Some(cpu), Some(mem)) = (cpu, mem) {
        assert!(cpu.some.is_some() && mem.some.is_some() && mem.full.is_some());
    }
    all[0]
}

#[tokio::test]
async fn stats_carry_pressure_exactly_where_the_kernel_has_it() {
    let parent = CgroupParent::new("berth-psi");
    let r = registries();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    let image = format!("{}/library/busybox:latest", r.plain);
    let mut cri = d.client().await;
    pull(&mut cri, &image).await;
    let logs = d.dir.path().join("logs");
    let mut config = pod_config("psi", &logs);
    config.linux = Some(api::LinuxPodSandboxConfig {
        cgroup_parent: parent.0.clone(),
        ..Default::default()
    });
    let pod = run_pod(&mut cri, config).await;
    let ctr = container_config("spinner", &image, &["sh", "-c", "while :; do :; done"]);
    let id = start_container(&mut cri, &pod, ctr).await;

    let req = api::ContainerStatsRequest {
        container_id: id.clone(),
    };
    let stats = cri.runtime.container_stats(req).await.unwrap().into_inner();
    let c = stats.stats.expect("container stats");
    let container = pressure_present(c.cpu.as_ref(), c.memory.as_ref(), c.io.is_some());
    let req = api::PodSandboxStatsRequest {
        pod_sandbox_id: pod.id.clone(),
    };
    let stats = cri
        .runtime
        .pod_sandbox_stats(req)
        .await
        .unwrap()
        .into_inner();
    let linux = stats.stats.and_then(|s| s.linux).expect("pod stats");
    let pod_level = pressure_present(
        linux.cpu.as_ref(),
        linux.memory.as_ref(),
        linux.io.is_some(),
    );
    let v2 = cgroup_v2_host();
    assert_eq!(
        container, v2,
        "container pressure on a cgroup v2 host: {v2}"
    );
    assert_eq!(pod_level, v2, "pod pressure on a cgroup v2 host: {v2}");

    stop_pod(&mut cri, &pod.id).await;
    remove_pod(&mut cri, &pod.id).await;
}
