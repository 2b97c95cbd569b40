//! The `cgroup`/`cgroup2` mount entry. On a cgroup v2 host it is a cgroup2 mount. On a v1 (or
//! hybrid) host it is a tmpfs with one directory per host hierarchy: a fresh mount of the same
//! hierarchy when the container has its own cgroup namespace (showing the namespace root), else a
//! bind mount of the container's own cgroup directory in that hierarchy.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};

use super::error::{Context, StepError};
use super::mount_options::MountOptions;
use super::mounts::{MountCtx, bind_onto, finish, mount_fs, remount_bind};
use super::resolve::proc_fd_path;

const HOST_CGROUP: &str = "/sys/fs/cgroup";

/// One host hierarchy mounted directly under `/sys/fs/cgroup`.
#[derive(Debug, PartialEq, Eq)]
struct Hierarchy {
    /// Directory name under `/sys/fs/cgroup` (`cpu`, `systemd`, `unified`).
    name: String,
    /// `cgroup` or `cgroup2`.
    fstype: String,
    /// The controllers and `name=` of a v1 hierarchy (`cpu,cpuacct`, `name=systemd`).
    controllers: Vec<String>,
}

/// Mounts the cgroup filesystem on `dest`.
pub(crate) fn mount(ctx: &MountCtx<'_>, dest: &Path, opts: &MountOptions) -> Result<(), StepError> {
    let what = || format!("mount cgroup on {}", dest.display());
    let host = statfs(HOST_CGROUP).ctx(|| format!("statfs {HOST_CGROUP}"))?;
    let target = ctx.root.mkdir_all(dest)?;
    if host.filesystem_type() == CGROUP2_SUPER_MAGIC {
        mount_fs(
            target.as_fd(),
            Path::new("cgroup2"),
            "cgroup2",
            opts.flags,
            "",
        )
        .ctx(what)?;
        return finish(ctx, dest, opts);
    }
    let base = opts.flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let tmpfs_flags = base - MsFlags::MS_RDONLY;
    mount_fs(
        target.as_fd(),
        Path::new("cgroup"),
        "tmpfs",
        tmpfs_flags,
        "mode=755",
    )
    .ctx(what)?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ctx(|| "read mountinfo")?;
    let subsystems = std::fs::read_to_string("/proc/cgroups").ctx(|| "read /proc/cgroups")?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ctx(|| "read /proc/self/cgroup")?;
    for h in hierarchies(&mountinfo, &subsystems) {
        let sub = dest.join(&h.name);
        let what = || format!("mount cgroup hierarchy {} on {}", h.name, sub.display());
        let fd = ctx.root.mkdir_all(&sub)?;
        if ctx.new_cgroup_ns {
            let data = if h.fstype == "cgroup2" {
                String::new()
            } else if h.controllers.iter().all(|c| c.starts_with("name=")) {
                format!("none,{}", h.controllers.join(","))
            } else {
                h.controllers.join(",")
            };
            mount_fs(fd.as_fd(), Path::new("cgroup"), &h.fstype, base, &data).ctx(what)?;
        } else {
            let path = own_path(&own, &h)
                .ok_or_else(|| StepError::new(what(), "not in /proc/self/cgroup"))?;
            let source = PathBuf::from(HOST_CGROUP)
                .join(&h.name)
                .join(path.trim_start_matches('/'));
            bind_onto(&source, fd.as_fd(), MsFlags::MS_REC).ctx(what)?;
            remount_bind(ctx.reopen(&sub)?.as_fd(), base).ctx(what)?;
        }
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let fd = ctx.reopen(dest)?;
        let path = proc_fd_path(fd.as_fd());
        nix::mount::mount(
            None::<&str>,
            path.as_str(),
            None::<&str>,
            base | MsFlags::MS_REMOUNT,
            Some("mode=755"),
        )
        .ctx(|| format!("remount {} read-only", dest.display()))?;
    }
    finish(ctx, dest, opts)
}

/// The cgroup hierarchies mounted directly under `/sys/fs/cgroup`, from `/proc/self/mountinfo`.
fn hierarchies(mountinfo: &str, proc_cgroups: &str) -> Vec<Hierarchy> {
    let known: Vec<&str> = proc_cgroups
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = left.split(' ').nth(4) else {
            continue;
        };
        let mut right = right.split(' ');
        let (Some(fstype), Some(_source), Some(super_opts)) =
            (right.next(), right.next(), right.next())
        else {
            continue;
        };
        let Some(name) = mount_point.strip_prefix("/sys/fs/cgroup/") else {
            continue;
        };
        if name.contains('/') || !(fstype == "cgroup" || fstype == "cgroup2") {
            continue;
        }
        let controllers = super_opts
            .split(',')
            .filter(|o| o.starts_with("name=") || known.contains(o))
            .map(str::to_string)
            .collect();
        found.push(Hierarchy {
            name: name.to_string(),
            fstype: fstype.to_string(),
            controllers,
        });
    }
    found
}

/// This process's cgroup path in hierarchy `h`, from `/proc/self/cgroup`.
fn own_path<'a>(own: &'a str, h: &Hierarchy) -> Option<&'a str> {
    own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if h.fstype == "cgroup2" {
            id == "0" && controllers.is_empty()
        } else {
            let mut want: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
            let mut have: Vec<&str> = controllers.split(',').collect();
            want.sort_unstable();
            have.sort_unstable();
            want == have
        };
        matches.then_some(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
32 30 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
34 25 0:30 / /sys/kernel/debug rw,relatime - debugfs debugfs rw";
    const CGROUPS: &str =
        "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\ncpuacct\t2\t1\t1\n";

    #[test]
    fn finds_hierarchies_and_their_controllers() {
        let found = hierarchies(MOUNTINFO, CGROUPS);
        let names: Vec<_> = found
            .iter()
            .map(|h| (h.name.as_str(), h.controllers.join(",")))
            .collect();
        assert_eq!(
            names,
            [
                ("cpu,cpuacct", "cpu,cpuacct".to_string()),
                ("systemd", "name=systemd".to_string()),
                ("unified", String::new())
            ]
        );
    }

    #[test]
    fn own_path_matches_controller_sets_in_any_order() {
        let own = "2:cpuacct,cpu:/pod/ctr\n1:name=systemd:/sys\n0::/unified/x\n";
        let found = hierarchies(MOUNTINFO, CGROUPS);
        assert_eq!(own_path(own, &found[0]), Some("/pod/ctr"));
        assert_eq!(own_path(own, &found[1]), Some("/sys"));
        assert_eq!(own_path(own, &found[2]), Some("/unified/x"));
    }
}
