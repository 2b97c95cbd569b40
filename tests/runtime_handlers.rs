//! Runtime handlers: pods whose containers run through an external OCI runtime (Debian's runc)
//! from the same bundle as the built-in executor, with the shim still supervising them. The
//! same lifecycle runs for the built-in handler. crun is either refused clearly (this host's
//! hybrid cgroup layout) or works. Root, real runc, real cgroups, the busybox test image.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use berth::client::CriClient;
use berth::cri::api;
use common::Daemon;
use common::pods::*;
use common::registry::registries;

const HANDLERS: &str = "runtime:\n  handlers:\n  - name: runc\n    path: /usr/sbin/runc\n  - name: crun\n    path: /usr/bin/crun\n";

async fn daemon_with_busybox() -> (Daemon, CriClient, String) {
    let r = registries();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n{HANDLERS}",
        r.plain
    ));
    let mut cri = d.client().await;
    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut cri, &image).await;
    (d, cri, image)
}

async fn run_pod_with(
    cri: &mut CriClient,
    config: api::PodSandboxConfig,
    handler: &str,
) -> Result<Pod, tonic::Status> {
    let req = api::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: handler.into(),
    };
    let id = cri.runtime.run_pod_sandbox(req).await?.into_inner();
    Ok(Pod {
        id: id.pod_sandbox_id,
        config,
    })
}

async fn runtime_status(cri: &mut CriClient) -> api::StatusResponse {
    cri.runtime
        .status(api::StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner()
}

async fn pod_handler(cri: &mut CriClient, id: &str) -> String {
    let req = api::PodSandboxStatusRequest {
        pod_sandbox_id: id.into(),
        verbose: false,
    };
    let s = cri.runtime.pod_sandbox_status(req).await.unwrap();
    s.into_inner().status.unwrap().runtime_handler
}

/// The container's verbose status info.
async fn info_of(cri: &mut CriClient, id: &str) -> serde_json::Value {
    let req = api::ContainerStatusRequest {
        container_id: id.into(),
        verbose: true,
    };
    let info = cri.runtime.container_status(req).await.unwrap();
    serde_json::from_str(&info.into_inner().info["info"]).unwrap()
}

/// Every directory of `cgroup` in the mounted hierarchies (v1 ones, the unified one).
fn cgroup_dirs(cgroup: &str) -> Vec<PathBuf> {
    let rel = cgroup.trim_start_matches('/');
    let mut dirs = vec![Path::new("/sys/fs/cgroup").join(rel)];
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        dirs.push(entry.path().join(rel));
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

fn memory_limit_file(cgroup: &str) -> PathBuf {
    let rel = cgroup.trim_start_matches('/');
    let h = berth::cgroup::Hierarchy::detect().unwrap();
    match h.mode() {
        berth::cgroup::Mode::V1 => h
            .mount_of("memory")
            .unwrap()
            .join(rel)
            .join("memory.limit_in_bytes"),
        berth::cgroup::Mode::V2 => h.root().join(rel).join("memory.max"),
    }
}

/// The inode of a namespace file (`net:[4026532]` in a container, a pin on the host).
fn ns_inode(path: &Path) -> u64 {
    std::os::linux::fs::MetadataExt::st_ino(&std::fs::metadata(path).unwrap())
}

async fn lifecycle(handler: &str) {
    let (d, mut cri, image) = daemon_with_busybox().await;
    let state = d.dir.path().join("state");
    let names: Vec<_> = runtime_status(&mut cri)
        .await
        .runtime_handlers
        .into_iter()
        .map(|h| h.name)
        .collect();
    assert!(names.iter().any(|n| n == handler), "{names:?}");

    let logs = d.dir.path().join("logs");
    let pod = run_pod_with(&mut cri, pod_config("web", &logs), handler)
        .await
        .expect("RunPodSandbox");
    assert_eq!(pod_handler(&mut cri, &pod.id).await, handler);

    let script = "trap 'exit 42' TERM; echo hello; echo oops >&2; while true; do sleep 0.2; done";
    let id = start_container(
        &mut cri,
        &pod,
        container_config("app", &image, &["sh", "-c", script]),
    )
    .await;
    let st = status(&mut cri, &id).await;
    assert_eq!(st.state, api::ContainerState::ContainerRunning as i32);
    let runc_state = state.join("runc").join(&id);
    assert_eq!(
        runc_state.is_dir(),
        handler == "runc",
        "runc keeps its state under <state_dir>/runc"
    );

    // the container is in the pod's pinned namespaces
    let out = exec(&mut cri, &id, &["hostname"], 10).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web-host\n");
    let pod_dir = state.join("pods").join(&pod.id);
    let info = info_of(&mut cri, &id).await;
    assert_eq!(info["runtimeHandler"], handler);
    let pid = info["pid"].as_u64().unwrap();
    for kind in ["net", "ipc", "uts"] {
        let pin = ns_inode(&pod_dir.join("ns").join(kind));
        let process = ns_inode(Path::new(&format!("/proc/{pid}/ns/{kind}")));
        assert_eq!(process, pin, "{kind} namespace");
    }
    let out = exec(
        &mut cri,
        &id,
        &["sh", "-c", "echo $$ > /dev/null; id -u; exit 4"],
        10,
    )
    .await
    .unwrap();
    assert_eq!(
        (String::from_utf8_lossy(&out.stdout).as_ref(), out.exit_code),
        ("0\n", 4)
    );
    let err = exec(&mut cri, &id, &["sleep", "10"], 1).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");

    let log = std::fs::read_to_string(logs.join("app/0.log")).unwrap();
    assert!(log.lines().any(|l| l.ends_with(" stdout F hello")), "{log}");
    assert!(log.lines().any(|l| l.ends_with(" stderr F oops")), "{log}");

    // resources and stats come from the cgroup the runtime put the container in
    let cgroup = info["cgroup"].as_str().unwrap().to_string();
    let memberships = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let membership = match berth::cgroup::Hierarchy::detect().unwrap().mode() {
        berth::cgroup::Mode::V1 => format!("memory:{cgroup}\n"),
        berth::cgroup::Mode::V2 => format!("0::{cgroup}\n"),
    };
    assert!(memberships.contains(&membership), "{memberships}");
    let limit = 80 * 1024 * 1024;
    let req = api::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(api::LinuxContainerResources {
            memory_limit_in_bytes: limit,
            ..Default::default()
        }),
        windows: None,
        annotations: Default::default(),
    };
    cri.runtime.update_container_resources(req).await.unwrap();
    let file = memory_limit_file(&cgroup);
    let value = std::fs::read_to_string(&file).unwrap();
    assert_eq!(value.trim(), limit.to_string(), "{}", file.display());
    let req = api::ContainerStatsRequest {
        container_id: id.clone(),
    };
    let stats = cri.runtime.container_stats(req).await.unwrap();
    let stats = stats.into_inner().stats.unwrap();
    assert!(stats.memory.unwrap().working_set_bytes.unwrap().value > 0);
    assert!(stats.cpu.unwrap().usage_core_nano_seconds.unwrap().value > 0);

    // stop: SIGTERM, and the trap's exit code
    let req = api::StopContainerRequest {
        container_id: id.clone(),
        timeout: 10,
    };
    cri.runtime.stop_container(req).await.unwrap();
    let st = status(&mut cri, &id).await;
    assert_eq!(st.state, api::ContainerState::ContainerExited as i32);
    assert_eq!((st.exit_code, st.reason.as_str()), (42, "Error"), "{st:?}");

    // a container that cannot start
    let req = api::CreateContainerRequest {
        pod_sandbox_id: pod.id.clone(),
        config: Some(container_config("broken", &image, &["/no/such/program"])),
        sandbox_config: Some(pod.config.clone()),
    };
    let created = cri.runtime.create_container(req).await;
    if let Ok(created) = created {
        let req = api::StartContainerRequest {
            container_id: created.into_inner().container_id,
        };
        let err = cri.runtime.start_container(req).await.unwrap_err();
        assert!(err.message().contains("/no/such/program"), "{err:?}");
    } else {
        let err = created.unwrap_err();
        assert!(err.message().contains("/no/such/program"), "{err:?}");
    }

    let req = api::RemoveContainerRequest {
        container_id: id.clone(),
    };
    cri.runtime.remove_container(req).await.unwrap();
    assert!(!runc_state.exists(), "runc's state is gone");
    assert_eq!(
        cgroup_dirs(&cgroup),
        Vec::<PathBuf>::new(),
        "no cgroup left"
    );
    remove_pod(&mut cri, &pod.id).await;
    assert_eq!(mounts_under(d.dir.path()), Vec::<String>::new());
    let runc_root = state.join("runc");
    let left: Vec<_> = std::fs::read_dir(&runc_root)
        .map(|dir| dir.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "runc state left: {left:?}");
}

#[tokio::test]
async fn runc_handler_runs_the_pod_lifecycle() {
    lifecycle("runc").await;
}

#[tokio::test]
async fn built_in_handler_runs_the_same_lifecycle() {
    lifecycle("").await;
}

#[tokio::test]
async fn runc_pods_survive_kill9_of_berthd() {
    let (mut d, mut cri, image) = daemon_with_busybox().await;
    let logs = d.dir.path().join("logs");
    let pod = run_pod_with(&mut cri, pod_config("survivor", &logs), "runc")
        .await
        .unwrap();
    let runner = start_container(
        &mut cri,
        &pod,
        container_config("runner", &image, &["sleep", "1000"]),
    )
    .await;
    let late = start_container(
        &mut cri,
        &pod,
        container_config("late", &image, &["sh", "-c", "sleep 2; exit 7"]),
    )
    .await;
    let before = status(&mut cri, &runner).await;

    d.kill9();
    tokio::time::sleep(Duration::from_secs(3)).await; // `late` exits while berthd is down
    d.restart();
    let mut cri = d.client().await;
    assert_eq!(pod_handler(&mut cri, &pod.id).await, "runc");
    assert_eq!(status(&mut cri, &runner).await, before);
    let st = wait_exited(&mut cri, &late).await;
    assert_eq!(st.exit_code, 7, "{st:?}");
    let out = exec(&mut cri, &runner, &["echo", "still here"], 10)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still here\n");

    remove_pod(&mut cri, &pod.id).await;
    let runc_root = d.dir.path().join("state/runc");
    let left: Vec<_> = std::fs::read_dir(&runc_root)
        .map(|dir| dir.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "runc state left: {left:?}");
    assert_eq!(mounts_under(d.dir.path()), Vec::<String>::new());
}

/// crun refuses a hybrid cgroup v1/v2 host whose unified hierarchy has controllers. berthd finds
/// out at startup: it leaves crun out of Status, says why in the verbose info, and refuses
/// crun pods with FailedPrecondition naming the reason. Where crun works, its pods run.
#[tokio::test]
async fn crun_is_refused_clearly_or_works() {
    let (d, mut cri, image) = daemon_with_busybox().await;
    let s = runtime_status(&mut cri).await;
    let listed = s.runtime_handlers.iter().any(|h| h.name == "crun");
    let report: serde_json::Value = serde_json::from_str(&s.info["handlerChecks"]).unwrap();
    let crun = report
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "crun")
        .unwrap()
        .clone();
    assert_eq!(crun["ready"], listed, "{crun}");
    let pod = run_pod_with(
        &mut cri,
        pod_config("c", &d.dir.path().join("logs")),
        "crun",
    )
    .await;
    if listed {
        let pod = pod.expect("crun passed its check: its pods run");
        let id = start_container(
            &mut cri,
            &pod,
            container_config("app", &image, &["sleep", "100"]),
        )
        .await;
        let out = exec(&mut cri, &id, &["echo", "crun"], 10).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "crun\n");
        remove_pod(&mut cri, &pod.id).await;
    } else {
        let err = pod.err().expect("an unusable handler is refused");
        let reason = crun["reason"].as_str().unwrap();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        assert!(
            err.message().contains("crun") && err.message().contains(reason),
            "{err:?}"
        );
        if std::fs::metadata("/sys/fs/cgroup/unified").is_ok() {
            assert!(reason.contains("hybrid"), "{reason}");
        }
        let req = api::ListPodSandboxRequest { filter: None };
        let pods = cri.runtime.list_pod_sandbox(req).await.unwrap();
        assert!(pods.into_inner().items.is_empty(), "nothing left behind");
    }
    assert_eq!(mounts_under(d.dir.path()), Vec::<String>::new());
}

/// A pod sharing one PID namespace: runc joins the namespace the shim pinned, whose PID 1 is the
/// shim's pause process, so containers see each other. A container with a terminal logs
/// through it.
#[tokio::test]
async fn runc_containers_join_a_shared_pid_namespace_and_get_terminals() {
    let (d, mut cri, image) = daemon_with_busybox().await;
    let mut config = pod_config("shared", &d.dir.path().join("logs"));
    config.linux = Some(api::LinuxPodSandboxConfig {
        security_context: Some(api::LinuxSandboxSecurityContext {
            namespace_options: Some(api::NamespaceOption {
                pid: api::NamespaceMode::Pod as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod = run_pod_with(&mut cri, config, "runc").await.unwrap();
    let shared = |name: &str, args: &[&str]| {
        let mut c = container_config(name, &image, args);
        c.linux = Some(api::LinuxContainerConfig {
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    pid: api::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        c
    };
    let a = start_container(&mut cri, &pod, shared("a", &["sleep", "1001"])).await;
    start_container(&mut cri, &pod, shared("b", &["sleep", "1002"])).await;
    let out = exec(&mut cri, &a, &["ps", "-o", "pid,args"], 10)
        .await
        .unwrap();
    let ps = String::from_utf8_lossy(&out.stdout);
    assert!(
        ps.contains("sleep 1001") && ps.contains("sleep 1002"),
        "{ps}"
    );
    let pin = ns_inode(&d.dir.path().join(format!("state/pods/{}/ns/pid", pod.id)));
    let pid = info_of(&mut cri, &a).await["pid"].as_u64().unwrap();
    assert_eq!(ns_inode(Path::new(&format!("/proc/{pid}/ns/pid"))), pin);

    // a terminal: runc makes it in the container and hands the shim its master side
    let script = "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; tty; sleep 100";
    let mut tty = shared("tty", &["sh", "-c", script]);
    tty.tty = true;
    tty.stdin = true;
    start_container(&mut cri, &pod, tty).await;
    let log = d.dir.path().join("logs/tty/0.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        if lines.iter().any(|l| l.ends_with(" stdout F on-a-tty"))
            && lines.iter().any(|l| l.contains(" stdout F /dev/pts/"))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "tty log: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    remove_pod(&mut cri, &pod.id).await;
    assert_eq!(mounts_under(d.dir.path()), Vec::<String>::new());
}

/// When a runc pod's shim dies its containers keep running (re-parented to PID 1) and runc keeps
/// their state: removing the pod has berthd run `runc delete --force` itself, which kills them and
/// removes runc's state and cgroups.
#[tokio::test]
async fn removing_a_runc_pod_whose_shim_died_kills_and_forgets_its_containers() {
    let (d, mut cri, image) = daemon_with_busybox().await;
    let state = d.dir.path().join("state");
    let pod = run_pod_with(
        &mut cri,
        pod_config("orphan", &d.dir.path().join("logs")),
        "runc",
    )
    .await
    .unwrap();
    let id = start_container(
        &mut cri,
        &pod,
        container_config("app", &image, &["sleep", "1000"]),
    )
    .await;
    let info = info_of(&mut cri, &id).await;
    let pid = info["pid"].as_u64().unwrap();
    let cgroup = info["cgroup"].as_str().unwrap().to_string();
    let shim_pid: i32 = std::fs::read_to_string(state.join(format!("pods/{}/shim.pid", pod.id)))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let req = api::PodSandboxStatusRequest {
            pod_sandbox_id: pod.id.clone(),
            verbose: false,
        };
        let s = cri.runtime.pod_sandbox_status(req).await.unwrap();
        if s.into_inner().status.unwrap().state == api::PodSandboxState::SandboxNotready as i32 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "pod still Ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the container outlives its shim"
    );
    remove_pod(&mut cri, &pod.id).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(
            std::time::Instant::now() < deadline,
            "container {pid} still runs"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !state.join("runc").join(&id).exists(),
        "runc's state is gone"
    );
    assert_eq!(
        cgroup_dirs(&cgroup),
        Vec::<PathBuf>::new(),
        "no cgroup left"
    );
    assert_eq!(mounts_under(d.dir.path()), Vec::<String>::new());
}

/// runc applies the memory limit of the spec to the cgroup berth reads: an OOM kill is reported.
#[tokio::test]
async fn a_runc_memory_hog_is_oom_killed_and_reported() {
    let (d, mut cri, image) = daemon_with_busybox().await;
    let pod = run_pod_with(
        &mut cri,
        pod_config("hungry", &d.dir.path().join("logs")),
        "runc",
    )
    .await
    .unwrap();
    assert_memory_hog_is_oom_killed(&mut cri, &pod, &image).await;
    remove_pod(&mut cri, &pod.id).await;
}
