//! Who may enter berth's directories (docs/on-disk-layout.md lists every mode). Nothing berth
//! keeps is for other local users: the metadata database holds every container's environment,
//! bundles hold specs, layers and writable layers hold the images' setuid-root binaries, and a
//! container's rootfs is mounted (without `nosuid`: it is the very mount the container runs on)
//! under its bundle. So:
//!
//! - `root_dir`, `state_dir`, and the parents of per-pod and per-container directories that a
//!   user-namespace pod's containers must walk through (`<root>/pods`, `<state>/pods`,
//!   `<state>/containers`) are 0711: searchable, never listable;
//! - every per-pod and per-container directory is 0700, or 0710 with the pod's mapped root gid as
//!   group when the pod has its own user namespace (its containers set up their mounts as that
//!   gid), as containerd does for such bundles;
//! - everything else at the top (content, snapshots, trash, network, containers' writable
//!   layers) is 0700, and `meta.redb` 0600.
//!
//! `harden` runs at every start, so a node upgraded from an older berth is tightened too.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Searchable by others, not listable.
pub const SEARCHABLE: u32 = 0o711;
pub const PRIVATE: u32 = 0o700;
/// A private directory that a user-namespace pod's root (its group) may enter.
pub const POD_GROUP: u32 = 0o710;

fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io::Error::new(e.kind(), format!("chmod {mode:o} {}: {e}", path.display())))
}

/// Creates `dir` (and missing parents) and sets its mode: [`PRIVATE`], or [`POD_GROUP`] with
/// group `gid` (the host gid of a user-namespace pod's root).
pub fn private_dir(dir: &Path, gid: Option<u32>) -> io::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", dir.display())))?;
    match gid {
        Some(gid) => {
            std::os::unix::fs::chown(dir, None, Some(gid)).map_err(|e| {
                io::Error::new(e.kind(), format!("chown :{gid} {}: {e}", dir.display()))
            })?;
            chmod(dir, POD_GROUP)
        }
        None => chmod(dir, PRIVATE),
    }
}

/// Creates and tightens the fixed directories under `root_dir` and `state_dir`, the database
/// file, and every per-pod and per-container directory already there.
pub fn harden(root_dir: &Path, state_dir: &Path) -> io::Result<()> {
    for (dir, mode) in [
        (root_dir.to_path_buf(), SEARCHABLE),
        (state_dir.to_path_buf(), SEARCHABLE),
        (root_dir.join("pods"), SEARCHABLE),
        (state_dir.join("pods"), SEARCHABLE),
        (state_dir.join("containers"), SEARCHABLE),
        (root_dir.join("content"), PRIVATE),
        (root_dir.join("snapshots"), PRIVATE),
        (root_dir.join("trash"), PRIVATE),
        (root_dir.join("network"), PRIVATE),
        (root_dir.join("containers"), PRIVATE),
    ] {
        std::fs::create_dir_all(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("create {}: {e}", dir.display())))?;
        chmod(&dir, mode)?;
    }
    let db = root_dir.join("meta.redb");
    if db.exists() {
        chmod(&db, 0o600)?;
    }
    for parent in [
        root_dir.join("pods"),
        state_dir.join("pods"),
        state_dir.join("containers"),
        root_dir.join("containers"),
    ] {
        for entry in std::fs::read_dir(&parent)? {
            let path = entry?.path();
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.is_dir() {
                // A group other than root's was given for a user-namespace pod: keep it usable.
                chmod(&path, if meta.gid() == 0 { PRIVATE } else { POD_GROUP })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn an_old_open_layout_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let (root, state) = (dir.path().join("root"), dir.path().join("state"));
        for d in [
            root.join("snapshots/1/usr/bin"),
            root.join("pods/p1"),
            state.join("containers/c1/rootfs"),
            state.join("pods/p2"),
        ] {
            std::fs::create_dir_all(&d).unwrap();
        }
        std::fs::write(root.join("meta.redb"), b"").unwrap();
        for p in [
            &root,
            &state,
            &root.join("snapshots"),
            &root.join("pods/p1"),
        ] {
            chmod(p, 0o755).unwrap();
        }
        std::os::unix::fs::chown(state.join("pods/p2"), None, Some(100_000)).unwrap();
        chmod(&root.join("meta.redb"), 0o644).unwrap();
        harden(&root, &state).unwrap();
        assert_eq!(mode(&root), 0o711);
        assert_eq!(mode(&state), 0o711);
        assert_eq!(mode(&root.join("snapshots")), 0o700);
        assert_eq!(mode(&root.join("content")), 0o700);
        assert_eq!(mode(&root.join("pods")), 0o711);
        assert_eq!(mode(&root.join("pods/p1")), 0o700);
        assert_eq!(mode(&state.join("containers/c1")), 0o700);
        assert_eq!(mode(&state.join("pods/p2")), 0o710);
        assert_eq!(mode(&root.join("meta.redb")), 0o600);
        // Below the per-id directories nothing is touched (image data keeps its modes).
        assert_eq!(mode(&root.join("snapshots/1/usr/bin")), 0o755);
    }

    #[test]
    fn private_dirs_are_0700_or_0710_for_the_pods_group() {
        let dir = tempfile::tempdir().unwrap();
        private_dir(&dir.path().join("a/b"), None).unwrap();
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        private_dir(&dir.path().join("c"), Some(100_000)).unwrap();
        let meta = std::fs::metadata(dir.path().join("c")).unwrap();
        assert_eq!(
            (meta.permissions().mode() & 0o7777, meta.gid()),
            (0o710, 100_000)
        );
    }
}
