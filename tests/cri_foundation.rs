//! berthd as kubelet and crictl first see it: Version, Status, RuntimeConfig, honest
//! Unimplemented answers, config errors before binding, and clean shutdown.

mod common;

use berth::cri::api;
use common::Daemon;

#[tokio::test]
async fn version_names_berth_and_cri_v1() {
    let daemon = Daemon::start("");
    let mut cri = daemon.client().await;
    let v = cri
        .runtime
        .version(api::VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.runtime_name, "berth");
    assert_eq!(v.runtime_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(v.runtime_api_version, "v1");
    assert_eq!(v.version, "0.1.0");
}

#[tokio::test]
async fn status_reports_runtime_ready_and_handlers() {
    let daemon = Daemon::start("runtime:\n  handlers:\n  - name: shell\n    path: /bin/sh\n");
    let mut cri = daemon.client().await;
    let s = cri
        .runtime
        .status(api::StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let conditions = s.status.unwrap().conditions;
    let ready = |t: &str| conditions.iter().find(|c| c.r#type == t).map(|c| c.status);
    assert_eq!(ready("RuntimeReady"), Some(true));
    // the harness gives every berthd a CNI network (tests/network.rs covers the not-ready case)
    assert_eq!(ready("NetworkReady"), Some(true));
    let names: Vec<_> = s.runtime_handlers.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        [""],
        "a handler that cannot run a container is not offered"
    );
    let config: serde_json::Value = serde_json::from_str(&s.info["config"]).unwrap();
    assert_eq!(
        config["grpc"]["socket"],
        daemon.socket.display().to_string()
    );
}

/// Whether this host can run the systemd cgroup driver: systemd as PID 1 on pure cgroup v2 (the
/// e2e/vm guest; CI's host is a hybrid container).
fn systemd_cgroup_host() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
        && berth::cgroup::Hierarchy::detect().is_ok_and(|h| h.mode() == berth::cgroup::Mode::V2)
}

#[tokio::test]
async fn runtime_config_reports_the_cgroup_driver() {
    for (yaml, driver) in [
        ("cgroup:\n  driver: cgroupfs\n", api::CgroupDriver::Cgroupfs),
        ("cgroup:\n  driver: systemd\n", api::CgroupDriver::Systemd),
    ] {
        if driver == api::CgroupDriver::Systemd && !systemd_cgroup_host() {
            continue; // the_systemd_driver_needs_systemd_on_cgroup_v2 covers this host
        }
        let daemon = Daemon::start(yaml);
        let mut cri = daemon.client().await;
        let r = cri
            .runtime
            .runtime_config(api::RuntimeConfigRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.linux.unwrap().cgroup_driver, driver as i32, "{yaml}");
    }
}

/// On a host without systemd or cgroup v2 berthd refuses the systemd driver before binding,
/// naming the key; on one with both it runs (`runtime_config_reports_the_cgroup_driver`).
#[test]
fn the_systemd_driver_needs_systemd_on_cgroup_v2() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("berth.sock");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "root_dir: {d}/root\nstate_dir: {d}/state\ngrpc:\n  socket: {s}\ncgroup:\n  driver: systemd\n",
            d = dir.path().display(),
            s = socket.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(common::berthd_path())
        .arg("--config")
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if systemd_cgroup_host() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !socket.exists() {
            assert!(child.try_wait().unwrap().is_none(), "berthd exited");
            assert!(std::time::Instant::now() < deadline, "no socket");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        return;
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cgroup.driver"),
        "stderr names the key: {stderr}"
    );
    assert!(stderr.contains("systemd"), "and says why: {stderr}");
    assert!(!socket.exists(), "no socket was bound");
}

#[tokio::test]
async fn checkpoint_rpcs_answer_unimplemented_naming_criu() {
    let daemon = Daemon::start("");
    let mut cri = daemon.client().await;
    let errors = [
        (
            "CheckpointContainer",
            cri.runtime
                .checkpoint_container(api::CheckpointContainerRequest::default())
                .await
                .unwrap_err(),
        ),
        (
            "CheckpointPod",
            cri.runtime
                .checkpoint_pod(api::CheckpointPodRequest::default())
                .await
                .unwrap_err(),
        ),
        (
            "RestorePod",
            cri.runtime
                .restore_pod(api::RestorePodRequest::default())
                .await
                .unwrap_err(),
        ),
    ];
    for (rpc, err) in errors {
        assert_eq!(err.code(), tonic::Code::Unimplemented, "{rpc}");
        assert!(err.message().starts_with(rpc), "{rpc}: {}", err.message());
        assert!(err.message().contains("CRIU"), "{rpc}: {}", err.message());
    }
}

#[tokio::test]
async fn update_runtime_config_records_the_pod_cidr_in_status_info() {
    let daemon = Daemon::start("");
    let mut cri = daemon.client().await;
    let pod_cidr = |cidr: &str| api::UpdateRuntimeConfigRequest {
        runtime_config: Some(api::RuntimeConfig {
            network_config: Some(api::NetworkConfig {
                pod_cidr: cidr.into(),
            }),
        }),
    };
    let reported = |s: api::StatusResponse| -> Vec<String> {
        serde_json::from_str(&s.info["podCIDR"]).expect("podCIDR is a JSON list")
    };
    let verbose = api::StatusRequest { verbose: true };
    let before = cri.runtime.status(verbose).await.unwrap().into_inner();
    assert!(reported(before).is_empty());

    cri.runtime
        .update_runtime_config(pod_cidr("10.244.3.0/24,fd00:10:244:3::/64"))
        .await
        .expect("UpdateRuntimeConfig");
    let after = cri.runtime.status(verbose).await.unwrap().into_inner();
    assert_eq!(reported(after), ["10.244.3.0/24", "fd00:10:244:3::/64"]);

    let err = cri
        .runtime
        .update_runtime_config(pod_cidr("10.244.3.0"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("10.244.3.0"), "{}", err.message());
}

#[test]
fn unknown_config_key_exits_nonzero_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("berth.sock");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("grpc:\n  socket: {}\n  colour: blue\n", socket.display()),
    )
    .unwrap();
    let out = std::process::Command::new(common::berthd_path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("colour"), "stderr names the key: {stderr}");
    assert!(!socket.exists(), "no socket was bound");
}

/// kubelet keeps a GetContainerEvents stream open for as long as it runs: SIGTERM must not wait
/// for it forever.
#[tokio::test]
async fn sigterm_stops_berthd_while_an_event_stream_is_open() {
    let daemon = Daemon::start("");
    let mut cri = daemon.client().await;
    let mut events = cri
        .runtime
        .get_container_events(api::GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let pid = daemon.pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // Exited: gone, or a zombie waiting for the harness to reap it.
    let exited = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit(") ")
                    .next()
                    .is_some_and(|rest| rest.starts_with('Z'))
            })
            .unwrap_or(true)
    };
    let started = std::time::Instant::now();
    while !exited() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "berthd still runs 15 s after SIGTERM, held by an open event stream"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!daemon.socket.exists());
    // The stream ends (or fails) rather than hanging.
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), events.message()).await;
    assert!(
        next.is_ok(),
        "the event stream still hangs after berthd stopped"
    );
}

#[test]
fn sigterm_shuts_down_cleanly_and_removes_the_socket() {
    // SIGTERM as soon as the socket answers, several times: the handler must be there before
    // the socket is (a SIGTERM in between once killed berthd with the default action).
    for round in 0..5 {
        let daemon = Daemon::start("");
        let socket = daemon.socket.clone();
        let status = daemon.terminate();
        assert!(status.success(), "round {round}: {status:?}");
        assert!(!socket.exists(), "round {round}: the socket is left");
    }
}
