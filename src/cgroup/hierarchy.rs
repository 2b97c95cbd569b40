//! Where the cgroup filesystems are mounted, and whether v1 or v2 is in charge.
//!
//! [`Hierarchy::detect`] reads `/proc/self/mountinfo`. If any cgroup v1 filesystem carries a
//! resource controller the host is driven as [`Mode::V1`], even when a cgroup2 filesystem is
//! mounted beside it (the hybrid layout, whose `unified` mount has no controllers). Otherwise the
//! cgroup2 mount is the whole story ([`Mode::V2`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::CgroupError;
use super::fs::{Result, read};

/// Which cgroup version berth drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One hierarchy per controller (or per co-mounted group); includes the hybrid layout.
    V1,
    /// The unified hierarchy.
    V2,
}

/// The resource controllers cgroup v1 knows; other mount options are not controllers.
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// The host's cgroup mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    mode: Mode,
    root: PathBuf,
    /// V1 only: controller (`memory`, `name=systemd`) to the directory its hierarchy is mounted
    /// on. Co-mounted controllers (`cpu,cpuacct`) share one directory.
    mounts: BTreeMap<String, PathBuf>,
}

impl Hierarchy {
    /// The host's layout, from `/proc/self/mountinfo`.
    pub fn detect() -> Result<Hierarchy> {
        let path = Path::new("/proc/self/mountinfo");
        Hierarchy::from_mountinfo(&read(path)?)
    }

    /// The layout described by the text of a `mountinfo` file.
    pub fn from_mountinfo(mountinfo: &str) -> Result<Hierarchy> {
        let mut v2_mounts = Vec::new();
        let mut mounts: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut first_v1 = None;
        for line in mountinfo.lines() {
            let Some((mount_point, fstype, super_opts)) = parse_mountinfo_line(line) else {
                continue;
            };
            match fstype {
                "cgroup2" => v2_mounts.push(mount_point),
                "cgroup" => {
                    first_v1.get_or_insert_with(|| mount_point.clone());
                    for name in super_opts.split(',').filter(|o| is_v1_controller(o)) {
                        mounts
                            .entry(name.to_string())
                            .or_insert_with(|| mount_point.clone());
                    }
                }
                _ => {}
            }
        }
        let has_resource_controller = mounts.keys().any(|name| !name.starts_with("name="));
        if let (true, Some(first)) = (has_resource_controller, first_v1) {
            let root = first.parent().map_or(first.clone(), Path::to_path_buf);
            return Ok(Hierarchy {
                mode: Mode::V1,
                root,
                mounts,
            });
        }
        let standard = Path::new("/sys/fs/cgroup");
        let root = v2_mounts
            .iter()
            .find(|p| p.as_path() == standard)
            .or(v2_mounts.first())
            .ok_or_else(|| CgroupError::Detect("no cgroup filesystem is mounted".into()))?;
        Ok(Hierarchy {
            mode: Mode::V2,
            root: root.clone(),
            mounts: BTreeMap::new(),
        })
    }

    /// A layout rooted at `root` (for tests on a temporary directory, or a non-standard mount).
    /// For V1 every directory under `root` is a hierarchy named after its controllers
    /// (`memory`, `cpu,cpuacct`; `systemd` is `name=systemd`); symlinks and `unified` are skipped.
    pub fn at(root: &Path, mode: Mode) -> Result<Hierarchy> {
        let not_dir = || CgroupError::Detect(format!("{} is not a directory", root.display()));
        if !root.is_dir() {
            return Err(not_dir());
        }
        let mut mounts = BTreeMap::new();
        if mode == Mode::V1 {
            let entries = fs::read_dir(root).map_err(|source| CgroupError::Read {
                path: root.to_path_buf(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| CgroupError::Read {
                    path: root.to_path_buf(),
                    source,
                })?;
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                let name = entry.file_name().to_string_lossy().into_owned();
                if !is_dir || name == "unified" {
                    continue;
                }
                if name == "systemd" {
                    mounts.insert("name=systemd".to_string(), entry.path());
                    continue;
                }
                for controller in name.split(',').filter(|c| is_v1_controller(c)) {
                    mounts.insert(controller.to_string(), entry.path());
                }
            }
        }
        Ok(Hierarchy {
            mode,
            root: root.to_path_buf(),
            mounts,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `/sys/fs/cgroup` on a standard host: the v2 mount, or the directory holding the v1 mounts.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// V1: the directory the hierarchy holding `controller` is mounted on.
    pub fn mount_of(&self, controller: &str) -> Option<&Path> {
        self.mounts.get(controller).map(PathBuf::as_path)
    }

    /// V1: every mounted hierarchy once (co-mounted controllers share one), in a stable order.
    pub(crate) fn v1_mount_dirs(&self) -> Vec<&Path> {
        let unique: BTreeSet<&Path> = self.mounts.values().map(PathBuf::as_path).collect();
        unique.into_iter().collect()
    }

    /// Whether this host can enforce `controller`: v1, a hierarchy holding it is mounted; v2,
    /// the root offers it.
    pub fn has_controller(&self, controller: &str) -> bool {
        match self.mode {
            Mode::V1 => self.mount_of(controller).is_some(),
            Mode::V2 => self
                .v2_root_controllers()
                .is_ok_and(|c| c.contains(controller)),
        }
    }

    /// V2: the controllers the root offers (`cgroup.controllers`).
    pub(crate) fn v2_root_controllers(&self) -> Result<BTreeSet<String>> {
        let content = read(&self.root.join("cgroup.controllers"))?;
        Ok(content.split_whitespace().map(str::to_string).collect())
    }
}

fn is_v1_controller(option: &str) -> bool {
    option.starts_with("name=") || V1_CONTROLLERS.contains(&option)
}

/// The mount point, filesystem type and super options of one mountinfo line.
fn parse_mountinfo_line(line: &str) -> Option<(PathBuf, &str, &str)> {
    let (before, after) = line.split_once(" - ")?;
    let mount_point = before.split(' ').nth(4)?;
    let mut after = after.split(' ');
    let fstype = after.next()?;
    let _source = after.next()?;
    let super_opts = after.next().unwrap_or("");
    Some((PathBuf::from(unescape(mount_point)), fstype, super_opts))
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
pub fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(u8::is_ascii_digit));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |acc, &b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime shared:9 - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_layout_is_driven_as_v1() {
        let h = Hierarchy::from_mountinfo(HYBRID).unwrap();
        assert_eq!(h.mode(), Mode::V1);
        assert_eq!(h.root(), Path::new("/sys/fs/cgroup"));
        assert_eq!(
            h.mount_of("memory"),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            h.mount_of("name=systemd"),
            Some(Path::new("/sys/fs/cgroup/systemd"))
        );
        assert_eq!(h.mount_of("rw"), None);
        assert_eq!(h.mount_of("xattr"), None);
        assert_eq!(h.v1_mount_dirs().len(), 5);
        assert!(h.has_controller("memory"));
        assert!(
            !h.has_controller("hugetlb"),
            "no hugetlb hierarchy is mounted"
        );
    }

    #[test]
    fn co_mounted_controllers_share_one_directory() {
        let info = "1 0 0:1 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let h = Hierarchy::from_mountinfo(info).unwrap();
        assert_eq!(h.mount_of("cpu"), h.mount_of("cpuacct"));
        assert_eq!(
            h.v1_mount_dirs(),
            vec![Path::new("/sys/fs/cgroup/cpu,cpuacct")]
        );
    }

    #[test]
    fn pure_v2_and_named_only_v1_are_v2() {
        let v2 = "25 20 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = Hierarchy::from_mountinfo(v2).unwrap();
        assert_eq!(h.mode(), Mode::V2);
        assert_eq!(h.root(), Path::new("/sys/fs/cgroup"));

        let named = format!("{v2}26 25 0:23 / /run/systemd rw - cgroup cgroup rw,name=systemd\n");
        assert_eq!(Hierarchy::from_mountinfo(&named).unwrap().mode(), Mode::V2);
    }

    #[test]
    fn no_cgroup_mount_is_an_error() {
        let info = "22 1 0:21 / /proc rw - proc proc rw\n";
        let err = Hierarchy::from_mountinfo(info).unwrap_err();
        assert!(matches!(err, CgroupError::Detect(_)), "{err}");
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain\x"), r"/plain\x");
    }

    #[test]
    fn at_reads_v1_directories_and_skips_symlinks_and_unified() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["cpu,cpuacct", "memory", "systemd", "unified"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::os::unix::fs::symlink("cpu,cpuacct", dir.path().join("cpu")).unwrap();
        let h = Hierarchy::at(dir.path(), Mode::V1).unwrap();
        assert_eq!(
            h.mount_of("cpu"),
            Some(dir.path().join("cpu,cpuacct").as_path())
        );
        assert_eq!(h.mount_of("cpuacct"), h.mount_of("cpu"));
        assert!(h.mount_of("name=systemd").is_some());
        assert_eq!(h.v1_mount_dirs().len(), 3);
        assert!(Hierarchy::at(&dir.path().join("nope"), Mode::V2).is_err());
    }

    /// The host this runs on must have some cgroup filesystem; detection must agree with mounts.
    #[test]
    fn detect_matches_this_host() {
        let h = Hierarchy::detect().unwrap();
        let mounts = read(Path::new("/proc/self/mountinfo")).unwrap();
        let has_v1_memory = mounts
            .lines()
            .any(|l| l.contains(" - cgroup ") && l.split(',').any(|o| o == "memory"));
        assert_eq!(h.mode() == Mode::V1, has_v1_memory);
    }
}
