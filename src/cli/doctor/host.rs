//! `berth doctor`'s checks of the host itself: kernel, cgroups, overlayfs, id-mapped mounts,
//! free disk and the clock. Each check is a pure function of what it read, tested by tables.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Check;
use crate::cgroup::{Hierarchy, Mode};
use crate::config::Config;
use crate::image::unpack::DiskReserve;

/// Controllers berth cannot limit containers without.
const REQUIRED_CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];
/// Controllers berth uses when present.
const OPTIONAL_CONTROLLERS: &[&str] = &["cpuset", "hugetlb", "io", "blkio", "devices"];

pub fn checks(config: &Config) -> Vec<Check> {
    let release = read("/proc/sys/kernel/osrelease");
    let mountinfo = read("/proc/self/mountinfo");
    vec![
        kernel(&release),
        cgroups(&mountinfo, |root| {
            std::fs::read_to_string(root.join("cgroup.controllers")).ok()
        }),
        overlay(&read("/proc/filesystems")),
        idmapped_mounts(&release),
        disk(&config.root_dir, &config.image.disk_reserve),
        clock(SystemTime::now(), build_time()),
    ]
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `(major, minor)` of a kernel release such as `6.1.0-28-amd64`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn kernel(release: &str) -> Check {
    let release = release.trim();
    match kernel_version(release) {
        Some(v) if v >= (5, 0) => Check::ok("kernel", format!("Linux {release}")),
        Some(_) => Check::fail(
            "kernel",
            format!("Linux {release} is older than 5.0"),
            "upgrade the kernel to 5.x or newer",
        ),
        None => Check::fail(
            "kernel",
            format!("cannot read the kernel version ({release:?})"),
            "check that /proc is mounted",
        ),
    }
}

/// The cgroup layout and its controllers; `v2_controllers` reads `cgroup.controllers` under a
/// cgroup2 root.
fn cgroups(mountinfo: &str, v2_controllers: impl Fn(&Path) -> Option<String>) -> Check {
    let hierarchy = match Hierarchy::from_mountinfo(mountinfo) {
        Ok(h) => h,
        Err(e) => {
            return Check::fail(
                "cgroups",
                format!("no usable cgroup mount: {e}"),
                "mount cgroup2 on /sys/fs/cgroup (or the v1 controllers under it)",
            );
        }
    };
    let has_cgroup2 = mountinfo.lines().any(|l| {
        l.split_once(" - ")
            .is_some_and(|(_, a)| a.starts_with("cgroup2 "))
    });
    let (mode, present): (&str, Vec<&str>) = match hierarchy.mode() {
        Mode::V2 => {
            let listed = v2_controllers(hierarchy.root()).unwrap_or_default();
            let listed: Vec<&str> = listed.split_whitespace().collect();
            let present = REQUIRED_CONTROLLERS
                .iter()
                .chain(OPTIONAL_CONTROLLERS)
                .copied()
                .filter(|c| listed.contains(c))
                .collect();
            ("v2", present)
        }
        Mode::V1 => {
            let present = REQUIRED_CONTROLLERS
                .iter()
                .chain(OPTIONAL_CONTROLLERS)
                .copied()
                .filter(|c| hierarchy.mount_of(c).is_some())
                .collect();
            (if has_cgroup2 { "v1 (hybrid)" } else { "v1" }, present)
        }
    };
    let missing: Vec<&str> = REQUIRED_CONTROLLERS
        .iter()
        .copied()
        .filter(|c| !present.contains(c))
        .collect();
    let message = format!("cgroup {mode}, controllers: {}", present.join(" "));
    if missing.is_empty() {
        Check::ok("cgroups", message)
    } else {
        Check::fail(
            "cgroups",
            format!("{message}; missing: {}", missing.join(" ")),
            "enable the missing controllers (kernel config or cgroup_enable= on the kernel command line)",
        )
    }
}

fn overlay(filesystems: &str) -> Check {
    if filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        Check::ok("overlayfs", "overlay is in /proc/filesystems")
    } else {
        Check::fail(
            "overlayfs",
            "overlay is not in /proc/filesystems",
            "modprobe overlay (and add it to /etc/modules-load.d)",
        )
    }
}

fn idmapped_mounts(release: &str) -> Check {
    match kernel_version(release) {
        Some(v) if v >= (5, 12) => Check::ok(
            "idmapped-mounts",
            "kernel >= 5.12, so likely supported (a heuristic: the filesystem must support them too)",
        ),
        _ => Check::warn(
            "idmapped-mounts",
            "kernel older than 5.12 (a heuristic): pods with user namespaces may not start",
            "upgrade the kernel to 5.12+ for user-namespaced pods",
        ),
    }
}

/// Free space on the filesystem of `root_dir` (or of its nearest existing parent), judged against
/// the pull reserve `image.disk_reserve`.
fn disk(root_dir: &Path, reserve: &str) -> Check {
    let reserve = match DiskReserve::parse(reserve) {
        Ok(r) => r,
        Err(e) => {
            return Check::fail(
                "disk",
                format!("image.disk_reserve: {e}"),
                "set image.disk_reserve to a percentage (\"15%\") or a number of bytes",
            );
        }
    };
    let existing = root_dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    match nix::sys::statvfs::statvfs(existing) {
        Ok(s) => {
            let frag = s.fragment_size();
            disk_verdict(
                root_dir,
                reserve,
                s.blocks_available() * frag,
                s.blocks() * frag,
            )
        }
        Err(e) => Check::fail(
            "disk",
            format!("statvfs {}: {e}", existing.display()),
            "check that root_dir is on a mounted filesystem",
        ),
    }
}

/// FAIL below the pull reserve (pulls then fail with ResourceExhausted), WARN within twice the
/// reserve, OK above.
fn disk_verdict(root_dir: &Path, reserve: DiskReserve, free: u64, total: u64) -> Check {
    let reserved = reserve.bytes(total);
    let human = super::super::human_bytes;
    let percent = (free * 100).checked_div(total).unwrap_or(0);
    let message = format!(
        "{} free on {} ({percent}%), pull reserve image.disk_reserve {reserve} = {}",
        human(free),
        root_dir.display(),
        human(reserved)
    );
    let fix = "free space (berth rmi unused images), move root_dir to a larger disk, \
               or lower image.disk_reserve";
    if free < reserved {
        Check::fail(
            "disk",
            format!("{message}: below the reserve, pulls fail with ResourceExhausted"),
            fix,
        )
    } else if free < reserved.saturating_mul(2) {
        Check::warn("disk", format!("{message}: within twice the reserve"), fix)
    } else {
        Check::ok("disk", message)
    }
}

/// A floor for the build time when the build script's stamp is missing: 2026-12-01.
const BUILD_FLOOR_EPOCH: u64 = 1_796_083_200;

/// When this binary's build script ran (or the floor): the clock cannot honestly be earlier.
fn build_time() -> SystemTime {
    let stamp = option_env!("BERTH_BUILD_EPOCH").and_then(|s| s.parse().ok());
    UNIX_EPOCH + Duration::from_secs(stamp.unwrap_or(0).max(BUILD_FLOOR_EPOCH))
}

fn clock(now: SystemTime, built: SystemTime) -> Check {
    let show = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    if now >= built {
        Check::ok(
            "clock",
            format!("{} (after the build, {})", show(now), show(built)),
        )
    } else {
        Check::fail(
            "clock",
            format!(
                "{} is before this binary was built ({})",
                show(now),
                show(built)
            ),
            "set the clock (enable NTP: timedatectl set-ntp true); TLS to registries fails otherwise",
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    use super::super::Status;
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.1.0-28-amd64\n"), Some((6, 1)));
        assert_eq!(kernel_version("5.15.0"), Some((5, 15)));
        assert_eq!(kernel_version("4.19-rc1"), Some((4, 19)));
        assert_eq!(kernel_version("garbage"), None);
        assert_eq!(kernel("6.1.0").status, Status::Ok);
        assert_eq!(kernel("4.19.0").status, Status::Fail);
        assert_eq!(idmapped_mounts("5.11.0").status, Status::Warn);
        assert_eq!(idmapped_mounts("5.12.0").status, Status::Ok);
    }

    const HYBRID: &str = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate
33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";

    #[test]
    fn cgroup_modes_and_controllers() {
        let c = cgroups(HYBRID, |_| None);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(
            c.message
                .starts_with("cgroup v1 (hybrid), controllers: cpu memory pids"),
            "{c:?}"
        );

        let no_pids = HYBRID.replace(
            "35 30 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n",
            "",
        );
        let c = cgroups(&no_pids, |_| None);
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.ends_with("missing: pids"), "{c:?}");

        let v2 = "25 20 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let c = cgroups(v2, |root| {
            assert_eq!(root, Path::new("/sys/fs/cgroup"));
            Some("cpuset cpu io memory pids\n".into())
        });
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert_eq!(
            c.message,
            "cgroup v2, controllers: cpu memory pids cpuset io"
        );
        assert_eq!(cgroups(v2, |_| Some("cpu io".into())).status, Status::Fail);
    }

    #[test]
    fn overlay_in_filesystems() {
        assert_eq!(overlay("nodev\tsysfs\nnodev\toverlay\n").status, Status::Ok);
        assert_eq!(overlay("nodev\tsysfs\n\text4\n").status, Status::Fail);
    }

    #[test]
    fn disk_against_the_pull_reserve() {
        const GIB: u64 = 1 << 30;
        let root = Path::new("/var/lib/berth");
        let pct = |p| DiskReserve::Percent(p);
        // (reserve, free, total, status)
        let table = [
            (pct(15.0), 100 * GIB, 200 * GIB, Status::Ok),
            (pct(15.0), 31 * GIB, 100 * GIB, Status::Ok),
            (pct(15.0), 30 * GIB, 100 * GIB, Status::Ok),
            (pct(15.0), 29 * GIB, 100 * GIB, Status::Warn),
            (pct(15.0), 15 * GIB, 100 * GIB, Status::Warn),
            (pct(15.0), 15 * GIB - 1, 100 * GIB, Status::Fail),
            (pct(15.0), 0, 100 * GIB, Status::Fail),
            (
                DiskReserve::Bytes(10 * GIB),
                25 * GIB,
                1000 * GIB,
                Status::Ok,
            ),
            (
                DiskReserve::Bytes(10 * GIB),
                19 * GIB,
                1000 * GIB,
                Status::Warn,
            ),
            (
                DiskReserve::Bytes(10 * GIB),
                9 * GIB,
                1000 * GIB,
                Status::Fail,
            ),
            (DiskReserve::NONE, 0, 100 * GIB, Status::Ok),
            (pct(15.0), 0, 0, Status::Ok),
        ];
        for (reserve, free, total, status) in table {
            let c = disk_verdict(root, reserve, free, total);
            assert_eq!(c.status, status, "{reserve} {free}/{total}: {c:?}");
            assert!(c.message.contains("image.disk_reserve"), "{c:?}");
            if status == Status::Fail {
                assert!(c.message.contains("ResourceExhausted"), "{c:?}");
                assert!(c.fix.as_deref().unwrap().contains("image.disk_reserve"));
            }
        }
        let c = disk_verdict(root, pct(15.0), 10_000_000_000, 100_000_000_000);
        assert_eq!(
            c.message,
            "10GB free on /var/lib/berth (10%), pull reserve image.disk_reserve 15% = 15GB: \
             below the reserve, pulls fail with ResourceExhausted"
        );
        let c = disk(root, "lots");
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.starts_with("image.disk_reserve: "), "{c:?}");
    }

    #[test]
    fn clock_before_the_build_fails() {
        let built = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            clock(built + Duration::from_secs(1), built).status,
            Status::Ok
        );
        assert_eq!(
            clock(built - Duration::from_secs(86400), built).status,
            Status::Fail
        );
        assert!(build_time() >= UNIX_EPOCH + Duration::from_secs(BUILD_FLOOR_EPOCH));
    }
}
