//! COPY and ADD into a step's upper directory. Sources are resolved inside their root (the
//! build context, or another stage's read-only mounted filesystem) the way a chroot would: an
//! absolute symlink or `..` never leads out of it. Inside a copied directory, symlinks are
//! copied as symlinks, never followed. Ownership (`--chown`) and mode (`--chmod`) are applied
//! to everything copied.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use super::BuildError;

/// Most symlinks followed while resolving one path (the kernel's limit).
const MAX_LINKS: usize = 40;

fn err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> BuildError {
    move |e| BuildError::Copy(format!("{what}: {e}"))
}

/// Resolves the root-relative `rel` inside `root`, following symlinks as if `root` were `/`.
/// Returns the host path (which exists).
pub fn resolve_in(root: &Path, rel: &str) -> Result<PathBuf, BuildError> {
    let mut done: Vec<String> = Vec::new();
    let mut todo: Vec<String> = components(rel);
    todo.reverse();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        let candidate = root.join(done.join("/")).join(&part);
        let meta = fs::symlink_metadata(&candidate)
            .map_err(|e| BuildError::Source(format!("{rel}: {e}")))?;
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(BuildError::Source(format!(
                    "{rel}: too many levels of symlinks"
                )));
            }
            let target = fs::read_link(&candidate).map_err(err(rel))?;
            let target = target.to_string_lossy().into_owned();
            if target.starts_with('/') {
                done.clear();
            }
            let mut more = components(&target);
            more.reverse();
            todo.extend(more);
        } else {
            done.push(part);
        }
    }
    Ok(root.join(done.join("/")))
}

fn components(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            _ => None,
        })
        .collect()
}

/// Ownership and mode applied to what is copied.
#[derive(Debug, Clone, Copy, Default)]
pub struct Apply {
    pub owner: Option<(u32, u32)>,
    pub mode: Option<u32>,
}

/// Copies the host path `src` (already resolved) to `dest` (a host path in the upper dir):
/// a directory's contents go into `dest`, a file becomes `dest`. Entries under `src` for which
/// `skip` says so (`.dockerignore`) are left out.
pub fn copy_tree(
    src: &Path,
    dest: &Path,
    apply: Apply,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<(), BuildError> {
    let meta = fs::symlink_metadata(src).map_err(err(src.display()))?;
    if meta.is_dir() {
        if !dest.is_dir() {
            fs::create_dir(dest).map_err(err(dest.display()))?;
        }
        set_meta(dest, &meta, apply)?;
        let mut entries: Vec<_> = fs::read_dir(src)
            .map_err(err(src.display()))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            if skip(&entry.path()) {
                continue;
            }
            copy_tree(&entry.path(), &dest.join(entry.file_name()), apply, skip)?;
        }
        return Ok(());
    }
    if fs::symlink_metadata(dest).is_ok() {
        fs::remove_file(dest).map_err(err(dest.display()))?;
    }
    if meta.file_type().is_symlink() {
        let target = fs::read_link(src).map_err(err(src.display()))?;
        symlink(&target, dest).map_err(err(dest.display()))?;
        let (uid, gid) = apply.owner.unwrap_or((meta.uid(), meta.gid()));
        std::os::unix::fs::lchown(dest, Some(uid), Some(gid)).map_err(err(dest.display()))?;
        return Ok(());
    }
    if !meta.is_file() {
        return Err(BuildError::Copy(format!(
            "{}: only files, directories and symlinks can be copied",
            src.display()
        )));
    }
    fs::copy(src, dest).map_err(err(dest.display()))?;
    set_meta(dest, &meta, apply)
}

fn set_meta(dest: &Path, meta: &fs::Metadata, apply: Apply) -> Result<(), BuildError> {
    let mode = apply.mode.unwrap_or(meta.mode() & 0o7777);
    let (uid, gid) = apply.owner.unwrap_or((0, 0));
    std::os::unix::fs::chown(dest, Some(uid), Some(gid)).map_err(err(dest.display()))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(mode)).map_err(err(dest.display()))
}

/// Creates the parent directories of the root-relative `rel` in `upper`, each with the mode and
/// owner it has in the layers below (`lowers`, topmost first), or 0755 root.
pub fn make_parents(upper: &Path, lowers: &[PathBuf], rel: &str) -> Result<(), BuildError> {
    let parts = components(rel);
    let mut path = String::new();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(part);
        let here = upper.join(&path);
        if here.is_dir() {
            continue;
        }
        fs::create_dir(&here).map_err(err(&path))?;
        let below = lowers.iter().find_map(|l| {
            fs::symlink_metadata(l.join(&path))
                .ok()
                .filter(|m| m.is_dir())
        });
        let (mode, uid, gid) =
            below.map_or((0o755, 0, 0), |m| (m.mode() & 0o7777, m.uid(), m.gid()));
        std::os::unix::fs::chown(&here, Some(uid), Some(gid)).map_err(err(&path))?;
        fs::set_permissions(&here, fs::Permissions::from_mode(mode)).map_err(err(&path))?;
    }
    Ok(())
}

/// Whether the root-relative `rel` is a directory in the layers below.
pub fn is_dir_below(lowers: &[PathBuf], rel: &str) -> bool {
    lowers
        .iter()
        .any(|l| l.join(rel.trim_start_matches('/')).is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/passwd"), "inside").unwrap();
        symlink("/", root.join("up")).unwrap();
        symlink("../../../../etc", root.join("etc/dots")).unwrap();
        assert_eq!(
            resolve_in(&root, "up/etc/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve_in(&root, "etc/dots/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve_in(&root, "../../etc/passwd").unwrap(),
            root.join("etc/passwd")
        );
        assert!(resolve_in(&root, "up/nothing").is_err());
    }

    #[test]
    fn copied_symlinks_stay_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(&src).unwrap();
        symlink("/etc/shadow", src.join("link")).unwrap();
        fs::write(src.join("f"), "x").unwrap();
        let dest = dir.path().join("dest");
        let apply = Apply {
            owner: Some((7, 8)),
            mode: Some(0o640),
        };
        copy_tree(&src, &dest, apply, &|_| false).unwrap();
        assert_eq!(
            fs::read_link(dest.join("link")).unwrap(),
            Path::new("/etc/shadow")
        );
        let meta = fs::metadata(dest.join("f")).unwrap();
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (7, 8, 0o640));
    }
}
