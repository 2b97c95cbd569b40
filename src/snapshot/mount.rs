//! Mounting a container rootfs: an overlay of image snapshots (read-only lowers) and a writable
//! layer. Uses the new mount API with one `lowerdir+` per layer, so a deep image never overflows
//! the classic mount option string. Image volumes mount an image's layers read-only, with no
//! writable layer.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, OpenTreeFlags,
    UnmountFlags, fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen,
    mount_bind, mount_remount, move_mount, open_tree, unmount,
};

/// An overlay mount described as data: what [`mount_overlay`] will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Read-only layers, topmost first.
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Mount with `volatile`: no sync ever reaches the upper layer, so neither an unmount nor a
    /// container's fsync waits for the disk. For a container's writable layer, which is discarded
    /// with the container and never outlives the node, nothing is lost that would have been kept.
    pub volatile: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("mount overlay on {target}: {step}: {source}")]
pub struct MountError {
    pub target: PathBuf,
    pub step: &'static str,
    pub source: std::io::Error,
}

/// Mounts `overlay` on `target` (which must exist).
pub fn mount_overlay(overlay: &Overlay, target: &Path) -> Result<(), MountError> {
    let err = |step| {
        move |e: rustix::io::Errno| MountError {
            target: target.to_path_buf(),
            step,
            source: e.into(),
        }
    };
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(err("fsopen"))?;
    for lower in &overlay.lowers {
        fsconfig_set_string(&fs, "lowerdir+", lower).map_err(err("lowerdir+"))?;
    }
    fsconfig_set_string(&fs, "upperdir", &overlay.upper).map_err(err("upperdir"))?;
    fsconfig_set_string(&fs, "workdir", &overlay.work).map_err(err("workdir"))?;
    if overlay.volatile {
        fsconfig_set_flag(&fs, "volatile").map_err(err("volatile"))?;
    }
    fsconfig_create(&fs).map_err(err("create"))?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(err("fsmount"))?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(err("move_mount"))?;
    Ok(())
}

/// Mounts `overlay` on `target` for a container in the user namespace `userns` (a namespace
/// file): each lower is first bind-mounted id-mapped through that namespace's mappings under
/// `scratch` (so image files owned by host uid 0 appear owned by the namespace's root), the
/// overlay is made of those, and the scratch mounts are detached again (the overlay keeps private
/// clones of its layers). Overlayfs itself cannot be id-mapped; the writable layer is not: what
/// the container writes is owned by its host ids, and `root` (the host ids of the namespace's
/// root) becomes the owner of the upper directory, the container's `/`.
pub fn mount_overlay_idmapped(
    overlay: &Overlay,
    target: &Path,
    userns: &Path,
    scratch: &Path,
    root: (u32, u32),
) -> Result<(), MountError> {
    with_idmapped_layers(&overlay.lowers, target, userns, scratch, |mapped| {
        std::os::unix::fs::chown(&overlay.upper, Some(root.0), Some(root.1)).map_err(|source| {
            MountError {
                target: target.to_path_buf(),
                step: "chown the upper directory",
                source,
            }
        })?;
        let idmapped = Overlay {
            lowers: mapped.to_vec(),
            ..overlay.clone()
        };
        mount_overlay(&idmapped, target)
    })
}

/// Clones each of `lowers` id-mapped through the user namespace `userns` onto a directory under
/// `scratch`, runs `mount` with those directories (in the same order), then detaches the clones
/// again (a mount made of them keeps its own) and removes the scratch directories.
fn with_idmapped_layers(
    lowers: &[PathBuf],
    target: &Path,
    userns: &Path,
    scratch: &Path,
    mount: impl FnOnce(&[PathBuf]) -> Result<(), MountError>,
) -> Result<(), MountError> {
    let err = |step: &'static str| {
        move |source: std::io::Error| MountError {
            target: target.to_path_buf(),
            step,
            source,
        }
    };
    let ns = std::fs::File::open(userns).map_err(err("open the user namespace"))?;
    std::fs::create_dir_all(scratch).map_err(err("create the id-mapped layers directory"))?;
    let mut mapped = Vec::new();
    let result = (|| {
        for (i, lower) in lowers.iter().enumerate() {
            let dir = scratch.join(i.to_string());
            std::fs::create_dir_all(&dir).map_err(err("create an id-mapped layer directory"))?;
            let tree = open_tree(
                CWD,
                lower,
                OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
            )
            .map_err(|e| err("open_tree a layer")(e.into()))?;
            crate::sys::mount::set_idmap(tree.as_fd(), ns.as_fd(), false)
                .map_err(|e| err("id-map a layer")(e.into()))?;
            move_mount(
                &tree,
                "",
                CWD,
                &dir,
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(|e| err("attach an id-mapped layer")(e.into()))?;
            mapped.push(dir);
        }
        mount(&mapped)
    })();
    // Never a recursive removal: a directory whose unmount failed still shows an image layer.
    for dir in &mapped {
        if unmount_path(dir).is_ok() {
            let _ = std::fs::remove_dir(dir);
        }
    }
    let _ = std::fs::remove_dir(scratch);
    result
}

/// Mounts read-only layers (topmost first) on `target` (which must exist), with no writable
/// layer: an image volume. One layer is a read-only bind of its directory; more are a
/// read-only overlay of lowers only.
pub fn mount_readonly_layers(lowers: &[PathBuf], target: &Path) -> Result<(), MountError> {
    let err = |step| {
        move |e: rustix::io::Errno| MountError {
            target: target.to_path_buf(),
            step,
            source: e.into(),
        }
    };
    if let [only] = lowers {
        mount_bind(only, target).map_err(err("bind"))?;
        let remount = mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "");
        if let Err(e) = remount {
            let _ = unmount_path(target);
            return Err(err("remount read-only")(e));
        }
        return Ok(());
    }
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(err("fsopen"))?;
    for lower in lowers {
        fsconfig_set_string(&fs, "lowerdir+", lower).map_err(err("lowerdir+"))?;
    }
    fsconfig_create(&fs).map_err(err("create"))?;
    let mnt = fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY,
    )
    .map_err(err("fsmount"))?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(err("move_mount"))?;
    Ok(())
}

/// [`mount_readonly_layers`] for a container in the user namespace `userns`: each layer is first
/// cloned id-mapped through that namespace under `scratch` (image files owned by host uid 0
/// appear owned by the namespace's root), the read-only mount is made of those clones, then the
/// scratch mounts are detached again.
pub fn mount_readonly_layers_idmapped(
    lowers: &[PathBuf],
    target: &Path,
    userns: &Path,
    scratch: &Path,
) -> Result<(), MountError> {
    with_idmapped_layers(lowers, target, userns, scratch, |mapped| {
        mount_readonly_layers(mapped, target)
    })
}

/// Lazily unmounts `target`; not mounted (or missing) is fine.
pub fn unmount_path(target: &Path) -> std::io::Result<()> {
    match unmount(target, UnmountFlags::DETACH) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_of_many_long_lowers_mounts_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(200);
        let mut lowers = vec![];
        for i in 0..40 {
            let lower = dir.path().join(format!("{long}-{i}"));
            std::fs::create_dir(&lower).unwrap();
            std::fs::write(lower.join(format!("f{i}")), i.to_string()).unwrap();
            std::fs::write(lower.join("top"), i.to_string()).unwrap();
            lowers.insert(0, lower);
        }
        let (upper, work, target) = (
            dir.path().join("u"),
            dir.path().join("w"),
            dir.path().join("t"),
        );
        for d in [&upper, &work, &target] {
            std::fs::create_dir(d).unwrap();
        }
        let overlay = Overlay {
            lowers,
            upper: upper.clone(),
            work,
            volatile: true,
        };
        mount_overlay(&overlay, &target).expect("40 lowers of 200+ bytes each mount");
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(target.to_str().unwrap()))
            .expect("the overlay is in mountinfo");
        assert!(line.contains("volatile"), "{line}");
        let read = |f: &str| std::fs::read_to_string(target.join(f));
        assert_eq!(read("f0").unwrap(), "0");
        assert_eq!(read("f39").unwrap(), "39");
        assert_eq!(read("top").unwrap(), "39", "the topmost lower wins");
        std::fs::write(target.join("new"), "w").unwrap();
        unmount_path(&target).unwrap();
        assert_eq!(std::fs::read_to_string(upper.join("new")).unwrap(), "w");
        assert!(!target.join("f0").exists());
        unmount_path(&target).unwrap();
    }

    #[test]
    fn readonly_layers_merge_and_refuse_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        for (d, f) in [(&a, "fa"), (&b, "fb")] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join(f), f).unwrap();
            std::fs::write(d.join("top"), f).unwrap();
        }
        for (lowers, want_top) in [(vec![b.clone(), a.clone()], "fb"), (vec![a.clone()], "fa")] {
            let target = dir.path().join(format!("t{}", lowers.len()));
            std::fs::create_dir(&target).unwrap();
            mount_readonly_layers(&lowers, &target).unwrap();
            assert_eq!(
                std::fs::read_to_string(target.join("top")).unwrap(),
                want_top
            );
            assert!(target.join("fa").exists());
            let err = std::fs::write(target.join("new"), "x").unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{lowers:?}");
            unmount_path(&target).unwrap();
            assert!(!target.join("fa").exists());
        }
        assert!(!a.join("new").exists() && !b.join("new").exists());
    }
}
