//! The build context: `.dockerignore` (Go `filepath.Match` patterns with `**`, `!` exceptions,
//! the last match wins), COPY/ADD sources resolved without leaving the context (no `..` above
//! it, no symlink followed out of it), and their content digest for the layer cache.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::BuildError;
use crate::image::digest::Hasher;

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
        let text = fs::read_to_string(root.join(".dockerignore")).unwrap_or_default();
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

    /// A digest over the content, names, modes and ownership of `sources` and everything under
    /// them (not excluded), for the layer cache.
    pub fn digest(&self, sources: &[String]) -> Result<String, BuildError> {
        let mut hasher = Hasher::default();
        for source in sources {
            let mut add = |rel: &str, meta: &fs::Metadata| -> Result<(), BuildError> {
                if self.ignored(rel) {
                    return Ok(());
                }
                let head = format!("{rel}\0{:o}\0{}:{}\0", meta.mode(), meta.uid(), meta.gid());
                hasher.update(head.as_bytes());
                let path = self.root.join(rel);
                if meta.is_file() {
                    let bytes =
                        fs::read(&path).map_err(|e| BuildError::Context(format!("{rel}: {e}")))?;
                    hasher.update(&bytes);
                } else if meta.file_type().is_symlink() {
                    let target = fs::read_link(&path)
                        .map_err(|e| BuildError::Context(format!("{rel}: {e}")))?;
                    hasher.update(target.as_os_str().as_encoded_bytes());
                }
                hasher.update(b"\0");
                Ok(())
            };
            let top = self.root.join(source);
            let meta = fs::symlink_metadata(&top)
                .map_err(|e| BuildError::Context(format!("{source}: {e}")))?;
            add(source, &meta)?;
            if meta.is_dir() {
                let mut error = None;
                self.walk(source, &mut |rel, meta| {
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

/// Whether `path` components match `pattern` components (`*`, `?`, `[..]` in a component;
/// `**` for any number of components).
fn matches(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| matches(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, tail)) => component_matches(first, name) && matches(rest, tail),
            None => false,
        },
    }
}

/// Whether something under the path `path` (components) could match `pattern`.
fn could_match_below(pattern: &[String], path: &[&str]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (_, None) => !pattern.is_empty(),
        (None, Some(_)) => false,
        (Some((first, _)), Some(_)) if first == "**" => true,
        (Some((first, rest)), Some((name, tail))) => {
            component_matches(first, name) && could_match_below(rest, tail)
        }
    }
}

fn component_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob(&p, &n)
}

fn glob(p: &[char], n: &[char]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some(('*', rest)) => (0..=n.len()).any(|i| glob(rest, &n[i..])),
        Some(('?', rest)) => !n.is_empty() && glob(rest, &n[1..]),
        Some(('[', rest)) => {
            let Some(end) = rest.iter().position(|c| *c == ']') else {
                return n.first() == Some(&'[') && glob(rest, &n[1..]);
            };
            let (class, after) = (&rest[..end], &rest[end + 1..]);
            let Some(c) = n.first() else { return false };
            let (negate, class) = match class.split_first() {
                Some(('^' | '!', tail)) => (true, tail),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != negate && glob(after, &n[1..])
        }
        Some(('\\', rest)) if !rest.is_empty() => {
            n.first() == Some(&rest[0]) && glob(&rest[1..], &n[1..])
        }
        Some((c, rest)) => n.first() == Some(c) && glob(rest, &n[1..]),
    }
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

    fn pat(p: &str) -> Vec<String> {
        p.split('/').map(str::to_string).collect()
    }

    #[test]
    fn glob_classes() {
        assert!(component_matches("f[a-c]?.txt", "fb1.txt"));
        assert!(!component_matches("f[!a-c].txt", "fb.txt"));
        assert!(component_matches("\\*", "*"));
    }
}
