//! Fakes of the pod network and of the host's mounts and cgroups: table entries, each op
//! recorded, failures injected per operation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::future::BoxFuture;

use super::super::host::{HostOps, IdMapping};
use super::super::{Result, RuntimeError};
use crate::cgroup::Resources;
use crate::network::{Attachment, NetworkError, PodIps, PodNetwork, Readiness};
use crate::snapshot::mount::{MountError, Overlay};

/// A pod network handing out 10.0.0.<n>.
#[derive(Default)]
pub struct FakeNetwork {
    attached: Mutex<BTreeMap<String, String>>,
    /// The next attach fails (after the attachment is cached, as CNI's does).
    pub attach_fails: Mutex<bool>,
}

impl FakeNetwork {
    pub fn attached_ids(&self) -> Vec<String> {
        self.attached.lock().unwrap().keys().cloned().collect()
    }
}

impl PodNetwork for FakeNetwork {
    fn readiness(&self) -> Readiness {
        Readiness {
            ready: true,
            message: String::new(),
        }
    }

    fn attach<'a>(&'a self, pod: &'a Attachment) -> BoxFuture<'a, Result<PodIps, NetworkError>> {
        Box::pin(async move {
            let mut attached = self.attached.lock().unwrap();
            let ip = format!("10.0.0.{}", attached.len() + 2);
            attached.insert(pod.sandbox_id.clone(), ip.clone());
            if std::mem::take(&mut *self.attach_fails.lock().unwrap()) {
                return Err(NetworkError::NotReady("injected failure".into()));
            }
            Ok(PodIps(vec![ip]))
        })
    }

    fn detach<'a>(&'a self, sandbox_id: &'a str) -> BoxFuture<'a, Result<(), NetworkError>> {
        Box::pin(async move {
            self.attached.lock().unwrap().remove(sandbox_id);
            Ok(())
        })
    }

    fn attached(&self) -> Result<Vec<String>, NetworkError> {
        Ok(self.attached_ids())
    }
}

/// Mounts and cgroups as table entries.
#[derive(Default)]
pub struct FakeHost {
    pub mounts: Mutex<Vec<PathBuf>>,
    pub cgroups: Mutex<BTreeSet<String>>,
    /// Operations (`mount_rootfs`, `mount_shm`, `unmount`, `create_cgroup`, `limit_cgroup`,
    /// `remove_cgroup`) whose next call fails, once each.
    fail_next: Mutex<Vec<&'static str>>,
}

impl FakeHost {
    /// The next call of `op` fails.
    pub fn fail_next(&self, op: &'static str) {
        self.fail_next.lock().unwrap().push(op);
    }

    fn fails(&self, op: &'static str) -> bool {
        let mut next = self.fail_next.lock().unwrap();
        match next.iter().position(|o| *o == op) {
            Some(at) => {
                next.remove(at);
                true
            }
            None => false,
        }
    }

    pub fn mounted(&self) -> Vec<PathBuf> {
        self.mounts.lock().unwrap().clone()
    }

    pub fn cgroups(&self) -> Vec<String> {
        self.cgroups.lock().unwrap().iter().cloned().collect()
    }
}

impl HostOps for FakeHost {
    fn mount_rootfs(
        &self,
        _overlay: &Overlay,
        target: &Path,
        _idmap: Option<&IdMapping>,
    ) -> Result<(), MountError> {
        if self.fails("mount_rootfs") {
            return Err(MountError {
                target: target.to_path_buf(),
                step: "mount",
                source: std::io::Error::other("injected failure"),
            });
        }
        self.mounts.lock().unwrap().push(target.to_path_buf());
        Ok(())
    }

    fn mount_shm(&self, target: &Path) -> Result<()> {
        if self.fails("mount_shm") {
            return Err(RuntimeError::io("mount shm")(std::io::Error::other(
                "injected",
            )));
        }
        std::fs::create_dir_all(target).map_err(RuntimeError::io("create shm dir"))?;
        self.mounts.lock().unwrap().push(target.to_path_buf());
        Ok(())
    }

    fn unmount(&self, target: &Path) -> std::io::Result<()> {
        if self.fails("unmount") {
            return Err(std::io::Error::other("injected failure"));
        }
        self.mounts.lock().unwrap().retain(|m| m != target);
        Ok(())
    }

    fn mounts_under(&self, dir: &Path) -> Vec<PathBuf> {
        let mounts = self.mounts.lock().unwrap();
        mounts
            .iter()
            .filter(|m| m.starts_with(dir))
            .cloned()
            .collect()
    }

    fn create_cgroup(&self, path: &str) -> Result<()> {
        if self.fails("create_cgroup") {
            return Err(RuntimeError::NoCgroupHierarchy);
        }
        self.cgroups.lock().unwrap().insert(path.to_string());
        Ok(())
    }

    fn limit_cgroup(&self, _path: &str, _resources: &Resources) -> Result<()> {
        match self.fails("limit_cgroup") {
            true => Err(RuntimeError::NoCgroupHierarchy),
            false => Ok(()),
        }
    }

    fn remove_cgroup(&self, path: &str) -> Result<()> {
        if self.fails("remove_cgroup") {
            return Err(RuntimeError::NoCgroupHierarchy);
        }
        self.cgroups.lock().unwrap().remove(path);
        Ok(())
    }
}
