//! Parsing of OCI mount options (`fstab`-style words) into mount flags, propagation changes,
//! recursive attributes (`rro`, ...), id-mapping (`idmap`, `ridmap`) and the filesystem-specific
//! data string.

use nix::mount::MsFlags;

use crate::sys::mount::{
    MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY,
};

/// The parsed options of one mount.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// Flags to set (`MS_RDONLY`, `MS_NOSUID`, ..., `MS_BIND`, `MS_REC`).
    pub flags: MsFlags,
    /// Propagation changes, in order (`MS_PRIVATE`, `MS_REC | MS_SLAVE`, ...).
    pub propagation: Vec<MsFlags>,
    /// `MOUNT_ATTR_*` bits to set recursively (`rro`, `rnosuid`, ...).
    pub recursive_set: u64,
    /// `MOUNT_ATTR_*` bits to clear recursively (`rrw`, `rsuid`, ...).
    pub recursive_clear: u64,
    /// Everything else, comma-joined for the filesystem (`size=65536k,mode=755`).
    pub data: String,
    /// `idmap` (the top mount) or `ridmap` (every mount of the bound tree): a bind mount
    /// id-mapped through the container's user namespace.
    pub idmap: Option<IdmapScope>,
}

/// Which mounts of an id-mapped bind get the idmapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdmapScope {
    /// `idmap`: the bound directory's own mount (its submounts, with `rbind`, keep theirs).
    Top,
    /// `ridmap`: every mount of the bound tree.
    Recursive,
}

/// Options that set or clear a plain mount flag.
const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("ro", true, MsFlags::MS_RDONLY),
    ("rw", false, MsFlags::MS_RDONLY),
    ("nosuid", true, MsFlags::MS_NOSUID),
    ("suid", false, MsFlags::MS_NOSUID),
    ("nodev", true, MsFlags::MS_NODEV),
    ("dev", false, MsFlags::MS_NODEV),
    ("noexec", true, MsFlags::MS_NOEXEC),
    ("exec", false, MsFlags::MS_NOEXEC),
    ("sync", true, MsFlags::MS_SYNCHRONOUS),
    ("async", false, MsFlags::MS_SYNCHRONOUS),
    ("dirsync", true, MsFlags::MS_DIRSYNC),
    ("mand", true, MsFlags::MS_MANDLOCK),
    ("nomand", false, MsFlags::MS_MANDLOCK),
    ("noatime", true, MsFlags::MS_NOATIME),
    ("atime", false, MsFlags::MS_NOATIME),
    ("nodiratime", true, MsFlags::MS_NODIRATIME),
    ("diratime", false, MsFlags::MS_NODIRATIME),
    ("relatime", true, MsFlags::MS_RELATIME),
    ("norelatime", false, MsFlags::MS_RELATIME),
    ("strictatime", true, MsFlags::MS_STRICTATIME),
    ("nostrictatime", false, MsFlags::MS_STRICTATIME),
    ("bind", true, MsFlags::MS_BIND),
    ("rbind", true, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
];

/// Propagation options.
const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// Recursive attribute options, applied with `mount_setattr(AT_RECURSIVE)`.
const RECURSIVE: &[(&str, bool, u64)] = &[
    ("rro", true, MOUNT_ATTR_RDONLY),
    ("rrw", false, MOUNT_ATTR_RDONLY),
    ("rnosuid", true, MOUNT_ATTR_NOSUID),
    ("rsuid", false, MOUNT_ATTR_NOSUID),
    ("rnodev", true, MOUNT_ATTR_NODEV),
    ("rdev", false, MOUNT_ATTR_NODEV),
    ("rnoexec", true, MOUNT_ATTR_NOEXEC),
    ("rexec", false, MOUNT_ATTR_NOEXEC),
];

/// Options other runtimes accept that berth refuses rather than ignores.
const UNSUPPORTED: &[&str] = &["tmpcopyup", "copy-symlink", "remount"];

impl MountOptions {
    /// Parses `options`; an option berth cannot honour is an error naming it.
    pub fn parse(options: &[String]) -> Result<MountOptions, String> {
        let mut parsed = MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            recursive_set: 0,
            recursive_clear: 0,
            data: String::new(),
            idmap: None,
        };
        let mut data = Vec::new();
        for option in options {
            let option = option.as_str();
            if let Some((_, set, flag)) = FLAGS.iter().find(|(name, ..)| *name == option) {
                parsed.flags.set(*flag, *set);
            } else if let Some((_, flag)) = PROPAGATION.iter().find(|(name, _)| *name == option) {
                parsed.propagation.push(*flag);
            } else if let Some((_, set, bit)) = RECURSIVE.iter().find(|(name, ..)| *name == option)
            {
                if *set {
                    parsed.recursive_set |= bit;
                    parsed.recursive_clear &= !bit;
                } else {
                    parsed.recursive_clear |= bit;
                    parsed.recursive_set &= !bit;
                }
            } else if option == "idmap" {
                parsed.idmap = Some(IdmapScope::Top);
            } else if option == "ridmap" {
                parsed.idmap = Some(IdmapScope::Recursive);
            } else if UNSUPPORTED.contains(&option) {
                return Err(format!("mount option {option:?} is not supported"));
            } else if option != "defaults" && !option.is_empty() {
                data.push(option);
            }
        }
        parsed.data = data.join(",");
        Ok(parsed)
    }

    /// Whether this is a bind mount (by option).
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// The flags that need a remount after a bind mount (everything but bind/rec).
    pub fn remount_flags(&self) -> MsFlags {
        self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &[&str]) -> MountOptions {
        let owned: Vec<String> = options.iter().map(|s| s.to_string()).collect();
        MountOptions::parse(&owned).unwrap()
    }

    #[test]
    fn flags_data_and_propagation_are_separated() {
        let o = parse(&[
            "nosuid",
            "strictatime",
            "mode=755",
            "size=65536k",
            "rprivate",
        ]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let o = parse(&["ro", "rw", "rbind"]);
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert!(o.is_bind());
        assert!(o.remount_flags().is_empty());
    }

    #[test]
    fn recursive_attributes() {
        let o = parse(&["rbind", "rro", "rnosuid"]);
        assert_eq!(o.recursive_set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID);
        assert_eq!(o.recursive_clear, 0);
    }

    #[test]
    fn idmap_options() {
        assert_eq!(parse(&["rbind"]).idmap, None);
        assert_eq!(parse(&["rbind", "idmap"]).idmap, Some(IdmapScope::Top));
        let o = parse(&["rbind", "ridmap", "ro"]);
        assert_eq!(o.idmap, Some(IdmapScope::Recursive));
        assert_eq!(o.data, "");
    }

    #[test]
    fn unsupported_options_are_errors() {
        let err = MountOptions::parse(&["tmpcopyup".to_string()]).unwrap_err();
        assert!(err.contains("tmpcopyup"), "{err}");
    }
}
