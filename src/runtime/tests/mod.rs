//! Unit tests of the pod and container state machines over fakes at every seam (shim, launcher,
//! network, host mounts and cgroups): no root, no processes, no mounts. [`Harness`] is one
//! berthd over a temporary root and state dir; [`Harness::restart`] is a berthd killed and
//! started again over the same database, dirs and (still running) shims.

mod create_undo;
mod fake_host;
mod fake_nri;
mod fake_shim;
mod lifecycle;
mod nri;
mod pod_apply;
mod recovery;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fake_host::{FakeHost, FakeNetwork};
use fake_shim::{FakeLauncher, FakeShim};

use super::records::{ContainerRecord, ContainerState, SandboxRecord};
use super::{Runtime, RuntimeSettings};
use crate::cri_api as api;
use crate::image::Digest;
use crate::image::service::ImageService;
use crate::image::store::ImageRecord;
use crate::store::{Store, Table};

/// The image every test container runs.
const IMAGE: &str = "docker.io/library/fake:1";

pub struct Harness {
    pub dir: tempfile::TempDir,
    db: Arc<Store>,
    images: Arc<ImageService>,
    pub launcher: Arc<FakeLauncher>,
    pub network: Arc<FakeNetwork>,
    pub host: Arc<FakeHost>,
    pub nri: Arc<fake_nri::FakeNri>,
    pub runtime: Arc<Runtime>,
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = crate::config::Config {
            root_dir: dir.path().join("root"),
            state_dir: dir.path().join("state"),
            ..Default::default()
        };
        std::fs::create_dir_all(&config.root_dir).unwrap();
        std::fs::create_dir_all(&config.state_dir).unwrap();
        let db = Arc::new(Store::open(&config.root_dir.join("meta.redb")).expect("database"));
        let images = Arc::new(crate::image::open(&config, db.clone()).expect("image store"));
        add_image(&images);
        let (launcher, network, host) = Default::default();
        let nri: Arc<fake_nri::FakeNri> = Default::default();
        let mut harness = Harness {
            runtime: assemble(&dir, &db, &images, &launcher, &network, &host, &nri),
            dir,
            db,
            images,
            launcher,
            network,
            host,
            nri,
        };
        harness.runtime = harness.fresh_runtime();
        harness
    }

    fn fresh_runtime(&self) -> Arc<Runtime> {
        assemble(
            &self.dir,
            &self.db,
            &self.images,
            &self.launcher,
            &self.network,
            &self.host,
            &self.nri,
        )
    }

    /// berthd is killed and started again: a new runtime over the same database, dirs and
    /// seams, which recovers. (The old one's tasks stay idle: its shims' streams stay open.)
    pub async fn restart(&mut self) {
        self.runtime = self.fresh_runtime();
        self.runtime.recover().await.expect("recover");
    }

    pub fn pod_dir(&self, id: &str) -> PathBuf {
        self.dir.path().join("state/pods").join(id)
    }

    /// Calls made of the shim of `pod_dir`, dead or alive.
    pub fn shim_calls_of(&self, pod_dir: &std::path::Path) -> Vec<String> {
        self.launcher.any_shim(pod_dir).calls()
    }

    pub fn shim(&self, pod_id: &str) -> Arc<FakeShim> {
        self.launcher.shim(&self.pod_dir(pod_id))
    }

    pub async fn run_pod(&self, name: &str) -> String {
        self.runtime
            .run_sandbox(pod_config(name), "")
            .await
            .expect("run pod")
    }

    pub async fn create(&self, pod: &str, name: &str) -> String {
        self.runtime
            .create_container(pod, container_config(name), None)
            .await
            .expect("create container")
    }

    pub fn container(&self, id: &str) -> ContainerRecord {
        self.runtime.container(id).expect("container record")
    }

    pub fn sandbox(&self, id: &str) -> SandboxRecord {
        self.runtime.sandbox(id).expect("sandbox record")
    }

    /// Waits (up to 5 s) until container `id` is recorded Exited.
    pub async fn exited(&self, id: &str) -> ContainerRecord {
        for _ in 0..500 {
            let c = self.container(id);
            if c.state == ContainerState::Exited {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("container {id} did not exit");
    }

    /// Unfinished operations.
    pub fn intents(&self) -> Vec<String> {
        let rows: Vec<(String, super::intents::Intent)> =
            self.db.read(|r| r.list(Table::Intents)).expect("intents");
        rows.into_iter().map(|(id, _)| id).collect()
    }

    /// Entries of `<root or state>/<kind>`.
    pub fn entries(&self, base: &str, kind: &str) -> Vec<String> {
        std::fs::read_dir(self.dir.path().join(base).join(kind))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Asserts nothing of any pod or container is left anywhere: records, intents, shims,
    /// mounts, cgroups, network attachments, directories.
    pub fn assert_clean(&self) {
        assert!(
            self.runtime.sandboxes().unwrap().is_empty(),
            "sandbox records"
        );
        assert!(
            self.runtime.containers().unwrap().is_empty(),
            "container records"
        );
        assert_eq!(self.intents(), Vec::<String>::new(), "intents");
        assert_eq!(self.launcher.live(), Vec::<PathBuf>::new(), "live shims");
        assert_eq!(self.host.mounted(), Vec::<PathBuf>::new(), "mounts");
        assert_eq!(self.host.cgroups(), Vec::<String>::new(), "cgroups");
        assert_eq!(
            self.network.attached_ids(),
            Vec::<String>::new(),
            "networks"
        );
        for (base, kind) in [
            ("state", "pods"),
            ("root", "pods"),
            ("state", "containers"),
            ("root", "containers"),
        ] {
            assert_eq!(
                self.entries(base, kind),
                Vec::<String>::new(),
                "{base}/{kind}"
            );
        }
    }
}

fn assemble(
    dir: &tempfile::TempDir,
    db: &Arc<Store>,
    images: &Arc<ImageService>,
    launcher: &Arc<FakeLauncher>,
    network: &Arc<FakeNetwork>,
    host: &Arc<FakeHost>,
    nri: &Arc<fake_nri::FakeNri>,
) -> Arc<Runtime> {
    Runtime::assemble(
        RuntimeSettings {
            root_dir: dir.path().join("root"),
            state_dir: dir.path().join("state"),
            handlers: vec![],
            cdi: Arc::new(crate::devices::Registry::new(vec![])),
            cgroup_driver: crate::cgroup::Driver::Cgroupfs,
            without_host_devices: vec![],
        },
        db.clone(),
        images.clone(),
        launcher.clone(),
        network.clone(),
        host.clone(),
        None,
        nri.clone(),
    )
}

/// Stores [`IMAGE`]: a config without layers.
fn add_image(images: &ImageService) {
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/app"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let id = Digest::of(config);
    let store = images.store();
    store.content.put(&id, config).expect("put config");
    store
        .add(ImageRecord {
            id: id.clone(),
            repo_tags: vec![IMAGE.to_string()],
            repo_digests: vec![],
            manifest: id,
            index: None,
            layers: vec![],
            chain_ids: vec![],
            size: config.len() as u64,
            user: String::new(),
            pinned: false,
        })
        .expect("add image");
}

pub fn pod_config(name: &str) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            attempt: 0,
        }),
        ..Default::default()
    }
}

pub fn container_config(name: &str) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
