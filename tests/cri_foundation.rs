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

#[tokio::test]
async fn runtime_config_reports_the_cgroup_driver() {
    let daemon = Daemon::start("cgroup:\n  driver: systemd\n");
    let mut cri = daemon.client().await;
    let r = cri
        .runtime
        .runtime_config(api::RuntimeConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.linux.unwrap().cgroup_driver,
        api::CgroupDriver::Systemd as i32
    );
}

#[tokio::test]
async fn unbuilt_rpcs_answer_unimplemented_with_their_name() {
    let daemon = Daemon::start("");
    let mut cri = daemon.client().await;
    let err = cri
        .runtime
        .checkpoint_container(api::CheckpointContainerRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    assert!(
        err.message().contains("CheckpointContainer"),
        "{}",
        err.message()
    );
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

#[test]
fn sigterm_shuts_down_cleanly_and_removes_the_socket() {
    let daemon = Daemon::start("");
    let socket = daemon.socket.clone();
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists());
}
