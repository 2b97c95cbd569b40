//! Crash safety: berthd SIGKILLed in the middle of RunPodSandbox, CreateContainer,
//! RemoveContainer and StopPodSandbox. Each test holds the operation at a precise step from
//! outside (a CNI plugin or an OCI runtime script that waits while a file exists), kills berthd
//! there, restarts it, and checks that the API and the host agree: a creation cut short leaves
//! nothing (no shim, mount, cgroup, process, pin, state dir, IP lease); a stop or removal cut
//! short is finished. Root, real shims, CNI plugins, runc and cgroups.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth::client::CriClient;
use berth::cri::api;
use common::Daemon;
use common::host::{CgroupParent, Footprint, eventually};
use common::network::{PLUGIN_DIR, TestNet};
use common::pods::*;
use common::registry::registries;

/// Holds a step while `<dir>/hold-<step>` exists; the held process writes `<dir>/held-<step>`.
struct Hold {
    dir: PathBuf,
}

impl Hold {
    fn new(dir: &Path) -> Hold {
        std::fs::create_dir_all(dir).unwrap();
        Hold {
            dir: dir.to_path_buf(),
        }
    }

    fn set(&self, step: &str) {
        std::fs::write(self.dir.join(format!("hold-{step}")), "").unwrap();
    }

    fn release(&self, step: &str) {
        std::fs::remove_file(self.dir.join(format!("hold-{step}"))).unwrap();
    }

    async fn wait_held(&self, step: &str) {
        let held = self.dir.join(format!("held-{step}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !held.exists() {
            assert!(Instant::now() < deadline, "nothing reached step {step}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A CNI plugin (chained after bridge) that passes the result on, held on `hold-ADD` /
    /// `hold-DEL`.
    fn cni_plugin(&self, bin: &Path) {
        let script = format!(
            "#!/bin/sh\ninput=$(cat)\nif [ -e {d}/hold-$CNI_COMMAND ]; then\n  echo $$ > {d}/held-$CNI_COMMAND\n  while [ -e {d}/hold-$CNI_COMMAND ]; do sleep 0.05; done\nfi\nif [ \"$CNI_COMMAND\" = ADD ]; then printf '%s' \"$input\" | jq -c .prevResult; fi\n",
            d = self.dir.display()
        );
        executable(&bin.join("holder"), &script);
    }

    /// runc, held after a `create` or `delete` ran.
    fn runc(&self, path: &Path) {
        let script = format!(
            "#!/bin/sh\n/usr/sbin/runc \"$@\"; rc=$?\nfor a in \"$@\"; do case \"$a\" in create|delete) cmd=$a;; esac; done\nif [ -n \"$cmd\" ] && [ -e {d}/hold-$cmd ]; then\n  echo $$ > {d}/held-$cmd\n  while [ -e {d}/hold-$cmd ]; do sleep 0.05; done\nfi\nexit $rc\n",
            d = self.dir.display()
        );
        executable(path, &script);
    }
}

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A berthd on `net`, with the holder plugin chained after bridge.
fn held_network_daemon(net: &TestNet, hold: &Hold) -> Daemon {
    let bin = net.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    hold.cni_plugin(&bin);
    net.write_conflist(
        "10-test.conflist",
        vec![net.bridge_plugin(), serde_json::json!({"type": "holder"})],
    );
    Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\nnetwork:\n  conf_dir: {}\n  bin_dirs: [{}, {PLUGIN_DIR}]\n",
        registries().plain,
        net.conf_dir().display(),
        bin.display(),
    ))
}

async fn pods(cri: &mut CriClient) -> Vec<api::PodSandbox> {
    let req = api::ListPodSandboxRequest { filter: None };
    cri.runtime
        .list_pod_sandbox(req)
        .await
        .unwrap()
        .into_inner()
        .items
}

fn one(set: &std::collections::BTreeSet<String>) -> String {
    assert_eq!(set.len(), 1, "{set:?}");
    set.iter().next().unwrap().clone()
}

/// Kills berthd while RunPodSandbox waits in CNI ADD (shim, pins, shm, dirs and an IP made);
/// `forget_intents` also deletes berthd's note of the creation, as a berth without intents left it.
async fn run_pod_cut_short(tag: &str, octet: u8, forget_intents: bool) {
    let net = TestNet::new(tag, octet);
    let hold = Hold::new(&net.dir.path().join("hold"));
    let mut d = held_network_daemon(&net, &hold);
    hold.set("ADD");
    let mut cri = d.client().await;
    let config = pod_config("cut", &d.dir.path().join("logs"));
    let call = tokio::spawn(async move {
        let req = api::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        cri.runtime.run_pod_sandbox(req).await
    });
    hold.wait_held("ADD").await;
    let before = Footprint::read(d.dir.path(), "");
    let id = one(&before.shims);
    assert!(before.mounts.contains(&id), "pins and shm: {before:?}");
    assert!(
        before.pod_dirs.contains(&id) && before.cni_cache.contains(&id),
        "{before:?}"
    );
    assert_eq!(net.leases().len(), 1, "bridge leased an IP");

    d.kill9();
    assert!(call.await.unwrap().is_err(), "RunPodSandbox was cut short");
    hold.release("ADD");
    if forget_intents {
        let db = berth::store::Store::open(&d.dir.path().join("root/meta.redb")).unwrap();
        let intents: Vec<(String, serde_json::Value)> =
            db.read(|r| r.list(berth::store::Table::Intents)).unwrap();
        assert_eq!(intents.len(), 1, "{intents:?}");
        db.write(|w| w.delete(berth::store::Table::Intents, &id))
            .unwrap();
    }
    d.restart();
    let mut cri = d.client().await;
    assert!(pods(&mut cri).await.is_empty());
    eventually(d.dir.path(), "", "nothing left on the host", |f| {
        *f == Footprint::default()
    })
    .await;
    assert!(net.leases().is_empty(), "{:?}", net.leases());
}

#[tokio::test]
async fn a_run_pod_sandbox_cut_short_by_a_kill_leaves_nothing() {
    run_pod_cut_short("cpod", 40, false).await;
}

#[tokio::test]
async fn pods_no_record_or_intent_names_are_swept_at_start() {
    run_pod_cut_short("corph", 41, true).await;
}

#[tokio::test]
async fn a_stop_pod_sandbox_cut_short_by_a_kill_is_finished() {
    let net = TestNet::new("cstop", 42);
    let hold = Hold::new(&net.dir.path().join("hold"));
    let mut d = held_network_daemon(&net, &hold);
    let mut cri = d.client().await;
    let image = busybox_image();
    pull(&mut cri, &image).await;
    let pod = run_pod(&mut cri, pod_config("stopper", &d.dir.path().join("logs"))).await;
    let container = create(
        &mut cri,
        &pod,
        container_config("c", &image, &["sleep", "1000"]),
    )
    .await;
    hold.set("DEL");
    let call = {
        let mut cri = d.client().await;
        let id = pod.id.clone();
        tokio::spawn(async move {
            let req = api::StopPodSandboxRequest { pod_sandbox_id: id };
            cri.runtime.stop_pod_sandbox(req).await
        })
    };
    hold.wait_held("DEL").await;
    d.kill9();
    assert!(call.await.unwrap().is_err(), "StopPodSandbox was cut short");
    hold.release("DEL");
    d.restart();
    let mut cri = d.client().await;
    let listed = pods(&mut cri).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].state,
        api::PodSandboxState::SandboxNotready as i32,
        "the stop was finished"
    );
    let st = status(&mut cri, &container).await;
    assert_eq!(
        st.state,
        api::ContainerState::ContainerExited as i32,
        "{st:?}"
    );
    let only_rootfs: std::collections::BTreeSet<String> = [container.clone()].into();
    eventually(
        d.dir.path(),
        "",
        "no shim, pin or CNI attachment is left",
        |f| f.shims.is_empty() && f.mounts == only_rootfs && f.cni_cache.is_empty(),
    )
    .await;
    assert!(
        net.leases().is_empty(),
        "the stop released the IP: {:?}",
        net.leases()
    );
    remove_pod(&mut cri, &pod.id).await;
    eventually(d.dir.path(), "", "removed", |f| *f == Footprint::default()).await;
}

fn busybox_image() -> String {
    format!("{}/library/busybox:latest", registries().plain)
}

async fn create(cri: &mut CriClient, pod: &Pod, config: api::ContainerConfig) -> String {
    (try_create_container(cri, pod, config).await).expect("CreateContainer")
}

/// A berthd whose `runc` handler is held by `hold`, and a runc pod in `cgroup_parent`.
async fn runc_pod(hold: &Hold, cgroup_parent: &str) -> (Daemon, CriClient, Pod, String) {
    let runc = hold.dir.join("runc");
    hold.runc(&runc);
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\nruntime:\n  handlers:\n  - name: runc\n    path: {}\n",
        registries().plain,
        runc.display()
    ));
    let mut cri = d.client().await;
    let image = busybox_image();
    pull(&mut cri, &image).await;
    let mut config = pod_config("held", &d.dir.path().join("logs"));
    config.linux = Some(api::LinuxPodSandboxConfig {
        cgroup_parent: cgroup_parent.into(),
        ..Default::default()
    });
    let req = api::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: "runc".into(),
    };
    let id = cri
        .runtime
        .run_pod_sandbox(req)
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    (d, cri, Pod { id, config }, image)
}

#[tokio::test]
async fn a_create_container_cut_short_by_a_kill_leaves_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let hold = Hold::new(scratch.path());
    let guard = CgroupParent::new("berth-crash-create");
    let parent = guard.0.clone();
    let (mut d, cri, pod, image) = runc_pod(&hold, &parent).await;
    hold.set("create");
    let call = {
        let mut cri = d.client().await;
        let pod = Pod {
            id: pod.id.clone(),
            config: pod.config.clone(),
        };
        let config = container_config("cut", &image, &["sleep", "1000"]);
        tokio::spawn(async move { create_request(&mut cri, &pod, config).await })
    };
    hold.wait_held("create").await;
    let before = Footprint::read(d.dir.path(), &parent);
    let id = one(&before.container_dirs);
    assert!(
        before.cgroups.contains(&id) && before.processes.contains(&id),
        "runc's init runs in its cgroup: {before:?}"
    );
    assert!(
        before.mounts.contains(&id),
        "the rootfs is mounted: {before:?}"
    );

    d.kill9();
    assert!(
        call.await.unwrap().is_err(),
        "CreateContainer was cut short"
    );
    // The shim finishes the create it was asked for: the container exists for it, not for the API.
    hold.release("create");
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.restart();
    let mut cri2 = d.client().await;
    assert!(list_containers(&mut cri2).await.is_empty());
    let after = Footprint::read(d.dir.path(), &parent);
    assert!(
        after.container_dirs.is_empty() && after.cgroups.is_empty() && after.processes.is_empty(),
        "{after:?}"
    );
    assert_eq!(
        after.mounts,
        [pod.id.clone()].into(),
        "only the pod's pins and shm: {after:?}"
    );
    assert!(
        !d.dir.path().join("state/runc").join(&id).exists(),
        "runc forgot it"
    );
    // The pod still works.
    let c = create(
        &mut cri2,
        &pod,
        container_config("next", &image, &["sleep", "1000"]),
    )
    .await;
    cri2.runtime
        .start_container(api::StartContainerRequest { container_id: c })
        .await
        .unwrap();
    remove_pod(&mut cri2, &pod.id).await;
    drop(cri);
    eventually(d.dir.path(), &parent, "removed", |f| {
        *f == Footprint::default()
    })
    .await;
}

async fn create_request(
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

#[tokio::test]
async fn a_remove_container_cut_short_by_a_kill_is_finished() {
    let scratch = tempfile::tempdir().unwrap();
    let hold = Hold::new(scratch.path());
    let guard = CgroupParent::new("berth-crash-remove");
    let parent = guard.0.clone();
    let (mut d, mut cri, pod, image) = runc_pod(&hold, &parent).await;
    let id = create(
        &mut cri,
        &pod,
        container_config("doomed", &image, &["sleep", "1000"]),
    )
    .await;
    let kept = create(
        &mut cri,
        &pod,
        container_config("kept", &image, &["sleep", "1000"]),
    )
    .await;
    hold.set("delete");
    let call = {
        let mut cri = d.client().await;
        let id = id.clone();
        tokio::spawn(async move {
            let req = api::RemoveContainerRequest { container_id: id };
            cri.runtime.remove_container(req).await
        })
    };
    hold.wait_held("delete").await;
    d.kill9();
    assert!(
        call.await.unwrap().is_err(),
        "RemoveContainer was cut short"
    );
    hold.release("delete");
    tokio::time::sleep(Duration::from_millis(500)).await;
    d.restart();
    let mut cri = d.client().await;
    let listed = list_containers(&mut cri).await;
    assert_eq!(
        listed.len(),
        1,
        "the removal was finished, not left Exited: {listed:?}"
    );
    assert_eq!(
        (listed[0].id.as_str(), listed[0].state),
        (kept.as_str(), api::ContainerState::ContainerCreated as i32),
        "the other container is untouched"
    );
    let after = Footprint::read(d.dir.path(), &parent);
    assert_eq!(after.container_dirs, [kept.clone()].into(), "{after:?}");
    assert_eq!(after.cgroups, [kept.clone()].into(), "{after:?}");
    remove_pod(&mut cri, &pod.id).await;
    eventually(d.dir.path(), &parent, "removed", |f| {
        *f == Footprint::default()
    })
    .await;
}
