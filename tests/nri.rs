//! NRI end to end: berthd with `nri.enable` and a real plugin process
//! (`examples/nri_test_plugin.rs`) connected to its socket. The plugin sees the pod and
//! container lifecycle and adjusts a new container's env and annotations; a plugin that
//! refuses or never answers makes CreateContainer fail with a clear error and leaves no
//! container behind, and once it is gone creation works again. Root; local registry; the
//! busybox test image; the example built (`cargo test` builds it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use berth::client::CriClient;
use berth::cri::api;
use common::Daemon;
use common::pods::*;
use common::registry::registries;

/// The example plugin binary, beside this test's own directory.
fn plugin_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let debug = exe.parent().and_then(Path::parent).unwrap();
    let path = debug.join("examples/nri_test_plugin");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --example nri_test_plugin` (cargo test builds it)",
        path.display()
    );
    path
}

struct Plugin {
    child: Child,
    log: PathBuf,
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Plugin {
    /// Starts the plugin and waits until berth synchronized it.
    fn start(socket: &Path, dir: &Path, name: &str, mode: &str) -> Plugin {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(plugin_binary())
            .args([
                socket.to_str().unwrap(),
                "10",
                name,
                mode,
                log.to_str().unwrap(),
            ])
            .spawn()
            .expect("start the plugin");
        let plugin = Plugin { child, log };
        for _ in 0..200 {
            if plugin.events().iter().any(|e| e.starts_with("Synchronize")) {
                return plugin;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("plugin {name} was not synchronized within 10 s");
    }

    fn events(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

async fn daemon(nri_dir: &Path) -> (Daemon, CriClient, String) {
    assert!(nix::unistd::geteuid().is_root(), "the NRI tests need root");
    let r = registries();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\nnri:\n  enable: true\n  socket_path: {}\n  \
         request_timeout: 1s\n",
        r.plain,
        nri_dir.join("nri.sock").display()
    ));
    let mut cri = d.client().await;
    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut cri, &image).await;
    (d, cri, image)
}

/// A container that sleeps.
fn app(image: &str) -> api::ContainerConfig {
    container_config("app", image, &["sleep", "3600"])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_process_adjusts_a_container_and_sees_its_lifecycle() {
    let nri_dir = tempfile::tempdir().unwrap();
    let (d, mut cri, image) = daemon(nri_dir.path()).await;
    let plugin = Plugin::start(
        &nri_dir.path().join("nri.sock"),
        nri_dir.path(),
        "adjuster",
        "adjust",
    );

    let pod = run_pod(&mut cri, pod_config("nri", d.dir.path())).await;
    let id = start_container(&mut cri, &pod, app(&image)).await;
    let out = exec(&mut cri, &id, &["sh", "-c", "echo $NRI_TEST"], 10)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "injected\n");
    let spec = d
        .dir
        .path()
        .join("state/containers")
        .join(&id)
        .join("config.json");
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&spec).unwrap()).unwrap();
    assert_eq!(spec["annotations"]["nri.test/seen"], "yes");

    let stop = api::StopContainerRequest {
        container_id: id.clone(),
        timeout: 0,
    };
    cri.runtime.stop_container(stop).await.unwrap();
    let remove = api::RemoveContainerRequest {
        container_id: id.clone(),
    };
    cri.runtime.remove_container(remove).await.unwrap();
    stop_pod(&mut cri, &pod.id).await;
    remove_pod(&mut cri, &pod.id).await;

    let events: Vec<String> = plugin
        .events()
        .iter()
        .map(|e| e.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    let expected = [
        format!("RunPodSandbox {}", pod.id),
        format!("CreateContainer {id}"),
        format!("StartContainer {id}"),
        format!("StopContainer {id}"),
        format!("RemoveContainer {id}"),
        format!("StopPodSandbox {}", pod.id),
        format!("RemovePodSandbox {}", pod.id),
    ];
    let seen: Vec<&String> = events
        .iter()
        .filter(|e| !e.starts_with("Synchronize"))
        .collect();
    assert_eq!(seen, expected.iter().collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusing_or_silent_plugin_fails_create_container_and_leaves_nothing() {
    let nri_dir = tempfile::tempdir().unwrap();
    let (d, mut cri, image) = daemon(nri_dir.path()).await;
    let socket = nri_dir.path().join("nri.sock");
    let pod = run_pod(&mut cri, pod_config("nri-fail", d.dir.path())).await;

    let refuser = Plugin::start(&socket, nri_dir.path(), "refuser", "fail");
    let err = try_create_container(&mut cri, &pod, app(&image))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message()
            .contains("the test plugin refuses every container"),
        "{err:?}"
    );
    assert!(
        list_containers(&mut cri).await.is_empty(),
        "no container left"
    );
    drop(refuser);

    let sleeper = Plugin::start(&socket, nri_dir.path(), "sleeper", "hang");
    let started = std::time::Instant::now();
    let err = try_create_container(&mut cri, &pod, app(&image))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("10-sleeper"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        list_containers(&mut cri).await.is_empty(),
        "no container left"
    );

    // The silent plugin was disconnected: the same name is created now.
    let id = try_create_container(&mut cri, &pod, app(&image))
        .await
        .expect("the retry");
    assert_eq!(list_containers(&mut cri).await.len(), 1);
    drop(sleeper);
    let remove = api::RemoveContainerRequest { container_id: id };
    cri.runtime.remove_container(remove).await.unwrap();
    stop_pod(&mut cri, &pod.id).await;
    remove_pod(&mut cri, &pod.id).await;
}
