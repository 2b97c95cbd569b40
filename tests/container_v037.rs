//! Container behaviour kubelet 1.34–1.37 relies on, through berthd with the built-in executor:
//! environment values that are not UTF-8 reach the process (and its execs) byte for byte, and StopContainer sends
//! the CRI config's `stop_signal` (reported back in ContainerStatus). Root, local registry.

mod common;

use std::time::Duration;

use berth::cri::api;
use common::Daemon;
use common::pods::*;
use common::registry::registries;

fn daemon() -> (Daemon, String) {
    let r = registries();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    (d, format!("{}/library/busybox:latest", r.plain))
}

/// The container's log, once it contains `needle`.
async fn log_with(path: &std::path::Path, needle: &str) -> String {
    for _ in 0..100 {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(needle) {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} never contained {needle:?}: {:?}",
        path.display(),
        std::fs::read_to_string(path)
    );
}

#[tokio::test]
async fn non_utf8_env_values_reach_the_process_byte_for_byte() {
    let (d, image) = daemon();
    let mut cri = d.client().await;
    pull(&mut cri, &image).await;
    let logs = d.dir.path().join("logs");
    let pod = run_pod(&mut cri, pod_config("rawenv", &logs)).await;
    let mut config = container_config(
        "raw",
        &image,
        &["sh", "-c", "printf %s \"$RAW\" | od -An -tx1; echo done"],
    );
    config.envs = vec![
        api::KeyValue {
            key: "RAW".into(),
            value: b"\xff\xfeA".to_vec(),
        },
        api::KeyValue {
            key: "PLAIN".into(),
            value: b"ok".to_vec(),
        },
    ];
    let id = start_container(&mut cri, &pod, config).await;
    let status = wait_exited(&mut cri, &id).await;
    assert_eq!(status.exit_code, 0, "{status:?}");
    let log = log_with(&logs.join("raw/0.log"), "done").await;
    assert!(log.contains(" ff fe 41"), "{log}");

    // An exec in the container (kubectl exec, exec probes) gets the same bytes: it was given
    // process.env's U+FFFD copies before.
    let mut config = container_config("rawexec", &image, &["sleep", "600"]);
    config.envs = vec![api::KeyValue {
        key: "RAW".into(),
        value: b"\xff\xfeA".to_vec(),
    }];
    let id = start_container(&mut cri, &pod, config).await;
    let out = exec(
        &mut cri,
        &id,
        &["sh", "-c", "printf %s \"$RAW\" | od -An -tx1"],
        10,
    )
    .await
    .expect("ExecSync");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "ff fe 41",
        "exit {}: {stdout}",
        out.exit_code
    );
    stop_pod(&mut cri, &pod.id).await;
    remove_pod(&mut cri, &pod.id).await;
}

#[tokio::test]
async fn stop_container_sends_the_configured_stop_signal() {
    let (d, image) = daemon();
    let mut cri = d.client().await;
    pull(&mut cri, &image).await;
    let logs = d.dir.path().join("logs");
    let pod = run_pod(&mut cri, pod_config("stopsig", &logs)).await;
    let script = "trap 'echo got-usr1; exit 7' USR1; echo ready; while true; do sleep 0.1; done";
    let mut config = container_config("trapper", &image, &["sh", "-c", script]);
    config.stop_signal = api::Signal::Sigusr1 as i32;
    let id = start_container(&mut cri, &pod, config).await;
    log_with(&logs.join("trapper/0.log"), "ready").await;
    assert_eq!(
        status(&mut cri, &id).await.stop_signal,
        api::Signal::Sigusr1 as i32
    );
    cri.runtime
        .stop_container(api::StopContainerRequest {
            container_id: id.clone(),
            timeout: 20,
        })
        .await
        .expect("StopContainer");
    let s = status(&mut cri, &id).await;
    assert_eq!(s.exit_code, 7, "the trap ran, not a SIGKILL: {s:?}");
    log_with(&logs.join("trapper/0.log"), "got-usr1").await;

    // Without one, the status names the default (busybox's image sets no StopSignal): SIGTERM.
    let plain = start_container(
        &mut cri,
        &pod,
        container_config("plain", &image, &["sleep", "600"]),
    )
    .await;
    assert_eq!(
        status(&mut cri, &plain).await.stop_signal,
        api::Signal::Sigterm as i32
    );

    // A value outside the CRI enum is refused.
    let mut bad = container_config("bad", &image, &["true"]);
    bad.stop_signal = 999;
    let err = cri
        .runtime
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(bad),
            sandbox_config: Some(pod.config.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    stop_pod(&mut cri, &pod.id).await;
    remove_pod(&mut cri, &pod.id).await;
}
