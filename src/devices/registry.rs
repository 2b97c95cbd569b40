//! The node's CDI specs. The spec directories are scanned when a container asks for devices (no
//! watcher thread): each file is re-read only when its inode, size, mtime or ctime changed, so a
//! spec installed, edited or removed is seen by the next CreateContainer. A later directory
//! overrides an earlier one for the same device; two files of one directory defining it are a
//! conflict. Files are hostile input: only regular `.json`/`.yaml` files owned by root and not
//! writable by group or others are read, at most [`MAX_FILE_BYTES`] each, [`MAX_FILES`] per
//! directory; a file that fails any check is skipped and named when a lookup fails.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::edits::Step;
use super::error::CdiError;
use super::host::host_nodes;
use super::names::{QualifiedName, parse_kind};
use super::schema::{self, SpecFile};

/// The spec directories CDI defines, lowest priority first.
pub const DEFAULT_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];
/// Largest spec file read.
pub const MAX_FILE_BYTES: u64 = 4 << 20;
/// Most spec files read from one directory.
pub const MAX_FILES: usize = 1024;

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

struct Cached {
    stamp: Stamp,
    spec: Result<Arc<SpecFile>, String>,
}

/// The CDI spec directories and what was last read from them.
pub struct Registry {
    dirs: Vec<PathBuf>,
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("dirs", &self.dirs)
            .finish()
    }
}

/// One valid spec file of a scan.
struct Loaded {
    path: PathBuf,
    priority: usize,
    spec: Arc<SpecFile>,
}

/// Where each device is defined, after a scan.
#[derive(Default)]
struct Index {
    files: Vec<Loaded>,
    /// Qualified name -> (file index, device index).
    devices: HashMap<String, (usize, usize)>,
    /// Names defined twice in one directory: the two files.
    conflicts: HashMap<String, (PathBuf, PathBuf)>,
    /// Files skipped, with why.
    broken: Vec<(PathBuf, String)>,
}

impl Registry {
    /// A registry over `dirs`, lowest priority first. Nothing is read until the first lookup.
    pub fn new(dirs: Vec<PathBuf>) -> Registry {
        Registry {
            dirs,
            cache: Mutex::default(),
        }
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The edits that inject `names`, in order: for each device, its spec file's common edits
    /// (the first time a device of that file comes) and then its own, with every device node
    /// looked up on the host. Unknown or conflicting names fail with the name.
    pub fn resolve(&self, names: &[QualifiedName]) -> Result<Vec<Step>, CdiError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let index = self.scan()?;
        let mut steps = Vec::new();
        let mut files_used = HashSet::new();
        for name in names {
            let key = name.to_string();
            if let Some((first, second)) = index.conflicts.get(&key) {
                return Err(CdiError::Conflict {
                    name: key,
                    first: first.clone(),
                    second: second.clone(),
                });
            }
            let Some(&(file, device)) = index.devices.get(&key) else {
                return Err(self.unknown(key, &index.broken));
            };
            let loaded = &index.files[file];
            let inject = |why: String| CdiError::Inject {
                name: key.clone(),
                why: format!("{why} (spec {})", loaded.path.display()),
            };
            if files_used.insert(file) && !loaded.spec.container_edits.is_empty() {
                let edits = loaded.spec.container_edits.clone();
                let nodes = host_nodes(&edits.device_nodes).map_err(inject)?;
                steps.push(Step {
                    device: key.clone(),
                    edits,
                    nodes,
                });
            }
            let edits = loaded.spec.devices[device].container_edits.clone();
            let nodes = host_nodes(&edits.device_nodes).map_err(inject)?;
            steps.push(Step {
                device: key,
                edits,
                nodes,
            });
        }
        Ok(steps)
    }

    fn unknown(&self, name: String, broken: &[(PathBuf, String)]) -> CdiError {
        let dirs: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        let mut broken_text = String::new();
        if !broken.is_empty() {
            let listed: Vec<String> = broken
                .iter()
                .take(5)
                .map(|(p, why)| format!("{}: {why}", p.display()))
                .collect();
            let more = broken.len().saturating_sub(5);
            broken_text = format!("; ignored spec files: {}", listed.join("; "));
            if more > 0 {
                broken_text.push_str(&format!(" (and {more} more)"));
            }
        }
        CdiError::Unknown {
            name,
            dirs: dirs.join(", "),
            broken: broken_text,
        }
    }

    /// Reads what changed in the directories and indexes every device.
    fn scan(&self) -> Result<Index, CdiError> {
        let mut cache = self.cache.lock().expect("CDI cache lock");
        let mut index = Index::default();
        let mut present = HashSet::new();
        for (priority, dir) in self.dirs.iter().enumerate() {
            for path in spec_files(dir)? {
                present.insert(path.clone());
                let spec = match std::fs::metadata(&path) {
                    Ok(meta) => {
                        let stamp = Stamp::of(&meta);
                        match cache.get(&path) {
                            Some(c) if c.stamp == stamp => c.spec.clone(),
                            _ => {
                                let spec = load(&path).map(Arc::new);
                                cache.insert(
                                    path.clone(),
                                    Cached {
                                        stamp,
                                        spec: spec.clone(),
                                    },
                                );
                                spec
                            }
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                match spec {
                    Ok(spec) => index.add(Loaded {
                        path,
                        priority,
                        spec,
                    }),
                    Err(why) => index.broken.push((path, why)),
                }
            }
        }
        cache.retain(|path, _| present.contains(path));
        Ok(index)
    }
}

impl Index {
    fn add(&mut self, loaded: Loaded) {
        let (vendor, class) = parse_kind(&loaded.spec.kind).expect("validated on load");
        let file = self.files.len();
        for (device, d) in loaded.spec.devices.iter().enumerate() {
            let key = format!("{vendor}/{class}={}", d.name);
            match self.devices.get(&key) {
                Some(&(other, _)) if self.files[other].priority == loaded.priority => {
                    let first = self.files[other].path.clone();
                    self.conflicts.insert(key, (first, loaded.path.clone()));
                }
                // Same name from a later (higher-priority) directory: it wins.
                _ => {
                    self.conflicts.remove(&key);
                    self.devices.insert(key, (file, device));
                }
            }
        }
        self.files.push(loaded);
    }
}

/// The `.json` and `.yaml` entries of `dir` (not its subdirectories), sorted; none when the
/// directory does not exist.
fn spec_files(dir: &Path) -> Result<Vec<PathBuf>, CdiError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CdiError::Dir {
                dir: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CdiError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let spec_like = path.extension().is_some_and(|e| e == "json" || e == "yaml");
        if spec_like && !entry.file_type().is_ok_and(|t| t.is_dir()) {
            files.push(path);
        }
    }
    files.sort();
    if files.len() > MAX_FILES {
        tracing::warn!(dir = %dir.display(), count = files.len(), "too many CDI spec files; reading the first {MAX_FILES}");
        files.truncate(MAX_FILES);
    }
    Ok(files)
}

/// Reads and checks one spec file (following a symlink; the checks are on the opened file).
fn load(path: &Path) -> Result<SpecFile, String> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    // Non-blocking: opening a FIFO named like a spec must not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.uid() != 0 {
        return Err(format!("owned by uid {}, not root", meta.uid()));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err("writable by group or others".into());
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    schema::parse(path, &text)
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
