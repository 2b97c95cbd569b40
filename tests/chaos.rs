//! Chaos: seeded random CRI sequences (run pod, create/start/stop/remove container, exec,
//! stop/remove pod; pods on the built-in executor or runc) against a real berthd, which is SIGKILLed a random moment after a request
//! was sent and restarted. After every round what the API lists must be what was acknowledged
//! (the request in flight may have happened or not, but wholly), and the host must hold exactly
//! what the API lists: shims, processes in the pods' cgroup parent, mounts, pod and container
//! dirs, cgroups, cached CNI attachments and IP leases.
//!
//! `BERTH_CHAOS_SEED` replays a run (the seed is printed); `BERTH_CHAOS_ROUNDS` sets the number
//! of rounds (15 by default, under a minute here). Root, real shims, CNI plugins and cgroups.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth::client::CriClient;
use berth::cri::api;
use common::host::{CgroupParent, Footprint, eventually};
use common::network::{TestNet, busybox};
use common::pods::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Created,
    Running,
    Exited,
}

/// What the API lists: pod id -> (ready, container id -> (name, state)); names of pods beside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct World {
    pods: BTreeMap<String, PodEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PodEntry {
    name: String,
    ready: bool,
    containers: BTreeMap<String, (String, State)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    RunPod(String),
    Create { pod: String, name: String },
    Start(String),
    Stop(String),
    Remove(String),
    Exec(String),
    StopPod(String),
    RemovePod(String),
}

impl World {
    fn containers(&self) -> impl Iterator<Item = (&String, &String, State)> {
        self.pods
            .iter()
            .flat_map(|(p, e)| e.containers.iter().map(move |(c, (_, s))| (p, c, *s)))
    }

    fn pod_of(&self, container: &str) -> String {
        self.containers()
            .find(|(_, c, _)| *c == container)
            .map(|(p, _, _)| p.clone())
            .expect("a known container")
    }

    /// A random operation the current state allows.
    fn choose(&self, rng: &mut StdRng, serial: &mut u32) -> Op {
        let mut ops = vec![];
        *serial += 1;
        if self.pods.len() < 3 {
            // `r` pods run their containers with runc, `p` pods with the built-in executor.
            let kind = if rng.random_bool(0.5) { 'r' } else { 'p' };
            ops.push(Op::RunPod(format!("{kind}{serial}")));
        }
        for (id, pod) in &self.pods {
            if pod.ready && pod.containers.len() < 3 {
                let name = format!("c{serial}");
                ops.push(Op::Create {
                    pod: id.clone(),
                    name,
                });
            }
            if pod.ready {
                ops.push(Op::StopPod(id.clone()));
            }
            ops.push(Op::RemovePod(id.clone()));
            for (c, (_, state)) in &pod.containers {
                match state {
                    State::Created if pod.ready => ops.push(Op::Start(c.clone())),
                    State::Running => {
                        ops.push(Op::Stop(c.clone()));
                        ops.push(Op::Exec(c.clone()));
                    }
                    _ => {}
                }
                ops.push(Op::Remove(c.clone()));
            }
        }
        ops.swap_remove(rng.random_range(0..ops.len()))
    }

    /// The world after `op` succeeded; `new_id` is the id a create returned.
    fn after(&self, op: &Op, new_id: Option<&str>) -> World {
        let mut w = self.clone();
        let set = |w: &mut World, c: &str, s: State| {
            let pod = w.pod_of(c);
            w.pods
                .get_mut(&pod)
                .unwrap()
                .containers
                .get_mut(c)
                .unwrap()
                .1 = s;
        };
        match op {
            Op::RunPod(name) => {
                let entry = PodEntry {
                    name: name.clone(),
                    ready: true,
                    containers: BTreeMap::new(),
                };
                w.pods.insert(new_id.unwrap().to_string(), entry);
            }
            Op::Create { pod, name } => {
                let c = (name.clone(), State::Created);
                let containers = &mut w.pods.get_mut(pod).unwrap().containers;
                containers.insert(new_id.unwrap().to_string(), c);
            }
            Op::Start(c) => set(&mut w, c, State::Running),
            Op::Stop(c) => set(&mut w, c, State::Exited),
            Op::Remove(c) => {
                let pod = w.pod_of(c);
                w.pods.get_mut(&pod).unwrap().containers.remove(c);
            }
            Op::Exec(_) => {}
            Op::StopPod(p) => {
                let pod = w.pods.get_mut(p).unwrap();
                pod.ready = false;
                pod.containers
                    .values_mut()
                    .for_each(|c| c.1 = State::Exited);
            }
            Op::RemovePod(p) => {
                w.pods.remove(p);
            }
        }
        w
    }
}

/// Runs `op`; the new id for creations.
async fn run(
    cri: &mut CriClient,
    op: &Op,
    image: &str,
    configs: &BTreeMap<String, api::PodSandboxConfig>,
    new_config: &api::PodSandboxConfig,
) -> Result<Option<String>, tonic::Status> {
    let rt = &mut cri.runtime;
    match op {
        Op::RunPod(name) => {
            let handler = if name.starts_with('r') { "runc" } else { "" };
            let req = api::RunPodSandboxRequest {
                config: Some(new_config.clone()),
                runtime_handler: handler.into(),
            };
            Ok(Some(
                rt.run_pod_sandbox(req).await?.into_inner().pod_sandbox_id,
            ))
        }
        Op::Create { pod, name } => {
            let req = api::CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(container_config(name, image, &["sleep", "100000"])),
                sandbox_config: configs.get(pod).cloned(),
            };
            Ok(Some(
                rt.create_container(req).await?.into_inner().container_id,
            ))
        }
        Op::Start(c) => {
            let req = api::StartContainerRequest {
                container_id: c.clone(),
            };
            rt.start_container(req).await.map(|_| None)
        }
        Op::Stop(c) => {
            let req = api::StopContainerRequest {
                container_id: c.clone(),
                timeout: 0,
            };
            rt.stop_container(req).await.map(|_| None)
        }
        Op::Remove(c) => {
            let req = api::RemoveContainerRequest {
                container_id: c.clone(),
            };
            rt.remove_container(req).await.map(|_| None)
        }
        Op::Exec(c) => {
            let req = api::ExecSyncRequest {
                container_id: c.clone(),
                cmd: vec!["sleep".into(), "0.2".into()],
                timeout: 10,
            };
            let out = rt.exec_sync(req).await?.into_inner();
            assert_eq!(out.exit_code, 0, "{out:?}");
            Ok(None)
        }
        Op::StopPod(p) => {
            let req = api::StopPodSandboxRequest {
                pod_sandbox_id: p.clone(),
            };
            rt.stop_pod_sandbox(req).await.map(|_| None)
        }
        Op::RemovePod(p) => {
            let req = api::RemovePodSandboxRequest {
                pod_sandbox_id: p.clone(),
            };
            rt.remove_pod_sandbox(req).await.map(|_| None)
        }
    }
}

/// What the API lists now.
async fn listed(cri: &mut CriClient) -> Result<World, tonic::Status> {
    let req = api::ListPodSandboxRequest { filter: None };
    let pods = cri.runtime.list_pod_sandbox(req).await?.into_inner();
    let req = api::ListContainersRequest { filter: None };
    let containers = cri.runtime.list_containers(req).await?.into_inner();
    let mut w = World::default();
    for p in pods.items {
        let entry = PodEntry {
            name: p.metadata.unwrap_or_default().name,
            ready: p.state == api::PodSandboxState::SandboxReady as i32,
            containers: BTreeMap::new(),
        };
        w.pods.insert(p.id, entry);
    }
    for c in containers.containers {
        let state = match api::ContainerState::try_from(c.state) {
            Ok(api::ContainerState::ContainerCreated) => State::Created,
            Ok(api::ContainerState::ContainerRunning) => State::Running,
            Ok(api::ContainerState::ContainerExited) => State::Exited,
            other => panic!("container {} is {other:?}", c.id),
        };
        let name = c.metadata.unwrap_or_default().name;
        let pod = w.pods.get_mut(&c.pod_sandbox_id).expect("a listed pod");
        pod.containers.insert(c.id, (name, state));
    }
    Ok(w)
}

/// The created object the API lists that `before` does not (a create whose reply was lost).
fn created_id(before: &World, now: &World, op: &Op) -> Option<String> {
    match op {
        Op::RunPod(name) => now
            .pods
            .iter()
            .find(|(id, p)| !before.pods.contains_key(*id) && p.name == *name)
            .map(|(id, _)| id.clone()),
        Op::Create { pod, name } => now.pods.get(pod)?.containers.iter().find_map(|(id, c)| {
            let new = !before.pods[pod].containers.contains_key(id);
            (new && c.0 == *name).then(|| id.clone())
        }),
        _ => None,
    }
}

/// The host holds exactly what `w` lists.
async fn check_host(d: &common::Daemon, net: &TestNet, parent: &str, w: &World, ctx: &str) {
    let ready: BTreeSet<String> = w
        .pods
        .iter()
        .filter(|(_, p)| p.ready)
        .map(|(id, _)| id.clone())
        .collect();
    let pods: BTreeSet<String> = w.pods.keys().cloned().collect();
    let containers: BTreeSet<String> = w.containers().map(|(_, c, _)| c.clone()).collect();
    let live: BTreeSet<String> = w
        .containers()
        .filter(|(_, _, s)| *s != State::Exited)
        .map(|(_, c, _)| c.clone())
        .collect();
    let mounted: BTreeSet<String> = ready.union(&containers).cloned().collect();
    let expected = Footprint {
        shims: ready.clone(),
        processes: live.clone(),
        mounts: mounted,
        pod_dirs: pods,
        container_dirs: containers.clone(),
        cgroups: containers.clone(),
        cni_cache: ready.clone(),
    };
    let what = format!("{ctx}: the host holds what the API lists: {expected:#?}");
    // A cgroup lives from create to remove; only runc removes an exited container's own cgroup
    // early (its `delete` when the pod stops): at most the listed ones, at least the live ones.
    eventually(d.dir.path(), parent, &what, |f| {
        let cgroups_ok = f.cgroups.is_subset(&containers) && live.is_subset(&f.cgroups);
        let rest = Footprint {
            cgroups: expected.cgroups.clone(),
            ..f.clone()
        };
        cgroups_ok && rest == expected
    })
    .await;
    assert_eq!(net.leases().len(), ready.len(), "{ctx}: IP leases");
}

#[tokio::test]
async fn random_kills_leave_no_orphans_leaks_or_lost_acknowledgements() {
    let seed: u64 = std::env::var("BERTH_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let rounds: u32 = std::env::var("BERTH_CHAOS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    eprintln!("chaos: BERTH_CHAOS_SEED={seed} BERTH_CHAOS_ROUNDS={rounds}");
    let mut rng = StdRng::seed_from_u64(seed);
    let guard = CgroupParent::new("berth-chaos");
    let parent = guard.0.clone();
    let net = TestNet::new("chaos", 43);
    net.write_default();
    let mut d = common::Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n{}runtime:\n  handlers:\n  - name: runc\n    path: /usr/sbin/runc\n",
        common::registry::registries().plain,
        net.yaml()
    ));
    let mut cri = d.client().await;
    let image = busybox();
    pull(&mut cri, &image).await;
    let logs = d.dir.path().join("logs");
    let mut configs: BTreeMap<String, api::PodSandboxConfig> = BTreeMap::new();
    let mut world = World::default();
    let mut serial = 0;
    let (mut kills, mut cut) = (0, 0);
    for round in 0..rounds {
        let ctx = format!("seed {seed} round {round}");
        for _ in 0..rng.random_range(1..4) {
            let op = world.choose(&mut rng, &mut serial);
            let config = pod_config_in(&op, &logs, &parent);
            // As kubelet does, a failed request is retried (a creation under the same name
            // only after the failure, which left nothing behind).
            let mut tries = 0;
            let new_id = loop {
                match run(&mut cri, &op, &image, &configs, &config).await {
                    Ok(id) => break id,
                    Err(e) if tries < 2 => eprintln!("{ctx}: {op:?}: {e}; retrying"),
                    Err(e) => panic!("{ctx}: {op:?}: {e}"),
                }
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            if let Op::RunPod(_) = op {
                configs.insert(new_id.clone().unwrap(), config);
            }
            world = world.after(&op, new_id.as_deref());
        }
        // The request in flight when berthd is killed.
        let op = world.choose(&mut rng, &mut serial);
        // Most requests take 5-150 ms here: most kills land inside one, some after it.
        let delay = Duration::from_micros(rng.random_range(0..100_000));
        let config = pod_config_in(&op, &logs, &parent);
        let call = {
            let (mut cri, op, image, configs, config) = (
                d.client().await,
                op.clone(),
                image.clone(),
                configs.clone(),
                config.clone(),
            );
            tokio::spawn(async move { run(&mut cri, &op, &image, &configs, &config).await })
        };
        tokio::time::sleep(delay).await;
        d.kill9();
        kills += 1;
        let acked = call.await.unwrap();
        d.restart();
        cri = d.client().await;
        let now = match listed(&mut cri).await {
            Ok(now) => now,
            Err(e) => {
                // Seen once in a few hundred rounds: the first call on a fresh connection is
                // reset. A berthd that does not answer a new connection fails here.
                eprintln!("{ctx}: listing after the restart: {e}; once more on a new connection");
                cri = d.client().await;
                listed(&mut cri)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: list: {e}"))
            }
        };
        match acked {
            Ok(new_id) => {
                if let Op::RunPod(_) = op {
                    configs.insert(new_id.clone().unwrap(), config);
                }
                world = world.after(&op, new_id.as_deref());
                assert_eq!(now, world, "{ctx}: acknowledged {op:?} and all before it");
            }
            Err(_) => {
                cut += 1;
                let new_id = created_id(&world, &now, &op);
                let done = match (&op, &new_id) {
                    (Op::RunPod(_) | Op::Create { .. }, None) => world.clone(),
                    _ => world.after(&op, new_id.as_deref()),
                };
                assert!(
                    now == world || now == done,
                    "{ctx}: {op:?} cut short must have happened wholly or not at all\nbefore: {world:#?}\nnow: {now:#?}"
                );
                if let (Op::RunPod(_), Some(id)) = (&op, &new_id) {
                    configs.insert(id.clone(), config);
                }
                world = now;
            }
        }
        check_host(&d, &net, &parent, &world, &ctx).await;
    }
    eprintln!(
        "chaos: {kills} kills, {cut} requests cut short, 0 orphans, leaks or lost acknowledgements"
    );
    for id in world.pods.keys() {
        remove_pod(&mut cri, id).await;
    }
    check_host(
        &d,
        &net,
        &parent,
        &World::default(),
        "after removing every pod",
    )
    .await;
}

/// The config of the pod a RunPod creates (in the test's cgroup parent); unused otherwise.
fn pod_config_in(op: &Op, logs: &std::path::Path, parent: &str) -> api::PodSandboxConfig {
    let name = match op {
        Op::RunPod(name) => name.as_str(),
        _ => "unused",
    };
    let mut config = pod_config(name, logs);
    config.linux = Some(api::LinuxPodSandboxConfig {
        cgroup_parent: parent.into(),
        ..Default::default()
    });
    config
}
