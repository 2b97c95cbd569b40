//! Helpers to drive pods and containers through the CRI client, as kubelet does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use berth::client::CriClient;
use berth::cri::api;

use super::Daemon;
use super::registry::registries;

pub async fn pull(cri: &mut CriClient, image: &str) -> String {
    let req = api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        auth: None,
        sandbox_config: None,
    };
    match cri.image.pull_image(req).await {
        Ok(reply) => reply.into_inner().image_ref,
        Err(status) if status.code() == tonic::Code::NotFound => panic!(
            "pull {image}: {status:?}: the test image is not in the test registry; \
             build the test images with `hack/testimages/build.sh`"
        ),
        Err(status) => panic!("pull {image}: {status:?}"),
    }
}

pub fn pod_config(name: &str, log_dir: &std::path::Path) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: format!("{name}-host"),
        log_directory: log_dir.display().to_string(),
        labels: HashMap::from([("app".to_string(), name.to_string())]),
        annotations: HashMap::from([("note".to_string(), "kept".to_string())]),
        ..Default::default()
    }
}

/// [`pod_config`] with the given namespace modes (host network, host PID, ...).
pub fn pod_config_with_namespaces(
    name: &str,
    log_dir: &std::path::Path,
    namespaces: api::NamespaceOption,
) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        linux: Some(api::LinuxPodSandboxConfig {
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..pod_config(name, log_dir)
    }
}

/// Starts a container in `pod` that allocates far past its 32 MiB memory limit and checks that
/// it is reported OOMKilled with exit code 137.
pub async fn assert_memory_hog_is_oom_killed(cri: &mut CriClient, pod: &Pod, image: &str) {
    let hog = "x=$(dd if=/dev/zero bs=1M count=256 2>/dev/null | tr '\\0' a); echo survived";
    let mut config = container_config("hog", image, &["sh", "-c", hog]);
    config.linux = Some(api::LinuxContainerConfig {
        resources: Some(api::LinuxContainerResources {
            memory_limit_in_bytes: 32 * 1024 * 1024,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = start_container(cri, pod, config).await;
    let st = wait_exited(cri, &id).await;
    assert_eq!(
        (st.reason.as_str(), st.exit_code),
        ("OOMKilled", 137),
        "{st:?}"
    );
}

pub fn container_config(name: &str, image: &str, args: &[&str]) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: args.iter().map(|a| a.to_string()).collect(),
        log_path: format!("{name}/0.log"),
        labels: HashMap::from([("c".to_string(), name.to_string())]),
        ..Default::default()
    }
}

pub struct Pod {
    pub id: String,
    pub config: api::PodSandboxConfig,
}

pub async fn run_pod(cri: &mut CriClient, config: api::PodSandboxConfig) -> Pod {
    let req = api::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: String::new(),
    };
    let id = cri
        .runtime
        .run_pod_sandbox(req)
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    Pod { id, config }
}

/// CreateContainer of `config` in `pod`: the new container's id, or the call's error.
pub async fn try_create_container(
    cri: &mut CriClient,
    pod: &Pod,
    config: api::ContainerConfig,
) -> Result<String, tonic::Status> {
    let req = api::CreateContainerRequest {
        pod_sandbox_id: pod.id.clone(),
        config: Some(config),
        sandbox_config: Some(pod.config.clone()),
    };
    Ok(cri
        .runtime
        .create_container(req)
        .await?
        .into_inner()
        .container_id)
}

/// Every container berthd lists.
pub async fn list_containers(cri: &mut CriClient) -> Vec<api::Container> {
    let req = api::ListContainersRequest { filter: None };
    cri.runtime
        .list_containers(req)
        .await
        .expect("ListContainers")
        .into_inner()
        .containers
}

pub async fn start_container(
    cri: &mut CriClient,
    pod: &Pod,
    config: api::ContainerConfig,
) -> String {
    let id = try_create_container(cri, pod, config)
        .await
        .expect("CreateContainer");
    let req = api::StartContainerRequest {
        container_id: id.clone(),
    };
    cri.runtime
        .start_container(req)
        .await
        .expect("StartContainer");
    id
}

pub async fn status(cri: &mut CriClient, id: &str) -> api::ContainerStatus {
    let req = api::ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    };
    cri.runtime
        .container_status(req)
        .await
        .expect("ContainerStatus")
        .into_inner()
        .status
        .unwrap()
}

pub async fn wait_exited(cri: &mut CriClient, id: &str) -> api::ContainerStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(cri, id).await;
        if s.state == api::ContainerState::ContainerExited as i32 {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "container {id} did not exit: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn exec(
    cri: &mut CriClient,
    id: &str,
    cmd: &[&str],
    timeout: i64,
) -> Result<api::ExecSyncResponse, tonic::Status> {
    let req = api::ExecSyncRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|a| a.to_string()).collect(),
        timeout,
    };
    Ok(cri.runtime.exec_sync(req).await?.into_inner())
}

/// Mounts berthd left under the test dir, besides the pins' own shared directory.
pub async fn stop_pod(cri: &mut CriClient, id: &str) {
    let req = api::StopPodSandboxRequest {
        pod_sandbox_id: id.into(),
    };
    cri.runtime
        .stop_pod_sandbox(req)
        .await
        .expect("StopPodSandbox");
}

pub async fn remove_pod(cri: &mut CriClient, id: &str) {
    let req = api::RemovePodSandboxRequest {
        pod_sandbox_id: id.into(),
    };
    cri.runtime
        .remove_pod_sandbox(req)
        .await
        .expect("RemovePodSandbox");
}

pub fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let pins = dir.join("state/pods").display().to_string();
    super::mounts_under(dir)
        .into_iter()
        .filter(|m| *m != pins)
        .collect()
}

/// A berthd configured for the plain test registry, an image pulled from it, and a Ready pod.
pub struct Fixture {
    pub daemon: Daemon,
    pub cri: CriClient,
    pub pod: Pod,
    /// The pulled image's full name.
    pub image: String,
}

/// Starts berthd, pulls `image_path` (e.g. `library/busybox:latest`) and runs pod `name`.
pub async fn fixture(name: &str, image_path: &str) -> Fixture {
    let r = registries();
    let daemon = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ));
    let mut cri = daemon.client().await;
    let image = format!("{}/{image_path}", r.plain);
    pull(&mut cri, &image).await;
    let pod = run_pod(&mut cri, pod_config(name, &daemon.dir.path().join("logs"))).await;
    Fixture {
        daemon,
        cri,
        pod,
        image,
    }
}
