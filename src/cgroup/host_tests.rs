//! Real cgroups on this host (as root), in whatever mode [`Hierarchy::detect`] finds: limits
//! checked in the kernel's own files, real processes moved in, OOM-killed, frozen and killed.
//!
//! Each test works under its own `/berth-test-<random>` parent, which a guard kills and removes
//! even when the test fails. These tests fail (never skip) when not run as root.

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::*;

pub(super) fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "cgroup host tests must run as root (CI runs them as root)"
    );
}

/// A unique test parent cgroup plus the processes a test started; both are cleaned up on drop.
pub(super) struct Scratch {
    pub h: Hierarchy,
    pub parent: String,
    children: Vec<Child>,
}

impl Scratch {
    pub fn new(h: &Hierarchy) -> Scratch {
        require_root();
        Scratch {
            h: h.clone(),
            parent: format!("/berth-test-{:016x}", rand::random::<u64>()),
            children: Vec::new(),
        }
    }

    pub fn path(&self, leaf: &str) -> String {
        format!("{}/{leaf}", self.parent)
    }

    /// Starts `sh -c` that waits for a line on stdin before running `script`, so the test can
    /// move it into a cgroup first. Returns its index for [`Scratch::child`].
    pub fn spawn_gated(&mut self, script: &str) -> usize {
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("read go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        self.children.push(child);
        self.children.len() - 1
    }

    pub fn child(&mut self, i: usize) -> &mut Child {
        &mut self.children[i]
    }

    pub fn pid(&self, i: usize) -> i32 {
        i32::try_from(self.children[i].id()).unwrap()
    }

    /// Lets a gated child run its script.
    pub fn release(&mut self, i: usize) {
        let mut stdin = self.children[i]
            .stdin
            .take()
            .expect("child already released");
        stdin.write_all(b"go\n").unwrap();
    }

    /// Waits for a child to exit, failing the test after `limit`.
    pub fn wait(&mut self, i: usize, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.children[i].try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "child {i} still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(cg) = Cgroup::open(&self.h, &self.parent) {
            let _ = cg.kill_all(Signal::SIGKILL);
            let _ = cg.delete();
        }
    }
}

/// Where a controller's file for cgroup `rel` lives on this host.
pub(super) fn kernel_path(h: &Hierarchy, controller: &str, rel: &str, file: &str) -> PathBuf {
    let base = match h.mode() {
        Mode::V1 => h
            .mount_of(controller)
            .expect("controller mounted")
            .to_path_buf(),
        Mode::V2 => h.root().to_path_buf(),
    };
    base.join(rel.trim_start_matches('/')).join(file)
}

pub(super) fn kernel_file(h: &Hierarchy, controller: &str, rel: &str, file: &str) -> String {
    let path = kernel_path(h, controller, rel, file);
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Polls `f` until it is true, failing the test with `what` after five seconds.
pub(super) fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every directory the cgroup has on this host.
fn all_dirs(h: &Hierarchy, rel: &str) -> Vec<PathBuf> {
    let rel = rel.trim_start_matches('/');
    match h.mode() {
        Mode::V1 => h.v1_mount_dirs().iter().map(|m| m.join(rel)).collect(),
        Mode::V2 => vec![h.root().join(rel)],
    }
}

#[test]
fn real_cgroup_limits_a_process_reports_stats_and_is_removed() {
    let h = Hierarchy::detect().unwrap();
    let mut s = Scratch::new(&h);
    let path = s.path("ctr");
    let cg = Cgroup::create(&h, &path).unwrap();
    for dir in all_dirs(&h, &path) {
        assert!(dir.is_dir(), "{} was not created", dir.display());
    }
    cg.apply(&Resources {
        cpu_shares: Some(512),
        cpu_quota: Some(20_000),
        cpu_period: Some(100_000),
        cpuset_cpus: Some("0".into()),
        memory_limit: Some(64 << 20),
        memory_swap: Some(64 << 20),
        pids_limit: Some(16),
        ..Resources::default()
    })
    .unwrap();
    let expected: &[(&str, &str, &str)] = match h.mode() {
        Mode::V1 => &[
            ("cpu", "cpu.shares", "512"),
            ("cpu", "cpu.cfs_quota_us", "20000"),
            ("cpu", "cpu.cfs_period_us", "100000"),
            ("cpuset", "cpuset.cpus", "0"),
            ("memory", "memory.limit_in_bytes", "67108864"),
            ("pids", "pids.max", "16"),
        ],
        Mode::V2 => &[
            ("cpu", "cpu.weight", "20"),
            ("cpu", "cpu.max", "20000 100000"),
            ("cpuset", "cpuset.cpus", "0"),
            ("memory", "memory.max", "67108864"),
            ("pids", "pids.max", "16"),
        ],
    };
    for (controller, file, want) in expected {
        assert_eq!(kernel_file(&h, controller, &path, file), *want, "{file}");
    }
    if h.mode() == Mode::V1 {
        let parent_cpus = kernel_file(&h, "cpuset", &s.parent, "cpuset.cpus");
        assert!(
            !parent_cpus.is_empty(),
            "the new parent cpuset inherited no CPUs"
        );
    }

    let child = s.spawn_gated("exec sleep 30");
    let pid = s.pid(child);
    cg.add_process(pid).unwrap();
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    s.release(child);
    eventually("memory and CPU to be charged to the cgroup", || {
        let stats = cg.stats().unwrap();
        let mem = stats.memory.expect("memory stats");
        let cpu = stats.cpu.expect("cpu stats");
        mem.usage_bytes > 0 && mem.working_set_bytes <= mem.usage_bytes && cpu.usage_ns > 0
    });
    let stats = cg.stats().unwrap();
    assert_eq!(stats.pids.expect("pids stats").current, 1);
    assert!(!cg.oom_killed().unwrap());

    cg.kill_all(Signal::SIGKILL).unwrap();
    let status = s.wait(child, Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    cg.delete().unwrap();
    for dir in all_dirs(&h, &path) {
        assert!(!dir.exists(), "{} still exists", dir.display());
    }
    cg.delete().unwrap();
}

#[test]
fn real_memory_hog_is_oom_killed_and_reported() {
    let h = Hierarchy::detect().unwrap();
    let mut s = Scratch::new(&h);
    let cg = Cgroup::create(&h, &s.path("hog")).unwrap();
    cg.apply(&Resources {
        memory_limit: Some(32 << 20),
        memory_swap: Some(32 << 20),
        ..Resources::default()
    })
    .unwrap();
    let hog = s.spawn_gated("x=$(head -c 200M /dev/zero | tr '\\0' a); exit 0");
    cg.add_process(s.pid(hog)).unwrap();
    assert!(!cg.oom_killed().unwrap());
    s.release(hog);
    let status = s.wait(hog, Duration::from_secs(60));
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "hog ended with {status}"
    );
    assert!(cg.oom_killed().unwrap());
    let oom_kills = cg.stats().unwrap().memory.expect("memory stats").oom_kills;
    assert!(oom_kills >= 1, "oom_kills {oom_kills}");
}

#[test]
fn real_pids_limit_stops_fork() {
    let h = Hierarchy::detect().unwrap();
    let mut s = Scratch::new(&h);
    let cg = Cgroup::create(&h, &s.path("pids")).unwrap();
    cg.apply(&Resources {
        pids_limit: Some(1),
        ..Resources::default()
    })
    .unwrap();
    let child = s.spawn_gated("/bin/true && exit 0; exit 9");
    cg.add_process(s.pid(child)).unwrap();
    s.release(child);
    let status = s.wait(child, Duration::from_secs(10));
    // dash reports a failed fork with exit status 2; it must not have run /bin/true.
    assert_ne!(
        status.code(),
        Some(0),
        "fork succeeded under pids.max 1: {status}"
    );
    assert!(status.code().is_some(), "{status}");
}

#[test]
fn real_frozen_cgroup_does_not_run_until_thawed() {
    let h = Hierarchy::detect().unwrap();
    let mut s = Scratch::new(&h);
    let cg = Cgroup::create(&h, &s.path("frz")).unwrap();
    let child = s.spawn_gated("exit 3");
    cg.add_process(s.pid(child)).unwrap();
    cg.freeze().unwrap();
    s.release(child);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.child(child).try_wait().unwrap().is_none(),
        "ran while frozen"
    );
    cg.thaw().unwrap();
    assert_eq!(s.wait(child, Duration::from_secs(5)).code(), Some(3));
}

#[test]
fn real_delete_refuses_while_a_process_lives_then_succeeds() {
    let h = Hierarchy::detect().unwrap();
    let mut s = Scratch::new(&h);
    let path = s.path("busy");
    let cg = Cgroup::create(&h, &path).unwrap();
    let child = s.spawn_gated("exec sleep 30");
    cg.add_process(s.pid(child)).unwrap();
    let err = cg.delete().unwrap_err();
    assert!(matches!(err, CgroupError::Remove { .. }), "{err}");
    assert!(all_dirs(&h, &path).iter().any(|d| d.exists()));

    cg.kill_all(Signal::SIGKILL).unwrap();
    s.wait(child, Duration::from_secs(5));
    cg.delete().unwrap();
    assert!(all_dirs(&h, &path).iter().all(|d| !d.exists()));
    // The parent goes too, with anything left below it.
    Cgroup::open(&h, &s.parent).unwrap().delete().unwrap();
    assert!(all_dirs(&h, &s.parent).iter().all(|d| !d.exists()));
}
