//! COPY and ADD into a step's upper directory. Sources are resolved inside their root (the
//! build context, or another stage's read-only mounted filesystem) the way a chroot would: an
//! absolute symlink or `..` never leads out of it, and a copied directory is read through its
//! descriptor (`source.rs`). Inside a copied directory, symlinks are copied as symlinks, never
//! followed. Ownership (`--chown`) and mode (`--chmod`) are applied
//! to everything copied. Writes into the step's upper dir go through the layer unpacker's
//! hardened tree, so nothing a source holds can make them land outside it.

use std::ffi::OsStr;
use std::fs;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, Uid};

use super::BuildError;
pub use super::source::Source;
use super::space::{Reserve, from_io};
use crate::image::unpack::path::RelPath;
use crate::image::unpack::tree::{Tree, TreeError};

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

/// A step's upper directory, written only through the layer unpacker's [`Tree`]: every entry is
/// reached from a directory fd on the upper dir one component at a time with `O_NOFOLLOW`, so a
/// symlink that one source left there (or any other) is replaced where a directory is needed,
/// never followed out to the host.
struct Upper {
    tree: Tree,
}

impl Upper {
    fn open(upper: &Path) -> Result<Self, BuildError> {
        let tree = Tree::open(upper).map_err(err(upper.display()))?;
        Ok(Self { tree })
    }

    /// Whether `rel` is a directory reached without crossing a symlink.
    fn is_dir(&mut self, rel: &RelPath) -> bool {
        self.tree.dir(rel, false).is_ok()
    }

    /// Makes directory `rel`, keeping one already there and replacing anything else, and gives
    /// it `mode` and owner.
    fn mkdir(&mut self, rel: &RelPath, mode: u32, owner: (u32, u32)) -> Result<(), BuildError> {
        let fd = self.tree.mkdir(rel).map_err(tree_err(rel))?;
        set_meta(&fd, mode, owner).map_err(err(show(rel)))
    }

    fn copy(
        &mut self,
        src: &Source,
        dest: &RelPath,
        apply: Apply,
        skip: &dyn Fn(&Path) -> bool,
        reserve: &Reserve,
    ) -> Result<(), BuildError> {
        let stat = &src.stat;
        let mode = apply.mode.unwrap_or(stat.st_mode & 0o7777);
        let owner = apply.owner.unwrap_or((0, 0));
        match src.kind() {
            FileType::Directory => {
                self.mkdir(dest, mode, owner)?;
                let (dir, names) = src.entries()?;
                for name in names {
                    if skip(&src.path.join(OsStr::from_bytes(&name))) {
                        continue;
                    }
                    let child = src.child(&dir, &name)?;
                    self.copy(&child, &dest.join(&name), apply, skip, reserve)?;
                }
                Ok(())
            }
            FileType::Symlink => {
                let target = src.link_target()?;
                let tree = &mut self.tree;
                tree.symlink(dest, &target).map_err(tree_err(dest))?;
                let node = tree.node(dest).map_err(tree_err(dest))?;
                let (uid, gid) = apply.owner.unwrap_or((stat.st_uid, stat.st_gid));
                let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
                rfs::chownat(&node, "", Some(uid), Some(gid), AtFlags::EMPTY_PATH)
                    .map_err(|e| err(show(dest))(e.into()))
            }
            _ => {
                let mut from = src.open_file()?;
                let mut to = self.tree.create_file(dest).map_err(tree_err(dest))?;
                // Written through the disk reserve's guard: a huge (or sparse) source stops at
                // the reserve instead of filling the data filesystem before the step's check.
                let what = show(dest);
                std::io::copy(&mut from, &mut reserve.guard(&mut to))
                    .map_err(|e| from_io(&what, e, |e| BuildError::Copy(format!("{what}: {e}"))))?;
                set_meta(&to, mode, owner).map_err(err(show(dest)))
            }
        }
    }
}

/// Owner first (chown clears setuid and setgid), then mode.
fn set_meta(fd: &impl AsFd, mode: u32, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    rfs::fchown(fd, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    rfs::fchmod(fd, Mode::from_raw_mode(mode))?;
    Ok(())
}

/// `rel` (root-relative, already normalized: no `..`) as a path in the upper dir.
fn rel_path(rel: &str) -> Result<RelPath, BuildError> {
    let rel = rel.trim_matches('/');
    if rel.is_empty() {
        return Ok(RelPath::root());
    }
    RelPath::parse(rel.as_bytes()).map_err(|e| BuildError::Copy(format!("{rel}: {e}")))
}

fn show(rel: &RelPath) -> String {
    format!("/{}", String::from_utf8_lossy(rel.as_bytes()))
}

fn tree_err(rel: &RelPath) -> impl FnOnce(TreeError) -> BuildError + '_ {
    move |e| {
        let reason = match e {
            TreeError::ThroughSymlink => "a parent directory is a symlink".to_string(),
            TreeError::ThroughNonDir => "a parent directory is not a directory".to_string(),
            TreeError::IsRoot => "it would replace the root directory".to_string(),
            TreeError::Io(e) => e.to_string(),
            other => format!("{other:?}"),
        };
        BuildError::Copy(format!("{}: {reason}", show(rel)))
    }
}

/// Copies `src` (opened inside its root) to the root-relative `dest` in the upper dir
/// `upper`: a directory's contents go into `dest`, a file becomes `dest`; whatever is in the
/// way is replaced. Entries under `src` for which `skip` says so (`.dockerignore`) are left out;
/// file data is written leaving `reserve` free.
pub fn copy_tree(
    src: &Source,
    upper: &Path,
    dest: &str,
    apply: Apply,
    skip: &dyn Fn(&Path) -> bool,
    reserve: &Reserve,
) -> Result<(), BuildError> {
    Upper::open(upper)?.copy(src, &rel_path(dest)?, apply, skip, reserve)
}

/// Whether the root-relative `rel` is a directory in the upper dir `upper` (a symlink is not).
pub fn is_dir_in(upper: &Path, rel: &str) -> bool {
    let Ok(rel) = rel_path(rel) else {
        return false;
    };
    Upper::open(upper).is_ok_and(|mut u| u.is_dir(&rel))
}

/// Creates the parent directories of the root-relative `rel` in `upper`, each with the mode and
/// owner it has in the layers below (`lowers`, topmost first), or 0755 root. A directory already
/// there is kept; anything else in the way (a symlink a source left) is replaced.
pub fn make_parents(upper: &Path, lowers: &[PathBuf], rel: &str) -> Result<(), BuildError> {
    let mut upper = Upper::open(upper)?;
    let parts = components(rel);
    let mut path = String::new();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(part);
        let here = rel_path(&path)?;
        if upper.is_dir(&here) {
            continue;
        }
        let below = lowers.iter().find_map(|l| dir_in_layer(l, &path));
        let (mode, uid, gid) =
            below.map_or((0o755, 0, 0), |m| (m.mode() & 0o7777, m.uid(), m.gid()));
        upper.mkdir(&here, mode, (uid, gid))?;
    }
    Ok(())
}

/// The metadata of directory `rel` in the layer dir `layer`, when every component of it is a
/// real directory there: a layer's symlink is never followed on the host.
fn dir_in_layer(layer: &Path, rel: &str) -> Option<fs::Metadata> {
    let mut at = layer.to_path_buf();
    let mut meta = None;
    for part in components(rel) {
        at.push(part);
        meta = Some(fs::symlink_metadata(&at).ok().filter(|m| m.is_dir())?);
    }
    meta
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
    use crate::image::unpack::DiskReserve;
    use std::os::unix::fs::{PermissionsExt, symlink};

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
        copy_tree(&open(&src), dir.path(), "dest", apply, &|_| false, &free()).unwrap();
        assert_eq!(
            fs::read_link(dest.join("link")).unwrap(),
            Path::new("/etc/shadow")
        );
        let meta = fs::metadata(dest.join("f")).unwrap();
        assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (7, 8, 0o640));
    }

    /// The host path `path`, opened as a source.
    fn open(path: &Path) -> Source {
        Source::open_in(
            path.parent().unwrap(),
            &path.file_name().unwrap().to_string_lossy(),
        )
        .unwrap()
    }

    /// A reserve that lets anything be written.
    fn free() -> Reserve {
        Reserve::new(PathBuf::from("/"), DiskReserve::NONE).unwrap()
    }

    /// A COPY source larger than the room left on the data filesystem (here a sparse file,
    /// which costs the context nothing) stops at the disk reserve, not once the disk is full.
    #[test]
    fn copying_stops_at_the_disk_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("sparse");
        fs::File::create(&src).unwrap().set_len(256 << 20).unwrap();
        let upper = dir.path().join("upper");
        fs::create_dir(&upper).unwrap();
        let stat = nix::sys::statvfs::statvfs(dir.path()).unwrap();
        let available = stat.blocks_available() as u64 * stat.fragment_size() as u64;
        // At most 32 MiB more may be written.
        let reserve = Reserve::new(upper.clone(), DiskReserve::Bytes(available - (32 << 20)));
        let err = copy_tree(
            &open(&src),
            &upper,
            "big",
            Apply::default(),
            &|_| false,
            &reserve.unwrap(),
        )
        .expect_err("a copy past the reserve");
        assert!(matches!(err, BuildError::DiskReserve(_)), "{err:?}");
        assert!(err.to_string().contains("image.disk_reserve"), "{err}");
        let written = fs::metadata(upper.join("big")).map_or(0, |m| m.blocks() * 512);
        assert!(written <= 48 << 20, "{written} bytes written");
    }

    /// Someone who can write in the build context swaps a directory a COPY is walking for a
    /// symlink to a host directory (here at the moment the copy looks at its first entry, the
    /// widest window). What the copy reads must stay what it resolved inside the context.
    #[test]
    fn a_directory_swapped_for_a_symlink_mid_copy_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("a"), "host secret").unwrap();
        let ctx = dir.path().join("ctx");
        fs::create_dir_all(ctx.join("src")).unwrap();
        fs::write(ctx.join("src/a"), "context file").unwrap();
        let upper = dir.path().join("upper");
        fs::create_dir(&upper).unwrap();

        let src = Source::open_in(&ctx, "src").unwrap();
        let swapped = std::cell::Cell::new(false);
        let swap = |_: &Path| {
            if !swapped.replace(true) {
                fs::rename(ctx.join("src"), ctx.join("moved")).unwrap();
                symlink(&host, ctx.join("src")).unwrap();
            }
            false
        };
        let result = copy_tree(&src, &upper, "dst", Apply::default(), &swap, &free());
        assert!(swapped.get(), "the swap ran");
        let copied = fs::read_to_string(upper.join("dst/a")).unwrap_or_default();
        assert_ne!(
            copied, "host secret",
            "a host file was copied into the layer"
        );
        assert!(
            result.is_err() || copied == "context file",
            "{result:?}: {copied:?}"
        );
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_symlink_one_source_left_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
        let upper = dir.path().join("upper");
        fs::create_dir(&upper).unwrap();
        let a = dir.path().join("a");
        fs::create_dir(&a).unwrap();
        symlink(&outside, a.join("x")).unwrap();
        let b = dir.path().join("b");
        fs::create_dir_all(b.join("x")).unwrap();
        fs::write(b.join("x/passwd-test"), "pwned").unwrap();
        fs::set_permissions(b.join("x"), fs::Permissions::from_mode(0o777)).unwrap();

        make_parents(&upper, &[], "dst/x").unwrap();
        copy_tree(
            &open(&a),
            &upper,
            "dst",
            Apply::default(),
            &|_| false,
            &free(),
        )
        .unwrap();
        assert!(
            fs::symlink_metadata(upper.join("dst/x"))
                .unwrap()
                .is_symlink()
        );
        assert!(!is_dir_in(&upper, "dst/x"), "a symlink is not a directory");
        copy_tree(
            &open(&b),
            &upper,
            "dst",
            Apply::default(),
            &|_| false,
            &free(),
        )
        .unwrap();

        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing outside"
        );
        assert_eq!(mode(&outside), 0o700, "outside not chmodded");
        assert!(fs::symlink_metadata(upper.join("dst/x")).unwrap().is_dir());
        assert_eq!(mode(&upper.join("dst/x")), 0o777);
        assert_eq!(
            fs::read_to_string(upper.join("dst/x/passwd-test")).unwrap(),
            "pwned"
        );
    }

    #[test]
    fn parents_and_files_replace_symlinks_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("f"), "host").unwrap();
        let upper = dir.path().join("upper");
        fs::create_dir(&upper).unwrap();
        symlink(&outside, upper.join("dst")).unwrap();
        symlink(outside.join("f"), upper.join("g")).unwrap();

        make_parents(&upper, &[], "dst/sub/file").unwrap();
        assert!(fs::symlink_metadata(upper.join("dst")).unwrap().is_dir());
        assert!(is_dir_in(&upper, "dst/sub"));
        let src = dir.path().join("src");
        fs::write(&src, "image").unwrap();
        let apply = Apply {
            owner: Some((5, 6)),
            mode: Some(0o600),
        };
        copy_tree(&open(&src), &upper, "g", apply, &|_| false, &free()).unwrap();
        copy_tree(
            &open(&src),
            &upper,
            "dst/sub/file",
            apply,
            &|_| false,
            &free(),
        )
        .unwrap();

        assert_eq!(fs::read_to_string(outside.join("f")).unwrap(), "host");
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            1,
            "nothing outside"
        );
        let meta = fs::symlink_metadata(upper.join("g")).unwrap();
        assert!(meta.is_file());
        assert_eq!(
            (meta.uid(), meta.gid(), mode(&upper.join("g"))),
            (5, 6, 0o600)
        );
        assert_eq!(
            fs::read_to_string(upper.join("dst/sub/file")).unwrap(),
            "image"
        );
    }

    #[test]
    fn parent_modes_never_follow_a_symlink_in_a_layer() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir_all(outside.join("x")).unwrap();
        fs::set_permissions(outside.join("x"), fs::Permissions::from_mode(0o711)).unwrap();
        let lower = dir.path().join("lower");
        fs::create_dir_all(lower.join("real/x")).unwrap();
        fs::set_permissions(lower.join("real/x"), fs::Permissions::from_mode(0o750)).unwrap();
        symlink(&outside, lower.join("d")).unwrap();
        let upper = dir.path().join("upper");
        fs::create_dir(&upper).unwrap();

        make_parents(&upper, std::slice::from_ref(&lower), "d/x/f").unwrap();
        make_parents(&upper, std::slice::from_ref(&lower), "real/x/f").unwrap();
        assert_eq!(mode(&upper.join("d/x")), 0o755, "host mode not read");
        assert_eq!(mode(&upper.join("real/x")), 0o750, "layer mode kept");
    }
}
