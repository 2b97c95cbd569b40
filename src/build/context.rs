//! The build context: `.dockerignore` (Go `filepath.Match` patterns with `**`, `!` exceptions,
//! the last match wins), COPY/ADD sources resolved without leaving the context (no `..` above
//! it, no symlink followed out of it), and their content digest for the layer cache.

use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use super::BuildError;
use super::copy::resolve_in;
use super::pattern::{could_match_below, matches};
use crate::image::digest::{Digest, Hasher};

/// Largest Dockerfile or `.dockerignore` read: far more than any real one needs.
pub const MAX_TEXT_BYTES: u64 = 4 << 20;

/// A build context directory and its ignore rules.
pub struct Context {
    pub root: PathBuf,
    rules: Vec<(bool, Vec<String>)>,
}

impl Context {
    /// Opens `root` and reads its `.dockerignore`, if any.
    pub fn open(root: &Path) -> Result<Context, BuildError> {
        let root = fs::canonicalize(root)
            .map_err(|e| BuildError::Context(format!("{}: {e}", root.display())))?;
        // One that exists must be read: building without it would copy what it excludes.
        let text = match fs::symlink_metadata(root.join(".dockerignore")) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            _ => read_text(&in_context(&root, ".dockerignore")?, true)?,
        };
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (negate, pattern) = match l.strip_prefix('!') {
                    Some(p) => (true, p.trim()),
                    None => (false, l),
                };
                let clean = normalize(pattern).unwrap_or_default();
                (negate, clean.split('/').map(str::to_string).collect())
            })
            .collect();
        Ok(Context { root, rules })
    }

    /// The Dockerfile's text: `explicit` (the caller's `-f`), or `Dockerfile` in the context.
    /// The one in the context is resolved inside it, as COPY sources are; the caller's own path
    /// has its symlinks followed.
    pub fn dockerfile(&self, explicit: Option<&Path>) -> Result<String, BuildError> {
        match explicit {
            Some(path) => read_text(path, false),
            None => read_text(&in_context(&self.root, "Dockerfile")?, true),
        }
    }

    /// Whether the context-relative path `rel` is excluded by `.dockerignore` (a path is also
    /// excluded when a parent directory of it is).
    pub fn ignored(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let mut ignored = false;
        for (negate, pattern) in &self.rules {
            let hit = (1..=parts.len()).any(|n| matches(pattern, &parts[..n]));
            if hit {
                ignored = !negate;
            }
        }
        ignored
    }

    /// The context files a COPY source names (a path or a glob), as context-relative paths.
    /// A source that leaves the context is an error; so is one that matches nothing.
    pub fn sources(&self, source: &str) -> Result<Vec<String>, BuildError> {
        let clean = normalize(source)
            .ok_or_else(|| BuildError::Context(format!("{source}: outside the build context")))?;
        let pattern: Vec<String> = clean.split('/').map(str::to_string).collect();
        let mut found = Vec::new();
        if clean.is_empty() || clean == "." {
            return Ok(vec![String::new()]);
        }
        self.walk("", &mut |rel, _| {
            let parts: Vec<&str> = rel.split('/').collect();
            if matches(&pattern, &parts) {
                found.push(rel.to_string());
                return false; // a match is copied whole; no need to look inside
            }
            // Only into directories under which the pattern can still match: a COPY of one
            // file from a large context (a repository with its target/) reads a few dirs.
            could_match_below(&pattern, &parts)
        })?;
        found.retain(|rel| !self.ignored(rel));
        if found.is_empty() {
            return Err(BuildError::Context(format!(
                "{source}: no such file in the build context (or excluded by .dockerignore)"
            )));
        }
        Ok(found)
    }

    /// Calls `visit(rel, metadata)` for every entry under the context-relative `dir`, without
    /// following symlinks; `visit` returns whether to descend into a directory.
    pub fn walk(
        &self,
        dir: &str,
        visit: &mut dyn FnMut(&str, &fs::Metadata) -> bool,
    ) -> Result<(), BuildError> {
        let path = self.root.join(dir);
        let mut entries: Vec<_> = fs::read_dir(&path)
            .map_err(|e| BuildError::Context(format!("{}: {e}", path.display())))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let meta = fs::symlink_metadata(entry.path())
                .map_err(|e| BuildError::Context(format!("{rel}: {e}")))?;
            if visit(&rel, &meta) && meta.is_dir() {
                self.walk(&rel, visit)?;
            }
        }
        Ok(())
    }

    /// A digest over the content, names, modes and ownership of `sources` (what they resolve to
    /// in the context) and everything under them (not excluded), for the layer cache. Every
    /// part goes in with its length first, so no file's bytes can pass for the entries after
    /// it; files are streamed, never held in memory whole.
    pub fn digest(&self, sources: &[String]) -> Result<String, BuildError> {
        let mut hasher = Hasher::default();
        for source in sources {
            let top = in_context(&self.root, source)?;
            let top_rel = top
                .strip_prefix(&self.root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            part(&mut hasher, source.as_bytes());
            let mut add = |rel: &str, meta: &fs::Metadata| -> Result<(), BuildError> {
                if self.ignored(rel) {
                    return Ok(());
                }
                let fail = |e: io::Error| BuildError::Context(format!("{rel}: {e}"));
                let path = self.root.join(rel);
                let content = if meta.is_file() {
                    file_digest(&path).map_err(fail)?.to_string().into_bytes()
                } else if meta.file_type().is_symlink() {
                    fs::read_link(&path)
                        .map_err(fail)?
                        .into_os_string()
                        .into_vec()
                } else {
                    Vec::new()
                };
                let head = format!("{:o} {}:{}", meta.mode(), meta.uid(), meta.gid());
                for bytes in [rel.as_bytes(), head.as_bytes(), content.as_slice()] {
                    part(&mut hasher, bytes);
                }
                Ok(())
            };
            let meta = fs::symlink_metadata(&top)
                .map_err(|e| BuildError::Context(format!("{source}: {e}")))?;
            add(&top_rel, &meta)?;
            if meta.is_dir() {
                let mut error = None;
                self.walk(&top_rel, &mut |rel, meta| {
                    if error.is_none()
                        && let Err(e) = add(rel, meta)
                    {
                        error = Some(e);
                    }
                    true
                })?;
                if let Some(e) = error {
                    return Err(e);
                }
            }
        }
        Ok(hasher.finish().to_string())
    }
}

/// Feeds `bytes` to `hasher`, its length first.
fn part(hasher: &mut Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// Hashes what is written to it.
struct HashWriter<'a>(&'a mut Hasher);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The digest of the regular file `path`, streamed. A FIFO or device swapped in since it was
/// listed is refused without blocking.
fn file_digest(path: &Path) -> io::Result<Digest> {
    let mut file = open_regular(path, true)?;
    let mut hasher = Hasher::default();
    io::copy(&mut file, &mut HashWriter(&mut hasher))?;
    Ok(hasher.finish())
}

/// Opens `path` for reading only when it is a regular file (checked before and after opening);
/// `O_NONBLOCK` keeps a FIFO swapped in between from making the open wait, and `nofollow`
/// refuses a symlink as the last component.
fn open_regular(path: &Path, nofollow: bool) -> io::Result<fs::File> {
    let not_regular = || io::Error::other("not a regular file");
    let meta = if nofollow {
        fs::symlink_metadata(path)?
    } else {
        fs::metadata(path)?
    };
    if !meta.is_file() {
        return Err(not_regular());
    }
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    Ok(file)
}

/// The text of a Dockerfile or `.dockerignore` at `path`: a regular file (a device such as
/// `/dev/zero`, a FIFO or a socket is refused unread) of at most [`MAX_TEXT_BYTES`].
fn read_text(path: &Path, nofollow: bool) -> Result<String, BuildError> {
    let fail = |reason: String| BuildError::Context(format!("{}: {reason}", path.display()));
    let file = open_regular(path, nofollow).map_err(|e| fail(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_TEXT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_TEXT_BYTES {
        return Err(fail(format!(
            "larger than the limit of {MAX_TEXT_BYTES} bytes"
        )));
    }
    Ok(text)
}

/// `rel` resolved inside the context `root` as COPY sources are: symlinks are followed as if
/// `root` were `/`.
fn in_context(root: &Path, rel: &str) -> Result<PathBuf, BuildError> {
    resolve_in(root, rel).map_err(|e| match e {
        BuildError::Source(reason) | BuildError::Copy(reason) => BuildError::Context(reason),
        other => other,
    })
}

/// `path` without `.` components, leading `/` or `./`; None if `..` climbs above the start.
pub fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_patterns_and_exceptions() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(".dockerignore"),
            "# comment\n*.log\nbuild/\n**/secret*\n!keep.log\n",
        )
        .unwrap();
        let c = Context::open(dir.path()).unwrap();
        assert!(c.ignored("a.log"));
        assert!(!c.ignored("keep.log"));
        assert!(!c.ignored("dir/a.log"), "* does not cross /");
        assert!(c.ignored("build/x/y"), "a parent match excludes children");
        assert!(c.ignored("deep/er/secret.txt"));
        assert!(!c.ignored("src/main.rs"));
    }

    #[test]
    fn sources_never_leave_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("ctx");
        fs::create_dir_all(ctx.join("src")).unwrap();
        fs::write(ctx.join("src/a.txt"), "a").unwrap();
        fs::write(ctx.join("src/b.md"), "b").unwrap();
        fs::write(dir.path().join("outside"), "secret").unwrap();
        let c = Context::open(&ctx).unwrap();
        assert_eq!(c.sources("src/*.txt").unwrap(), ["src/a.txt"]);
        assert_eq!(c.sources("./src/../src/b.md").unwrap(), ["src/b.md"]);
        assert!(c.sources("../outside").is_err());
        assert!(c.sources("src/../../outside").is_err());
        assert!(c.sources("nope").is_err());
        // "/x" means the context's x, not the host's.
        assert_eq!(c.sources("/src/a.txt").unwrap(), ["src/a.txt"]);
    }

    #[test]
    fn sources_walk_only_where_the_pattern_can_match() {
        assert!(could_match_below(&pat("target/*/berthd"), &["target"]));
        assert!(could_match_below(
            &pat("target/*/berthd"),
            &["target", "debug"]
        ));
        assert!(!could_match_below(&pat("target/*/berthd"), &["vendor"]));
        assert!(!could_match_below(
            &pat("target/*/berthd"),
            &["target", "a", "b"]
        ));
        assert!(could_match_below(&pat("**/x"), &["a", "b", "c"]));
        assert!(!could_match_below(&pat("a"), &["a"]));

        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("bin/debug")).unwrap();
        fs::create_dir_all(dir.path().join("other/bin/debug")).unwrap();
        fs::write(dir.path().join("bin/debug/tool"), "t").unwrap();
        fs::write(dir.path().join("other/bin/debug/tool"), "t").unwrap();
        let c = Context::open(dir.path()).unwrap();
        assert_eq!(c.sources("bin/*/tool").unwrap(), ["bin/debug/tool"]);
        assert_eq!(
            c.sources("**/debug/tool").unwrap(),
            ["bin/debug/tool", "other/bin/debug/tool"]
        );
    }

    /// A hostile context's Dockerfile or `.dockerignore` that never ends (a symlink to
    /// `/dev/zero`, a FIFO) or is huge must be refused, not read into berthd's memory forever.
    #[test]
    fn recipe_files_that_never_end_are_refused() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path();
        symlink("/dev/zero", ctx.join("Dockerfile")).unwrap();
        let c = Context::open(ctx).unwrap();
        let refused = |explicit: Option<&Path>, why: &str| {
            let err = c.dockerfile(explicit).expect_err(why);
            assert!(matches!(err, BuildError::Context(_)), "{why}: {err:?}");
            err.to_string()
        };
        // Resolved inside the context, as COPY sources are: its /dev/zero does not exist.
        refused(None, "a Dockerfile symlinked to /dev/zero");
        let err = refused(Some(Path::new("/dev/zero")), "-f /dev/zero");
        assert!(err.contains("not a regular file"), "{err}");
        nix::unistd::mkfifo(&ctx.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = refused(Some(&ctx.join("fifo")), "-f naming a FIFO");
        assert!(err.contains("not a regular file"), "{err}");
        let big = ctx.join("big");
        fs::write(&big, vec![b'#'; MAX_TEXT_BYTES as usize + 1]).unwrap();
        let err = refused(Some(&big), "a Dockerfile over the limit");
        assert!(err.contains("limit"), "{err}");
        // A symlink that stays in the context is still followed.
        fs::create_dir(ctx.join("docker")).unwrap();
        fs::write(ctx.join("docker/Dockerfile"), "FROM scratch\n").unwrap();
        fs::remove_file(ctx.join("Dockerfile")).unwrap();
        symlink("/docker/Dockerfile", ctx.join("Dockerfile")).unwrap();
        assert_eq!(c.dockerfile(None).unwrap(), "FROM scratch\n");

        let dir = tempfile::tempdir().unwrap();
        symlink("/dev/zero", dir.path().join(".dockerignore")).unwrap();
        assert!(
            Context::open(dir.path()).is_err(),
            ".dockerignore -> /dev/zero"
        );
    }

    /// Hashing a COPY source for the cache streams it: a huge (here sparse) file in the context
    /// must not be read into berthd's memory whole.
    #[test]
    fn source_digest_streams_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let big = fs::File::create(dir.path().join("big")).unwrap();
        big.set_len(512 << 20).unwrap();
        let c = Context::open(dir.path()).unwrap();
        let peak = || -> u64 {
            let status = fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
                * 1024
        };
        let before = peak();
        c.digest(&["big".to_string()]).unwrap();
        let grew = peak().saturating_sub(before);
        assert!(grew < 128 << 20, "peak memory grew by {grew} bytes");
    }

    /// The cache key of a COPY must tell contexts apart: a file whose bytes spell out the next
    /// entry of another context (its name, mode, owner and content) is not that context.
    #[test]
    fn source_digests_of_different_contexts_differ() {
        let honest = tempfile::tempdir().unwrap();
        fs::create_dir(honest.path().join("dir")).unwrap();
        fs::write(honest.path().join("dir/a"), "x").unwrap();
        fs::write(honest.path().join("dir/b"), "#!/bin/sh\necho ok\n").unwrap();
        let meta = fs::symlink_metadata(honest.path().join("dir/b")).unwrap();
        let forged = tempfile::tempdir().unwrap();
        fs::create_dir(forged.path().join("dir")).unwrap();
        let spelled = format!(
            "x\0dir/b\0{:o}\0{}:{}\0#!/bin/sh\necho ok\n",
            meta.mode(),
            meta.uid(),
            meta.gid()
        );
        fs::write(forged.path().join("dir/a"), spelled).unwrap();
        let digest = |dir: &Path| {
            Context::open(dir)
                .unwrap()
                .digest(&["dir".to_string()])
                .unwrap()
        };
        assert_ne!(digest(honest.path()), digest(forged.path()));
    }

    /// A COPY source that is a symlink is copied as what it resolves to (inside the context), so
    /// the cache key must change when that content does, not only when the link does.
    #[test]
    fn source_digest_follows_a_top_level_symlink_inside_the_context() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("data")).unwrap();
        fs::write(dir.path().join("data/file"), "one").unwrap();
        std::os::unix::fs::symlink("/data/file", dir.path().join("link")).unwrap();
        let c = Context::open(dir.path()).unwrap();
        let before = c.digest(&["link".to_string()]).unwrap();
        fs::write(dir.path().join("data/file"), "two").unwrap();
        assert_ne!(c.digest(&["link".to_string()]).unwrap(), before);
    }

    fn pat(p: &str) -> Vec<String> {
        p.split('/').map(str::to_string).collect()
    }
}
