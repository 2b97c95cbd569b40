//! CreateContainer (its plan is `super::container_plan`; under an intent, see
//! `super::intents`) and StartContainer.

use std::path::Path;
use std::sync::Arc;

use crate::cri_api as api;

use super::container_plan::{ContainerPlan, Made, image_name};
use super::events::EventKind;
use super::image_etc;
use super::nri_seam::NewContainer;
use super::records::{ContainerState, ProcessUser, SandboxRecord, SandboxState, new_id, now_ns};
use super::security;
use super::stop_signal;
use super::undo::{Step, Undo, UndoFailure};
use super::{Result, Runtime, RuntimeError};
use crate::cgroup::Resources;
use crate::image::manifest::ImageConfig;
use crate::image::store::ImageRecord;
use crate::snapshot::mount::Overlay;
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
            return Err(RuntimeError::SandboxNotReady(sandbox.id));
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
            return Err(RuntimeError::NameInUse {
                what: "container",
                name: format!("{name} in pod {}", sandbox.id),
                by: c.id,
            });
        }
        security::check_apparmor(&config)?;
        stop_signal::validate(config.stop_signal)?;
        self.check_env_fits_handler(&config, &sandbox.runtime_handler)?;
        let seccomp = security::seccomp_choice(&config)?;
        let image_spec = image_name(config.image.as_ref());
        let image = self.pulled_image(&image_spec, "image")?;
        let sandbox_config = sandbox_config.unwrap_or_else(|| sandbox.config.clone());
        let id = new_id();
        let plan = ContainerPlan::new(&self.settings, &id, &sandbox, &sandbox_config, &config)?;
        let intent = plan.intent();
        // Before the first side effect: a kill from here on leaves a note of what to undo.
        self.intend(&id, intent.clone())?;
        let mut undo = Undo::default();
        let result = self
            .build_container(
                &plan,
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
                let failures = undo.unwind(self).await;
                // A failed cleanup keeps the intent: the next start tries again.
                let failures = match failures.is_empty() {
                    true => self.fulfil(&id, &intent).err().map(|error| {
                        vec![UndoFailure {
                            what: format!("intent of container {id}"),
                            error,
                        }]
                    }),
                    false => Some(failures),
                };
                Err(e.with_cleanup(failures.unwrap_or_default()))
            }
        }
    }

    /// Applies `plan`: directories, rootfs mount, image volumes, config.json, cgroup, the
    /// shim's process, then the record (which ends the intent, in one transaction).
    #[allow(clippy::too_many_arguments)]
    async fn build_container(
        &self,
        plan: &ContainerPlan,
        sandbox: &SandboxRecord,
        sandbox_config: &api::PodSandboxConfig,
        config: api::ContainerConfig,
        image: &ImageRecord,
        image_spec: &str,
        seccomp: crate::spec::SeccompChoice,
        undo: &mut Undo,
    ) -> Result<()> {
        for (dir, gid) in &plan.private_dirs {
            super::dirs::private_dir(dir, *gid)
                .map_err(RuntimeError::io(format!("create {}", dir.display())))?;
        }
        for dir in &plan.dirs {
            std::fs::create_dir_all(dir)
                .map_err(RuntimeError::io(format!("create {}", dir.display())))?;
        }
        for dir in [&plan.bundle, &plan.rw_dir] {
            undo.push(Step::RemoveDir(dir.clone()));
        }
        let overlay = self.image_overlay(image, &plan.rw_dir)?;
        self.effects
            .mount_rootfs(&overlay, &plan.rootfs, plan.idmap.as_ref())?;
        undo.push(Step::Unmount(plan.rootfs.clone()));
        let userns = plan.idmap.as_ref().map(|m| m.userns.as_path());
        let (spec_config, image_volumes) =
            self.mount_image_volumes(&config, &plan.bundle, userns, undo)?;
        let image_config = self.image_config(image)?;
        let stop_sig = stop_signal::choose(config.stop_signal, &image_config.config.stop_signal);
        let (passwd, group) = image_etc::passwd_and_group(&plan.rootfs).await?;
        let user = resolve_user(&user_string(&config, &image_config)?, &passwd, &group)?;
        let driver = self.settings.cgroup_driver;
        let host_devices = self.privileged_host_devices(&sandbox.runtime_handler);
        let mut devices = super::devices::cri_devices(&config)?;
        if host_devices && security::privileged(&config) {
            devices = super::devices::with_host_devices(Path::new("/dev"), devices)?;
        }
        let spec = container_spec(&ContainerInputs {
            container: &spec_config,
            sandbox: sandbox_config,
            image: &image_config,
            sandbox_id: &sandbox.id,
            image_name: image_spec,
            rootfs: plan.rootfs.clone(),
            namespaces: PodNamespaces {
                net: sandbox.namespaces.net.clone(),
                ipc: sandbox.namespaces.ipc.clone(),
                uts: sandbox.namespaces.uts.clone(),
                pid: sandbox.namespaces.pid.clone(),
                user: sandbox.namespaces.user.clone(),
            },
            cgroups_path: driver.oci_path(&plan.cgroup),
            user,
            etc: EtcFiles {
                hosts: Some(sandbox.data_dir.join("hosts")),
                resolv_conf: Some(sandbox.data_dir.join("resolv.conf")),
                hostname: Some(sandbox.data_dir.join("hostname")),
            },
            shm: sandbox.shm.clone(),
            devices,
            privileged_host_devices: host_devices,
            seccomp,
            host: &self.host,
        })?;
        let mut spec = self.inject_cdi_devices(&config, &sandbox.runtime_handler, spec)?;
        // Plugins adjust the spec before anything of it is written or lists the container.
        let hold = self.nri.hold().await;
        let new = NewContainer {
            id: &plan.id,
            config: &config,
            built_in: self.pod_runtime(&sandbox.runtime_handler)?.is_none(),
        };
        self.nri.create_container(sandbox, new, &mut spec).await?;
        if let Some(version) = self.handler_oci_version(&sandbox.runtime_handler, spec.version()) {
            spec.set_version(version);
        }
        let spec_json = serde_json::to_vec_pretty(&spec).expect("an OCI spec serialises");
        let spec_path = plan.bundle.join("config.json");
        write_private(&spec_path, &spec_json)
            .map_err(RuntimeError::io(format!("write {}", spec_path.display())))?;

        self.effects.create_cgroup(&plan.cgroup)?;
        undo.push(Step::RemoveCgroup(plan.cgroup.clone()));
        if let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            (self.effects).limit_cgroup(&plan.cgroup, &Resources::from(resources))?;
        }

        if let Some(parent) = plan.log_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(RuntimeError::io(format!("create {}", parent.display())))?;
        }
        let shim = self.shim(&sandbox.id)?;
        let request = plan.request(&config, self.pod_runtime(&sandbox.runtime_handler)?);
        let pid = shim.create(&request).await?;
        undo.push(Step::DeleteFromShim {
            shim: shim.clone(),
            id: plan.id.clone(),
        });
        let record = plan.record(Made {
            pid,
            config,
            image,
            image_name: image_spec.to_string(),
            user: spec.process().as_ref().map(|p| ProcessUser {
                uid: p.user().uid(),
                gid: p.user().gid(),
                supplemental_groups: p.user().additional_gids().clone().unwrap_or_default(),
            }),
            image_volumes,
            stop_signal: stop_sig.cri as i32,
        });
        self.db.write(|w| {
            w.put(Table::Containers, &plan.id, &record)?;
            w.delete(Table::Intents, &plan.id)
        })?;
        drop(hold);
        self.nri.post_create_container(sandbox, &record).await;
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
        let failed = |message: String| RuntimeError::ImageConfig {
            image: image.id.to_string(),
            message,
        };
        let bytes =
            (self.images.store().content.read(&image.id)).map_err(|e| failed(e.to_string()))?;
        ImageConfig::parse(&image.id, &bytes).map_err(|e| failed(e.to_string()))
    }

    /// Releases a created container's process. A start that fails leaves it Exited with reason
    /// StartError, as kubelet expects.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        let container = self.container(id)?;
        if container.state != ContainerState::Created {
            return Err(RuntimeError::ContainerState {
                id: container.id,
                state: container.state,
                wanted: "Created",
            });
        }
        let shim = self.shim(&container.sandbox_id)?;
        let sandbox = self.sandbox(&container.sandbox_id)?;
        self.nri.start_container(&sandbox, &container).await?;
        // Taken before the process is released, so it never comes after the exit time of a
        // process that ends at once.
        let started_at = now_ns();
        // Emitted before the release so that a process that exits at once cannot have its
        // Stopped event overtake this one.
        self.emit(&container.id, &container.sandbox_id, EventKind::Started);
        match shim.start(&container.id).await {
            Ok(()) => {
                self.update_container(&container.id, |c| {
                    c.start(started_at);
                })?;
                tracing::info!(container_id = %container.id, "container started");
                self.nri.post_start_container(&sandbox, &container).await;
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                self.update_container(&container.id, |c| {
                    c.fail_start(message);
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
