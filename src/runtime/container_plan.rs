//! CreateContainer as a plan: everything about a new container that follows from the request,
//! its pod and its image without touching the host (its paths, cgroup, log file, the directories
//! to make and how private, the rootfs id-mapping, its intent, the shim request and the record).
//! `container.rs` applies it with the host layer (`super::host`) and the shim. Pure: unit-tested
//! without root.

use std::path::{Path, PathBuf};

use crate::cri_api as api;

use super::host::IdMapping;
use super::intents::Intent;
use super::records::{ContainerRecord, ContainerState, ProcessUser, SandboxRecord, now_ns};
use super::{Result, RuntimeSettings};
use crate::cgroup::Driver;
use crate::image::store::ImageRecord;
use crate::oci::OciRuntime;
use crate::shimclient::CreateContainer;

/// What creating container `id` in `sandbox` will make.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerPlan {
    pub id: String,
    pub sandbox_id: String,
    /// `<state_dir>/containers/<id>`: config.json, the rootfs mount, the exit file.
    pub bundle: PathBuf,
    /// `<root_dir>/containers/<id>`: the writable layer.
    pub rw_dir: PathBuf,
    /// `<bundle>/rootfs`.
    pub rootfs: PathBuf,
    /// Its cgroupfs path (last component: the id).
    pub cgroup: String,
    /// Its CRI log file; empty when the pod has no log directory.
    pub log_path: PathBuf,
    /// Directories made private, with the pod root's host gid as group when the pod has its
    /// own user namespace (the pod's own dirs then too: an older berth made them without it).
    pub private_dirs: Vec<(PathBuf, Option<u32>)>,
    /// Plain directories inside those: the rootfs mount point, the overlay's upper and work.
    pub dirs: Vec<PathBuf>,
    /// How the rootfs is id-mapped, in a pod with its own user namespace.
    pub idmap: Option<IdMapping>,
}

impl ContainerPlan {
    pub fn new(
        settings: &RuntimeSettings,
        id: &str,
        sandbox: &SandboxRecord,
        sandbox_config: &api::PodSandboxConfig,
        config: &api::ContainerConfig,
    ) -> Result<ContainerPlan> {
        let bundle = settings.state_dir.join("containers").join(id);
        let rw_dir = settings.root_dir.join("containers").join(id);
        let rootfs = bundle.join("rootfs");
        let pod = crate::spec::sandbox_plan(sandbox_config)?;
        let gid = pod.userns.as_ref().map(|maps| maps.gids.host);
        let mut private_dirs = vec![(bundle.clone(), gid), (rw_dir.clone(), None)];
        if gid.is_some() {
            private_dirs.extend([
                (sandbox.pod_dir.clone(), gid),
                (sandbox.data_dir.clone(), gid),
            ]);
        }
        let idmap = match (&pod.userns, &sandbox.namespaces.user) {
            (Some(maps), Some(userns)) => Some(IdMapping {
                userns: userns.clone(),
                scratch: rw_dir.join("idmapped"),
                root: (maps.uids.host, maps.gids.host),
            }),
            (Some(_), None) => return Err(crate::spec::SpecError::MissingNamespace("user").into()),
            (None, _) => None,
        };
        Ok(ContainerPlan {
            id: id.to_string(),
            sandbox_id: sandbox.id.clone(),
            dirs: vec![rootfs.clone(), rw_dir.join("upper"), rw_dir.join("work")],
            cgroup: cgroup_path(settings.cgroup_driver, sandbox_config, id)?,
            log_path: log_path(sandbox_config, config),
            bundle,
            rw_dir,
            rootfs,
            private_dirs,
            idmap,
        })
    }

    /// The intent recorded before the first side effect: everything recovery must undo.
    pub fn intent(&self) -> Intent {
        Intent::CreateContainer {
            sandbox_id: self.sandbox_id.clone(),
            bundle: self.bundle.clone(),
            rw_dir: self.rw_dir.clone(),
            cgroup: self.cgroup.clone(),
        }
    }

    /// What the pod's shim is asked to create.
    pub fn request(
        &self,
        config: &api::ContainerConfig,
        runtime: Option<OciRuntime>,
    ) -> CreateContainer {
        CreateContainer {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            log_path: Some(self.log_path.clone()).filter(|p| !p.as_os_str().is_empty()),
            stdin: config.stdin,
            stdin_once: config.stdin_once,
            tty: config.tty,
            cgroup: Some(self.cgroup.clone()),
            runtime,
        }
    }

    /// The Created record of the container the shim made as `pid`.
    pub fn record(&self, made: Made) -> ContainerRecord {
        let Made {
            pid,
            config,
            image,
            image_name,
            user,
            image_volumes,
            stop_signal,
        } = made;
        ContainerRecord {
            id: self.id.clone(),
            sandbox_id: self.sandbox_id.clone(),
            state: ContainerState::Created,
            created_at: now_ns(),
            started_at: 0,
            exit: None,
            pid,
            config,
            image_id: image.id.to_string(),
            image_name,
            image_ref: (image.repo_digests.first().cloned())
                .unwrap_or_else(|| image.id.to_string()),
            log_path: self.log_path.clone(),
            bundle: self.bundle.clone(),
            rw_dir: self.rw_dir.clone(),
            chain_id: (image.chain_ids.last().map(|c| c.to_string())).unwrap_or_default(),
            cgroup: self.cgroup.clone(),
            user,
            image_volumes,
            stop_signal,
        }
    }
}

/// What the creation learnt on the way, for the record.
pub struct Made<'a> {
    pub pid: u32,
    pub config: api::ContainerConfig,
    pub image: &'a ImageRecord,
    /// The image as kubelet named it.
    pub image_name: String,
    pub user: Option<ProcessUser>,
    pub image_volumes: Vec<super::image_volumes::ImageVolume>,
    /// The CRI number of the chosen stop signal.
    pub stop_signal: i32,
}

/// The image a CRI `ImageSpec` names; empty when there is none.
pub(super) fn image_name(spec: Option<&api::ImageSpec>) -> String {
    spec.map(|i| i.image.clone()).unwrap_or_default()
}

/// The container's cgroupfs path under the pod's cgroup parent (or berth's own tree), as the
/// driver names it: a directory named by the id, or the id's scope under the pod's slice.
pub(super) fn cgroup_path(
    driver: Driver,
    sandbox: &api::PodSandboxConfig,
    id: &str,
) -> Result<String> {
    let parent = sandbox
        .linux
        .as_ref()
        .map_or("", |l| l.cgroup_parent.as_str());
    Ok(driver.container_path(parent, id)?)
}

/// `log_directory/log_path`, or nothing when the pod has no log directory.
fn log_path(sandbox: &api::PodSandboxConfig, container: &api::ContainerConfig) -> PathBuf {
    if sandbox.log_directory.is_empty() || container.log_path.is_empty() {
        return PathBuf::new();
    }
    Path::new(&sandbox.log_directory).join(&container.log_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::records::{PinnedPaths, SandboxState};

    #[test]
    fn cgroup_paths_and_log_paths() {
        let mut pod = api::PodSandboxConfig::default();
        assert_eq!(
            cgroup_path(Driver::Cgroupfs, &pod, "abc").unwrap(),
            "/berth/abc"
        );
        pod.linux = Some(api::LinuxPodSandboxConfig {
            cgroup_parent: "/kubepods/besteffort/pod123/".into(),
            ..Default::default()
        });
        assert_eq!(
            cgroup_path(Driver::Cgroupfs, &pod, "abc").unwrap(),
            "/kubepods/besteffort/pod123/abc"
        );
        pod.linux.as_mut().unwrap().cgroup_parent = "kubepods-besteffort-pod1.slice".into();
        assert_eq!(
            cgroup_path(Driver::Cgroupfs, &pod, "abc").unwrap(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/abc"
        );
        pod.linux.as_mut().unwrap().cgroup_parent = "kubepods--x.slice".into();
        assert!(cgroup_path(Driver::Cgroupfs, &pod, "abc").is_err());
        let c = api::ContainerConfig {
            log_path: "app/0.log".into(),
            ..Default::default()
        };
        assert_eq!(log_path(&pod, &c), PathBuf::new());
        pod.log_directory = "/var/log/pods/x".into();
        assert_eq!(
            log_path(&pod, &c),
            PathBuf::from("/var/log/pods/x/app/0.log")
        );
    }

    fn sandbox() -> SandboxRecord {
        SandboxRecord {
            id: "p1".into(),
            state: SandboxState::Ready,
            created_at: 1,
            config: Default::default(),
            runtime_handler: String::new(),
            pod_dir: "/run/berth/pods/p1".into(),
            data_dir: "/var/lib/berth/pods/p1".into(),
            namespaces: PinnedPaths::default(),
            shm: None,
            hostname: None,
            ips: vec![],
        }
    }

    fn settings() -> RuntimeSettings {
        RuntimeSettings {
            root_dir: "/var/lib/berth".into(),
            state_dir: "/run/berth".into(),
            handlers: vec![],
            cdi: std::sync::Arc::new(crate::devices::Registry::new(vec![])),
            cgroup_driver: Driver::Cgroupfs,
            without_host_devices: vec![],
        }
    }

    #[test]
    fn a_plan_names_every_path_the_container_gets() {
        let pod = api::PodSandboxConfig {
            log_directory: "/var/log/pods/x".into(),
            ..Default::default()
        };
        let config = api::ContainerConfig {
            log_path: "app/0.log".into(),
            tty: true,
            ..Default::default()
        };
        let plan = ContainerPlan::new(&settings(), "c1", &sandbox(), &pod, &config).unwrap();
        let bundle = PathBuf::from("/run/berth/containers/c1");
        let rw = PathBuf::from("/var/lib/berth/containers/c1");
        assert_eq!(plan.bundle, bundle);
        assert_eq!(plan.rootfs, bundle.join("rootfs"));
        assert_eq!(plan.rw_dir, rw);
        assert_eq!(plan.cgroup, "/berth/c1");
        assert_eq!(plan.log_path, PathBuf::from("/var/log/pods/x/app/0.log"));
        assert_eq!(
            plan.private_dirs,
            [(bundle.clone(), None), (rw.clone(), None)]
        );
        assert_eq!(
            plan.dirs,
            [bundle.join("rootfs"), rw.join("upper"), rw.join("work")]
        );
        assert_eq!(plan.idmap, None);
        assert_eq!(
            plan.intent(),
            Intent::CreateContainer {
                sandbox_id: "p1".into(),
                bundle: bundle.clone(),
                rw_dir: rw,
                cgroup: "/berth/c1".into(),
            }
        );
        let request = plan.request(&config, None);
        assert_eq!(request.id, "c1");
        assert!(request.tty);
        assert_eq!(request.cgroup.as_deref(), Some("/berth/c1"));
        assert_eq!(request.log_path, Some(plan.log_path.clone()));
    }

    #[test]
    fn a_plan_without_a_log_directory_asks_for_no_log() {
        let plan = ContainerPlan::new(
            &settings(),
            "c1",
            &sandbox(),
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(plan.request(&Default::default(), None).log_path, None);
    }

    #[test]
    fn the_record_is_created_with_the_plan_and_what_was_made() {
        let plan = ContainerPlan::new(
            &settings(),
            "c1",
            &sandbox(),
            &Default::default(),
            &Default::default(),
        )
        .unwrap();
        let digest = crate::image::Digest::of(b"config");
        let image = ImageRecord {
            id: digest.clone(),
            repo_tags: vec![],
            repo_digests: vec!["docker.io/library/x@sha256:ab".into()],
            manifest: digest.clone(),
            index: None,
            layers: vec![],
            chain_ids: vec![digest.clone()],
            size: 1,
            user: String::new(),
            pinned: false,
        };
        let record = plan.record(Made {
            pid: 42,
            config: Default::default(),
            image: &image,
            image_name: "x".into(),
            user: None,
            image_volumes: vec![],
            stop_signal: 15,
        });
        assert_eq!(record.state, ContainerState::Created);
        assert_eq!((record.pid, record.stop_signal), (42, 15));
        assert_eq!(record.image_ref, "docker.io/library/x@sha256:ab");
        assert_eq!(record.chain_id, digest.to_string());
        assert_eq!((record.bundle, record.cgroup), (plan.bundle, plan.cgroup));
    }
}
