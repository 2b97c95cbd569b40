//! CreateContainer (under an intent, see `super::intents`) and StartContainer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cri_api as api;

use super::events::EventKind;
use super::image_etc;
use super::intents::Intent;
use super::records::{
    ContainerRecord, ContainerState, Exit, ProcessUser, SandboxRecord, SandboxState, new_id, now_ns,
};
use super::security;
use super::shim::CreateContainer;
use super::stop_signal;
use super::undo::Undo;
use super::{Result, Runtime, RuntimeError};
use crate::cgroup::{Cgroup, Driver, Resources};
use crate::image::manifest::ImageConfig;
use crate::image::store::ImageRecord;
use crate::snapshot::mount::{Overlay, mount_overlay, mount_overlay_idmapped, unmount_path};
use crate::spec::{
    ContainerInputs, EtcFiles, PodNamespaces, container_spec, resolve_user, user_string,
};
use crate::store::Table;

/// Writes a new file readable by root only (a spec holds the container's environment).
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?
        .write_all(data)
}

fn container_name(meta: &api::ContainerMetadata) -> String {
    format!("{}_{}", meta.name, meta.attempt)
}

impl Runtime {
    /// Creates a container in a Ready sandbox: rootfs overlay, spec, cgroup, then the shim's
    /// stopped process. Any failure unwinds every step already done.
    pub async fn create_container(
        self: &Arc<Self>,
        sandbox_id: &str,
        config: api::ContainerConfig,
        sandbox_config: Option<api::PodSandboxConfig>,
    ) -> Result<String> {
        let sandbox = self.sandbox(sandbox_id)?;
        if sandbox.state != SandboxState::Ready {
            return Err(RuntimeError::FailedPrecondition(format!(
                "pod sandbox {} is not ready",
                sandbox.id
            )));
        }
        let meta = config.metadata.clone().ok_or_else(|| {
            RuntimeError::InvalidArgument("container config has no metadata".into())
        })?;
        let name = container_name(&meta);
        let _reservation = self.reserve(format!("container {}/{name}", sandbox.id))?;
        let duplicate = self
            .containers()?
            .into_iter()
            .find(|c| c.sandbox_id == sandbox.id && container_name(&c.metadata()) == name);
        if let Some(c) = duplicate {
            return Err(RuntimeError::AlreadyExists(format!(
                "container name {name} in pod {} is already used by {}",
                sandbox.id, c.id
            )));
        }
        security::check_apparmor(&config)?;
        stop_signal::validate(config.stop_signal)?;
        self.check_env_fits_handler(&config, &sandbox.runtime_handler)?;
        let seccomp = security::seccomp_choice(&config)?;
        let image_spec = image_name(config.image.as_ref());
        let image = self.pulled_image(&image_spec, "image")?;
        let sandbox_config = sandbox_config.unwrap_or_else(|| sandbox.config.clone());
        let id = new_id();
        let intent = Intent::CreateContainer {
            sandbox_id: sandbox.id.clone(),
            bundle: self.settings.state_dir.join("containers").join(&id),
            rw_dir: self.settings.root_dir.join("containers").join(&id),
            cgroup: cgroup_path(self.settings.cgroup_driver, &sandbox_config, &id)?,
        };
        // Before the first side effect: a kill from here on leaves a note of what to undo.
        self.intend(&id, intent.clone())?;
        let mut undo = Undo::default();
        let result = self
            .build_container(
                &id,
                &sandbox,
                &sandbox_config,
                config,
                &image,
                &image_spec,
                seccomp,
                &mut undo,
            )
            .await;
        match result {
            Ok(()) => {
                undo.commit();
                tracing::info!(container_id = %id, pod_id = %sandbox.id, "container created");
                self.emit(&id, &sandbox.id, EventKind::Created);
                Ok(id)
            }
            Err(e) => {
                let failures = undo.unwind().await;
                // A failed cleanup keeps the intent: the next start tries again.
                let failures = match failures.is_empty() {
                    true => self.fulfil(&id, &intent).err().map(|e| vec![e.to_string()]),
                    false => Some(failures),
                };
                Err(e.with_cleanup(failures.unwrap_or_default()))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn build_container(
        &self,
        id: &str,
        sandbox: &SandboxRecord,
        sandbox_config: &api::PodSandboxConfig,
        config: api::ContainerConfig,
        image: &ImageRecord,
        image_spec: &str,
        seccomp: crate::spec::SeccompChoice,
        undo: &mut Undo,
    ) -> Result<()> {
        let bundle = self.settings.state_dir.join("containers").join(id);
        let rw_dir = self.settings.root_dir.join("containers").join(id);
        let rootfs = bundle.join("rootfs");
        let plan = crate::spec::sandbox_plan(sandbox_config)?;
        let userns_gid = plan.userns.as_ref().map(|maps| maps.gids.host);
        let mut private = vec![(&bundle, userns_gid), (&rw_dir, None)];
        if userns_gid.is_some() {
            // The pod's directories too: one tightened at start (an older berth made it without
            // the group) gets its group back.
            private.extend([
                (&sandbox.pod_dir, userns_gid),
                (&sandbox.data_dir, userns_gid),
            ]);
        }
        for (dir, gid) in private {
            super::dirs::private_dir(dir, gid)
                .map_err(RuntimeError::io(format!("create {}", dir.display())))?;
        }
        for dir in [rootfs.clone(), rw_dir.join("upper"), rw_dir.join("work")] {
            std::fs::create_dir_all(&dir)
                .map_err(RuntimeError::io(format!("create {}", dir.display())))?;
        }
        for dir in [bundle.clone(), rw_dir.clone()] {
            undo.push("container directory", move || {
                Box::pin(async move {
                    std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))
                })
            });
        }
        let overlay = self.image_overlay(image, &rw_dir)?;
        match (&plan.userns, &sandbox.namespaces.user) {
            (Some(maps), Some(userns)) => {
                let root = (maps.uids.host, maps.gids.host);
                let scratch = rw_dir.join("idmapped");
                mount_overlay_idmapped(&overlay, &rootfs, userns, &scratch, root)?;
            }
            (Some(_), None) => return Err(crate::spec::SpecError::MissingNamespace("user").into()),
            (None, _) => mount_overlay(&overlay, &rootfs)?,
        }
        {
            let rootfs = rootfs.clone();
            undo.push("rootfs mount", move || {
                Box::pin(async move { unmount_path(&rootfs).map_err(|e| e.to_string()) })
            });
        }
        let userns = plan.userns.as_ref().and(sandbox.namespaces.user.as_deref());
        let (spec_config, image_volumes) =
            self.mount_image_volumes(&config, &bundle, userns, undo)?;
        let image_config = self.image_config(image)?;
        let stop_sig = stop_signal::choose(config.stop_signal, &image_config.config.stop_signal);
        let (passwd, group) = image_etc::passwd_and_group(&rootfs).await?;
        let user = resolve_user(&user_string(&config, &image_config)?, &passwd, &group)?;
        let driver = self.settings.cgroup_driver;
        let cgroup_path = cgroup_path(driver, sandbox_config, id)?;
        let mut spec = container_spec(&ContainerInputs {
            container: &spec_config,
            sandbox: sandbox_config,
            image: &image_config,
            sandbox_id: &sandbox.id,
            image_name: image_spec,
            rootfs: rootfs.clone(),
            namespaces: PodNamespaces {
                net: sandbox.namespaces.net.clone(),
                ipc: sandbox.namespaces.ipc.clone(),
                uts: sandbox.namespaces.uts.clone(),
                pid: sandbox.namespaces.pid.clone(),
                user: sandbox.namespaces.user.clone(),
            },
            cgroups_path: driver.oci_path(&cgroup_path),
            user,
            etc: EtcFiles {
                hosts: Some(sandbox.data_dir.join("hosts")),
                resolv_conf: Some(sandbox.data_dir.join("resolv.conf")),
                hostname: Some(sandbox.data_dir.join("hostname")),
            },
            shm: sandbox.shm.clone(),
            devices: super::devices::cri_devices(&config)?,
            seccomp,
            host: &self.host,
        })?;
        if let Some(version) = self.handler_oci_version(&sandbox.runtime_handler, spec.version()) {
            spec.set_version(version);
        }
        let spec_json = serde_json::to_vec_pretty(&spec).expect("an OCI spec serialises");
        write_private(&bundle.join("config.json"), &spec_json).map_err(RuntimeError::io(
            format!("write {}/config.json", bundle.display()),
        ))?;

        let hierarchy = self.cgroups.as_ref().ok_or_else(|| {
            RuntimeError::FailedPrecondition("no cgroup hierarchy on this host".into())
        })?;
        let cgroup = Cgroup::create(hierarchy, &cgroup_path)?;
        {
            let cgroup = cgroup.clone();
            undo.push("container cgroup", move || {
                Box::pin(async move { cgroup.delete().map_err(|e| e.to_string()) })
            });
        }
        if let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            cgroup.apply_new(&Resources::from(resources))?;
        }

        let log_path = log_path(sandbox_config, &config);
        if let Some(parent) = log_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(RuntimeError::io(format!("create {}", parent.display())))?;
        }
        let shim = self.shim(&sandbox.id)?;
        let runtime = self.pod_runtime(&sandbox.runtime_handler)?;
        let request = CreateContainer {
            id: id.to_string(),
            bundle: bundle.clone(),
            log_path: Some(log_path.clone()).filter(|p| !p.as_os_str().is_empty()),
            stdin: config.stdin,
            stdin_once: config.stdin_once,
            tty: config.tty,
            cgroup: Some(cgroup_path.clone()),
            runtime,
        };
        let pid = shim.create(&request).await?;
        {
            let shim = shim.clone();
            let id = id.to_string();
            undo.push("container process", move || {
                Box::pin(async move { shim.delete(&id).await.map_err(|e| e.to_string()) })
            });
        }
        let record = ContainerRecord {
            id: id.to_string(),
            sandbox_id: sandbox.id.clone(),
            state: ContainerState::Created,
            created_at: now_ns(),
            started_at: 0,
            exit: None,
            pid,
            config,
            image_id: image.id.to_string(),
            image_name: image_spec.to_string(),
            image_ref: image
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_else(|| image.id.to_string()),
            log_path,
            bundle,
            rw_dir,
            chain_id: image
                .chain_ids
                .last()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            cgroup: cgroup_path,
            user: spec.process().as_ref().map(|p| ProcessUser {
                uid: p.user().uid(),
                gid: p.user().gid(),
                supplemental_groups: p.user().additional_gids().clone().unwrap_or_default(),
            }),
            image_volumes,
            stop_signal: stop_sig.cri as i32,
        };
        self.db.write(|w| {
            w.put(Table::Containers, id, &record)?;
            w.delete(Table::Intents, id)
        })?;
        Ok(())
    }

    /// The stored image `name` names (id, digest or tag, as kubelet sends it); NotFound names
    /// `what` when it was not pulled.
    pub(super) fn pulled_image(&self, name: &str, what: &'static str) -> Result<ImageRecord> {
        self.images
            .status(name)?
            .ok_or_else(|| RuntimeError::NotFound {
                what,
                id: name.to_string(),
            })
    }

    /// The overlay of an image's snapshots (topmost first) under a container's writable layer.
    fn image_overlay(&self, image: &ImageRecord, rw_dir: &Path) -> Result<Overlay> {
        let mut lowers = self.layer_dirs(&image.chain_ids)?;
        if lowers.is_empty() {
            // An image without layers still needs one (empty) lower directory.
            let empty = rw_dir.join("empty");
            std::fs::create_dir_all(&empty).map_err(RuntimeError::io("create empty lower"))?;
            lowers.push(empty);
        }
        Ok(Overlay {
            lowers,
            upper: rw_dir.join("upper"),
            work: rw_dir.join("work"),
            volatile: true,
        })
    }

    pub(super) fn image_config(&self, image: &ImageRecord) -> Result<ImageConfig> {
        let bytes = self.images.store().content.read(&image.id).map_err(|e| {
            RuntimeError::FailedPrecondition(format!("image {}: config: {e}", image.id))
        })?;
        ImageConfig::parse(&image.id, &bytes)
            .map_err(|e| RuntimeError::FailedPrecondition(format!("image {}: {e}", image.id)))
    }

    /// Releases a created container's process. A start that fails leaves it Exited with reason
    /// StartError, as kubelet expects.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let container = self.container(id)?;
        if container.state != ContainerState::Created {
            return Err(RuntimeError::FailedPrecondition(format!(
                "container {} is {:?}, not Created",
                container.id, container.state
            )));
        }
        let shim = self.shim(&container.sandbox_id)?;
        // Taken before the process is released, so it never comes after the exit time of a
        // process that ends at once.
        let started_at = now_ns();
        // Emitted before the release so that a process that exits at once cannot have its
        // Stopped event overtake this one.
        self.emit(&container.id, &container.sandbox_id, EventKind::Started);
        match shim.start(&container.id).await {
            Ok(()) => {
                self.update_container(&container.id, |c| {
                    if c.state == ContainerState::Created {
                        c.state = ContainerState::Running;
                    }
                    c.started_at = started_at;
                })?;
                tracing::info!(container_id = %container.id, "container started");
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                self.update_container(&container.id, |c| {
                    c.state = ContainerState::Exited;
                    c.exit = Some(Exit {
                        code: 128,
                        finished_at: now_ns(),
                        reason: "StartError".into(),
                        message: message.clone(),
                    });
                })?;
                self.emit(&container.id, &container.sandbox_id, EventKind::Stopped);
                Err(e.into())
            }
        }
    }

    /// An external OCI runtime reads `process.env` from config.json, where every entry is a
    /// JSON string: a value that is not UTF-8 cannot reach it intact (`spec::raw_env`).
    fn check_env_fits_handler(&self, config: &api::ContainerConfig, handler: &str) -> Result<()> {
        let Some(raw) = config
            .envs
            .iter()
            .find(|kv| std::str::from_utf8(&kv.value).is_err())
        else {
            return Ok(());
        };
        if self.pod_runtime(handler)?.is_none() {
            return Ok(()); // the built-in executor execs with the exact bytes
        }
        Err(RuntimeError::InvalidArgument(format!(
            "environment variable {}: its value is not UTF-8, which runtime handler {handler:?} \
             (an OCI runtime reading config.json) cannot be given; the built-in handler can",
            raw.key
        )))
    }
}

/// The image a CRI `ImageSpec` names; empty when there is none.
pub(super) fn image_name(spec: Option<&api::ImageSpec>) -> String {
    spec.map(|i| i.image.clone()).unwrap_or_default()
}

/// The container's cgroupfs path under the pod's cgroup parent, as the driver names it
/// (`cgroup::Driver::container_path`).
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
}
