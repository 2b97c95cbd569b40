//! Image volumes (CRI mounts with `image` set): an image's layers mounted read-only under the
//! container's bundle, then bind-mounted into the container like any host path.

use std::path::{Path, PathBuf};

use crate::cri_api as api;
use serde::{Deserialize, Serialize};

use super::undo::{Step, Undo};
use super::{Result, Runtime, RuntimeError};
use crate::snapshot::mount::{mount_readonly_layers, mount_readonly_layers_idmapped};

/// One mounted image volume, kept in the container record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageVolume {
    /// Where the container sees it (the CRI mount's container path).
    pub container_path: String,
    /// The image id (config digest), reported as the mount's `image.image_ref`.
    pub image_id: String,
    /// Every snapshot chain id of the image: kept from garbage collection while mounted.
    pub chain_ids: Vec<String>,
    /// `<bundle>/image-volumes/<n>`: the read-only mount of the image's layers.
    pub mount_dir: PathBuf,
}

/// True when a CRI mount asks for an image rather than a host path.
pub fn is_image_volume(m: &api::Mount) -> bool {
    m.host_path.is_empty() && m.image.as_ref().is_some_and(|i| !i.image.is_empty())
}

impl Runtime {
    /// Mounts every image volume of `config` under `bundle` and returns the config the spec
    /// builder sees (image mounts turned into read-only binds of those mounts) with the volumes.
    /// In a pod with its own user namespace (`userns`, its namespace file) the layers are
    /// id-mapped through it. Each mount pushes its undo.
    pub(super) fn mount_image_volumes(
        &self,
        config: &api::ContainerConfig,
        bundle: &Path,
        userns: Option<&Path>,
        undo: &mut Undo,
    ) -> Result<(api::ContainerConfig, Vec<ImageVolume>)> {
        let mut spec_config = config.clone();
        let mut volumes = vec![];
        for (n, m) in spec_config.mounts.iter_mut().enumerate() {
            if !is_image_volume(m) {
                continue;
            }
            if !m.readonly {
                return Err(RuntimeError::InvalidArgument(format!(
                    "mount {:?}: an image volume must be read-only",
                    m.container_path
                )));
            }
            let spec = super::container_plan::image_name(m.image.as_ref());
            let image = self.pulled_image(&spec, "image (of an image volume)")?;
            let mut lowers = self.layer_dirs(&image.chain_ids)?;
            let mount_dir = bundle.join("image-volumes").join(n.to_string());
            std::fs::create_dir_all(&mount_dir)
                .map_err(RuntimeError::io(format!("create {}", mount_dir.display())))?;
            if lowers.is_empty() {
                let empty = bundle.join("image-volumes").join(format!("{n}-empty"));
                std::fs::create_dir_all(&empty)
                    .map_err(RuntimeError::io(format!("create {}", empty.display())))?;
                lowers.push(empty);
            }
            match userns {
                Some(userns) => {
                    let scratch = bundle.join("image-volumes").join(format!("{n}-idmapped"));
                    mount_readonly_layers_idmapped(&lowers, &mount_dir, userns, &scratch)?
                }
                None => mount_readonly_layers(&lowers, &mount_dir)?,
            }
            {
                undo.push(Step::Unmount(mount_dir.clone()));
            }
            let source = if m.image_sub_path.is_empty() {
                mount_dir.clone()
            } else {
                resolve_sub_path(&mount_dir, &m.image_sub_path).map_err(|reason| {
                    RuntimeError::InvalidArgument(format!(
                        "mount {:?}: image sub path {:?} of image {}: {reason}",
                        m.container_path, m.image_sub_path, image.id
                    ))
                })?
            };
            m.host_path = source.display().to_string();
            volumes.push(ImageVolume {
                container_path: m.container_path.clone(),
                image_id: image.id.to_string(),
                chain_ids: image.chain_ids.iter().map(|c| c.to_string()).collect(),
                mount_dir,
            });
        }
        Ok((spec_config, volumes))
    }

    /// The snapshot directories of a layer stack, topmost first.
    pub(super) fn layer_dirs(&self, chain_ids: &[crate::image::Digest]) -> Result<Vec<PathBuf>> {
        let snapshots = &self.images.store().snapshots;
        let mut lowers = vec![];
        for chain in chain_ids.iter().rev() {
            let record = snapshots
                .get(chain)
                .map_err(|e| RuntimeError::Snapshot {
                    chain: chain.to_string(),
                    message: e.to_string(),
                })?
                .ok_or_else(|| RuntimeError::NotFound {
                    what: "image snapshot",
                    id: chain.to_string(),
                })?;
            lowers.push(snapshots.dir(&record));
        }
        Ok(lowers)
    }
}

/// Unmounts a container's image volumes (before its bundle is removed).
pub(super) fn unmount_image_volumes(
    host: &dyn super::host::HostOps,
    volumes: &[ImageVolume],
) -> Result<()> {
    for v in volumes {
        host.unmount(&v.mount_dir)
            .map_err(RuntimeError::io(format!(
                "unmount image volume {}",
                v.mount_dir.display()
            )))?;
    }
    Ok(())
}

/// `sub_path` inside the mounted image at `root`, resolved as if `root` were `/` (no `..` or
/// symlink leaves it). Errors say why in words.
fn resolve_sub_path(root: &Path, sub_path: &str) -> std::result::Result<PathBuf, String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags, openat2};
    let dir = std::fs::File::open(root).map_err(|e| format!("open the image's root: {e}"))?;
    let fd = openat2(
        &dir,
        sub_path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| match e {
        rustix::io::Errno::NOENT => "does not exist in the image".to_string(),
        e => std::io::Error::from(e).to_string(),
    })?;
    let fd_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let real = std::fs::read_link(&fd_path).map_err(|e| format!("read {fd_path}: {e}"))?;
    if !real.starts_with(root) {
        return Err("resolves outside the image".into());
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_paths_resolve_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc/ssl")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("up")).unwrap();
        assert_eq!(resolve_sub_path(&root, "etc").unwrap(), root.join("etc"));
        assert_eq!(
            resolve_sub_path(&root, "etc/ssl/").unwrap(),
            root.join("etc/ssl")
        );
        assert_eq!(
            resolve_sub_path(&root, "abs/ssl").unwrap(),
            root.join("etc/ssl"),
            "an absolute symlink resolves inside the image"
        );
        assert_eq!(resolve_sub_path(&root, "../etc").unwrap(), root.join("etc"));
        let err = resolve_sub_path(&root, "up").unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        let err = resolve_sub_path(&root, "not-existing").unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn only_mounts_with_an_image_and_no_host_path_are_image_volumes() {
        let mut m = api::Mount {
            container_path: "/data".into(),
            ..Default::default()
        };
        assert!(!is_image_volume(&m));
        m.image = Some(api::ImageSpec {
            image: "sha256:abc".into(),
            ..Default::default()
        });
        assert!(is_image_volume(&m));
        m.host_path = "/srv".into();
        assert!(!is_image_volume(&m));
    }
}
