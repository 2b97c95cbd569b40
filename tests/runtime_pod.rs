//! Pods and containers through berthd's CRI RuntimeService, as kubelet drives them: real shims,
//! real overlayfs rootfs, real cgroups, the busybox test image from the local registry. Root.

mod common;

use std::time::{Duration, Instant};

use berth::client::CriClient;
use berth::cri::api;
use common::Daemon;
use common::pods::*;
use common::registry::{Registries, registries};

fn daemon(r: &Registries) -> Daemon {
    Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ))
}

#[tokio::test]
async fn busybox_pod_lifecycle() {
    let r = registries();
    let d = daemon(&r);
    let mut cri = d.client().await;
    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut cri, &image).await;
    let logs = d.dir.path().join("logs");
    let pod = run_pod(&mut cri, pod_config("web", &logs)).await;

    let s = cri
        .runtime
        .pod_sandbox_status(api::PodSandboxStatusRequest {
            pod_sandbox_id: pod.id.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(s.state, api::PodSandboxState::SandboxReady as i32);
    assert_eq!(s.labels["app"], "web");

    let sleeper = start_container(
        &mut cri,
        &pod,
        container_config(
            "sleeper",
            &image,
            &[
                "sh",
                "-c",
                "trap '' TERM; echo hello; echo oops >&2; while true; do sleep 1; done",
            ],
        ),
    )
    .await;
    let st = status(&mut cri, &sleeper).await;
    assert_eq!(
        st.state,
        api::ContainerState::ContainerRunning as i32,
        "{st:?}"
    );
    assert!(st.started_at >= st.created_at && st.created_at > 0);
    assert_eq!(st.labels["c"], "sleeper");
    assert_eq!(
        status(&mut cri, &sleeper[..12]).await.id,
        sleeper,
        "a unique prefix finds it"
    );

    let out = exec(&mut cri, &sleeper, &["hostname"], 10).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "web-host\n");
    let out = exec(
        &mut cri,
        &sleeper,
        &["sh", "-c", "id -u; echo $$ >/dev/null; exit 4"],
        10,
    )
    .await
    .unwrap();
    assert_eq!(
        (String::from_utf8_lossy(&out.stdout).as_ref(), out.exit_code),
        ("0\n", 4)
    );
    // the pod's own network namespace has its loopback up (IFF_UP | IFF_LOOPBACK)
    let out = exec(&mut cri, &sleeper, &["cat", "/sys/class/net/lo/flags"], 10)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0x9\n");
    let err = exec(&mut cri, &sleeper, &["sleep", "10"], 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");

    // logs in CRI format
    let log = std::fs::read_to_string(logs.join("sleeper/0.log")).unwrap();
    assert!(log.lines().any(|l| l.ends_with(" stdout F hello")), "{log}");
    assert!(log.lines().any(|l| l.ends_with(" stderr F oops")), "{log}");

    // a container that exits by itself
    let quitter = start_container(
        &mut cri,
        &pod,
        container_config("quitter", &image, &["sh", "-c", "exit 3"]),
    )
    .await;
    let st = wait_exited(&mut cri, &quitter).await;
    assert_eq!((st.exit_code, st.reason.as_str()), (3, "Error"));
    assert!(st.finished_at >= st.started_at);

    // the container ignores SIGTERM: the stop timeout passes, then every process gets SIGKILL
    let started = Instant::now();
    cri.runtime
        .stop_container(api::StopContainerRequest {
            container_id: sleeper.clone(),
            timeout: 1,
        })
        .await
        .unwrap();
    let st = status(&mut cri, &sleeper).await;
    assert_eq!(st.state, api::ContainerState::ContainerExited as i32);
    assert_eq!(st.exit_code, 137, "{st:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // idempotent stop, unknown ids
    cri.runtime
        .stop_container(api::StopContainerRequest {
            container_id: sleeper.clone(),
            timeout: 1,
        })
        .await
        .unwrap();
    cri.runtime
        .stop_container(api::StopContainerRequest {
            container_id: "f".repeat(64),
            timeout: 1,
        })
        .await
        .unwrap();
    let err = cri
        .runtime
        .container_status(api::ContainerStatusRequest {
            container_id: "f".repeat(64),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    let list = cri
        .runtime
        .list_containers(api::ListContainersRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(list.len(), 2);
    for id in [&sleeper, &quitter] {
        cri.runtime
            .remove_container(api::RemoveContainerRequest {
                container_id: id.to_string(),
            })
            .await
            .unwrap();
    }
    stop_pod(&mut cri, &pod.id).await;
    stop_pod(&mut cri, &pod.id).await;
    remove_pod(&mut cri, &pod.id).await;
    remove_pod(&mut cri, &pod.id).await;
    let pods = cri
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert!(pods.is_empty());
    assert_eq!(
        mounts_under(d.dir.path()),
        Vec::<String>::new(),
        "no mount left behind"
    );
}

#[tokio::test]
async fn image_user_is_honoured() {
    let Fixture {
        daemon: _d,
        mut cri,
        pod,
        image,
    } = fixture("user", "test/layered:gzip").await;
    let id = start_container(
        &mut cri,
        &pod,
        container_config("app", &image, &["sleep", "1000"]),
    )
    .await;
    let out = exec(&mut cri, &id, &["id"], 10).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("uid=1000(app) gid=1000(app)"), "{text}");
    remove_pod(&mut cri, &pod.id).await;
}

#[tokio::test]
async fn kill9_of_berthd_loses_nothing() {
    let r = registries();
    let mut d = daemon(&r);
    let mut cri = d.client().await;
    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut cri, &image).await;
    let pod = run_pod(&mut cri, pod_config("survivor", &d.dir.path().join("logs"))).await;
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
    let before_pods = cri
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    let before_runner = status(&mut cri, &runner).await;

    d.kill9();
    tokio::time::sleep(Duration::from_secs(3)).await; // `late` exits while berthd is down
    d.restart();
    let mut cri = d.client().await;
    let after_pods = cri
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(
        before_pods, after_pods,
        "same pods, states, labels, timestamps"
    );
    assert_eq!(
        status(&mut cri, &runner).await,
        before_runner,
        "the running container is untouched"
    );
    let st = wait_exited(&mut cri, &late).await;
    assert_eq!(
        st.exit_code, 7,
        "an exit during the restart is reported: {st:?}"
    );
    let out = exec(&mut cri, &runner, &["echo", "still here"], 10)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still here\n");
    remove_pod(&mut cri, &pod.id).await;
    assert_eq!(mounts_under(d.dir.path()), Vec::<String>::new());
}

#[tokio::test]
async fn unconfigured_handlers_are_refused() {
    let d = Daemon::start("");
    let mut cri = d.client().await;
    for (handler, code) in [("nope", tonic::Code::InvalidArgument)] {
        let req = api::RunPodSandboxRequest {
            config: Some(pod_config(handler, &d.dir.path().join("logs"))),
            runtime_handler: handler.into(),
        };
        let err = cri.runtime.run_pod_sandbox(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{handler}: {err:?}");
    }
    let pods = cri
        .runtime
        .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
        .await
        .unwrap();
    assert!(pods.into_inner().items.is_empty());
}

#[tokio::test]
async fn container_events_stream_the_lifecycle_in_order() {
    let r = registries();
    let d = daemon(&r);
    let mut cri = d.client().await;
    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut cri, &image).await;
    let mut events = cri
        .runtime
        .get_container_events(api::GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let pod = run_pod(&mut cri, pod_config("evented", &d.dir.path().join("logs"))).await;
    let id = start_container(&mut cri, &pod, container_config("once", &image, &["true"])).await;
    wait_exited(&mut cri, &id).await;
    let req = api::RemoveContainerRequest {
        container_id: id.clone(),
    };
    cri.runtime.remove_container(req).await.unwrap();
    remove_pod(&mut cri, &pod.id).await;

    use api::ContainerEventType::*;
    let want = [
        (&pod.id, ContainerCreatedEvent),
        (&pod.id, ContainerStartedEvent),
        (&id, ContainerCreatedEvent),
        (&id, ContainerStartedEvent),
        (&id, ContainerStoppedEvent),
        (&id, ContainerDeletedEvent),
        (&pod.id, ContainerStoppedEvent),
        (&pod.id, ContainerDeletedEvent),
    ];
    let mut got = vec![];
    while got.len() < want.len() {
        let next = tokio::time::timeout(Duration::from_secs(10), events.message()).await;
        let event = next
            .unwrap_or_else(|_| panic!("an event within 10s; so far {got:?}"))
            .unwrap()
            .expect("stream open");
        if event.container_id == id && event.container_event_type == ContainerStartedEvent as i32 {
            let statuses = &event.containers_statuses;
            assert!(
                statuses.iter().any(|s| s.id == id),
                "statuses come with the event"
            );
            assert_eq!(event.pod_sandbox_status.as_ref().unwrap().id, pod.id);
        }
        got.push((event.container_id, event.container_event_type));
    }
    let want: Vec<_> = want
        .iter()
        .map(|(i, k)| (i.to_string(), *k as i32))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn stats_come_from_cgroups_and_the_writable_layer() {
    let Fixture {
        daemon: _d,
        mut cri,
        pod,
        image,
    } = fixture("busy", "library/busybox:latest").await;
    let script = "dd if=/dev/zero of=/blob bs=1M count=5 2>/dev/null; while true; do :; done";
    let id = start_container(
        &mut cri,
        &pod,
        container_config("spin", &image, &["sh", "-c", script]),
    )
    .await;
    let sample = |mut cri: CriClient, id: String| async move {
        let req = api::ContainerStatsRequest { container_id: id };
        cri.runtime
            .container_stats(req)
            .await
            .unwrap()
            .into_inner()
            .stats
            .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    sample(cri.clone(), id.clone()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = sample(cri.clone(), id.clone()).await;
    let cpu = s.cpu.unwrap();
    assert!(
        cpu.usage_core_nano_seconds.unwrap().value > 100_000_000,
        "{cpu:?}"
    );
    assert!(
        cpu.usage_nano_cores.unwrap().value > 200_000_000,
        "a spinning shell: {cpu:?}"
    );
    assert!(s.memory.unwrap().working_set_bytes.unwrap().value > 0);
    let layer = s.writable_layer.unwrap();
    assert!(layer.used_bytes.unwrap().value >= 5 << 20, "{layer:?}");

    let req = api::ListContainerStatsRequest { filter: None };
    let all = cri
        .runtime
        .list_container_stats(req)
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(all.len(), 1);
    // Traffic on the pod's interface: pings to the test network's gateway.
    let ping = exec(
        &mut cri,
        &id,
        &["ping", "-c", "3", "-W", "1", "10.89.0.1"],
        10,
    )
    .await
    .unwrap();
    assert_eq!(ping.exit_code, 0, "{ping:?}");
    let req = api::PodSandboxStatsRequest {
        pod_sandbox_id: pod.id.clone(),
    };
    let p = cri
        .runtime
        .pod_sandbox_stats(req)
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let linux = p.linux.unwrap();
    assert_eq!(linux.containers.len(), 1);
    assert!(linux.process.unwrap().process_count.unwrap().value >= 1);
    let network = linux.network.expect("the pod's network counters");
    let eth0 = network.default_interface.clone().expect("eth0");
    assert_eq!(eth0.name, "eth0");
    assert!(eth0.tx_bytes.unwrap().value >= 3 * 84, "{eth0:?}");
    assert!(eth0.rx_bytes.unwrap().value >= 3 * 84, "{eth0:?}");
    assert!(
        network.interfaces.iter().all(|i| i.name != "lo"),
        "{network:?}"
    );
    remove_pod(&mut cri, &pod.id).await;
}

#[tokio::test]
async fn update_container_resources_changes_the_cgroup() {
    let Fixture {
        daemon: _d,
        mut cri,
        pod,
        image,
    } = fixture("resized", "library/busybox:latest").await;
    let id = start_container(
        &mut cri,
        &pod,
        container_config("app", &image, &["sleep", "1000"]),
    )
    .await;
    let limit = 96 * 1024 * 1024;
    let req = api::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(api::LinuxContainerResources {
            memory_limit_in_bytes: limit,
            ..Default::default()
        }),
        windows: None,
        annotations: Default::default(),
    };
    cri.runtime
        .update_container_resources(req)
        .await
        .expect("update");
    let req = api::ContainerStatusRequest {
        container_id: id.clone(),
        verbose: true,
    };
    let info = cri
        .runtime
        .container_status(req)
        .await
        .unwrap()
        .into_inner()
        .info;
    let info: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
    let cgroup = info["cgroup"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let h = berth::cgroup::Hierarchy::detect().unwrap();
    let file = match h.mode() {
        berth::cgroup::Mode::V1 => h
            .mount_of("memory")
            .unwrap()
            .join(&cgroup)
            .join("memory.limit_in_bytes"),
        berth::cgroup::Mode::V2 => h.root().join(&cgroup).join("memory.max"),
    };
    let value = std::fs::read_to_string(&file).unwrap();
    assert_eq!(value.trim(), limit.to_string(), "{}", file.display());
    let st = status(&mut cri, &id).await;
    let mem = st.resources.unwrap().linux.unwrap().memory_limit_in_bytes;
    assert_eq!(mem, limit, "the status reports the new limit");
    remove_pod(&mut cri, &pod.id).await;
}

#[tokio::test]
async fn a_memory_hog_is_oom_killed_and_reported() {
    let Fixture {
        daemon: _d,
        mut cri,
        pod,
        image,
    } = fixture("hungry", "library/busybox:latest").await;
    assert_memory_hog_is_oom_killed(&mut cri, &pod, &image).await;
    remove_pod(&mut cri, &pod.id).await;
}

#[tokio::test]
async fn a_host_pid_pod_runs_default_containers_in_the_host_pid_namespace() {
    let r = registries();
    let d = daemon(&r);
    let mut cri = d.client().await;
    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut cri, &image).await;
    let config = pod_config_with_namespaces(
        "hostpid",
        &d.dir.path().join("logs"),
        api::NamespaceOption {
            pid: api::NamespaceMode::Node as i32,
            ..Default::default()
        },
    );
    let pod = run_pod(&mut cri, config).await;
    // no namespace options on the container: CRI's default PID mode, POD
    let id = start_container(
        &mut cri,
        &pod,
        container_config("c", &image, &["sleep", "1000"]),
    )
    .await;
    let out = exec(&mut cri, &id, &["cat", "/proc/1/comm"], 10)
        .await
        .unwrap();
    let host_init = std::fs::read_to_string("/proc/1/comm").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        host_init,
        "PID 1 is the host's init"
    );
    remove_pod(&mut cri, &pod.id).await;
}

/// berthd moves each pod's shim, and its pause process, out of its own cgroup (a service
/// manager stopping berthd would take them along) into the shims' cgroup, in every hierarchy.
#[tokio::test]
async fn shims_leave_berthds_cgroup() {
    let r = registries();
    let d = daemon(&r);
    let mut cri = d.client().await;
    let mut config = pod_config("placed", &d.dir.path().join("logs"));
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
    let pod = run_pod(&mut cri, config).await;
    let pod_dir = d.dir.path().join("state/pods").join(&pod.id);
    let shim: i32 = std::fs::read_to_string(pod_dir.join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let children = std::fs::read_to_string(format!("/proc/{shim}/task/{shim}/children")).unwrap();
    let pause: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    for pid in [shim, pause] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let groups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
            let in_shims = |l: &str| l.ends_with(berth::shimclient::placement::SHIM_CGROUP);
            // every hierarchy berth uses; the root ones are those of hierarchies it skips
            let placed = groups.lines().any(in_shims)
                && groups.lines().filter(|l| !l.ends_with(":/")).all(in_shims);
            if placed {
                break;
            }
            assert!(Instant::now() < deadline, "{pid}: {groups}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    remove_pod(&mut cri, &pod.id).await;
}
