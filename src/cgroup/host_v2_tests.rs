//! Real cgroup v2 on this host's cgroup2 mount, whichever mode the host is driven in.
//!
//! On a hybrid host that mount (`/sys/fs/cgroup/unified`) has no cpu, memory or pids controller,
//! so limits for those cannot be exercised here; what v2 offers regardless is: directories,
//! `cgroup.subtree_control`, `cgroup.procs`, `cgroup.freeze`, `cgroup.kill`, `cpu.stat`, and
//! whichever controllers (often hugetlb) no v1 hierarchy claimed. The test exercises those and
//! checks the rest against what the mount really offers. It fails when no cgroup2 is mounted.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::host_tests::{Scratch, eventually, kernel_file, require_root};
use super::*;

fn cgroup2_mount() -> PathBuf {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter(|l| l.contains(" - cgroup2 "))
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .next()
        .expect("no cgroup2 filesystem is mounted; the v2 host test cannot run")
}

fn words(path: &Path) -> BTreeSet<String> {
    let content = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    content.split_whitespace().map(str::to_string).collect()
}

/// Turns off, at the root, controllers the test enabled there, when the cgroup2 mount is a side
/// mount (hybrid host) that nothing else on the host uses. Runs after [`Scratch`] is dropped.
struct RestoreRoot {
    root: PathBuf,
    before: BTreeSet<String>,
}

impl Drop for RestoreRoot {
    fn drop(&mut self) {
        let side_mount = Hierarchy::detect().is_ok_and(|h| h.mode() == Mode::V1);
        if !side_mount {
            return;
        }
        let control = self.root.join("cgroup.subtree_control");
        for c in words(&control).difference(&self.before) {
            let _ = fs::write(&control, format!("-{c}"));
        }
    }
}

#[test]
fn real_v2_lifecycle_on_the_cgroup2_mount() {
    require_root();
    let root = cgroup2_mount();
    let h = Hierarchy::at(&root, Mode::V2).unwrap();
    let offered = words(&root.join("cgroup.controllers"));
    let _restore = RestoreRoot {
        root: root.clone(),
        before: words(&root.join("cgroup.subtree_control")),
    };
    let mut s = Scratch::new(&h);
    let path = s.path("ctr");
    let cg = Cgroup::create(&h, &path).unwrap();
    let dir = root.join(path.trim_start_matches('/'));
    assert!(dir.is_dir());
    let parent_dir = root.join(s.parent.trim_start_matches('/'));
    for level in [&root, &parent_dir] {
        let enabled = words(&level.join("cgroup.subtree_control"));
        assert!(
            offered.is_subset(&enabled),
            "{}: enabled {enabled:?}, offered {offered:?}",
            level.display()
        );
    }

    let two_mb = Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists();
    if offered.contains("hugetlb") && two_mb {
        cg.apply(&Resources {
            hugepage_limits: vec![("2MB".into(), 4 << 20)],
            ..Resources::default()
        })
        .unwrap();
        assert_eq!(
            kernel_file(&h, "hugetlb", &path, "hugetlb.2MB.max"),
            "4194304"
        );
    }
    let memory = Resources {
        memory_limit: Some(64 << 20),
        ..Resources::default()
    };
    if offered.contains("memory") {
        cg.apply(&memory).unwrap();
        assert_eq!(kernel_file(&h, "memory", &path, "memory.max"), "67108864");
    } else {
        let err = cg.apply(&memory).unwrap_err();
        assert!(
            matches!(err, CgroupError::MissingController { .. }),
            "{err}"
        );
    }

    // Freezing holds a released process until the thaw.
    let gated = s.spawn_gated("exit 5");
    let pid = s.pid(gated);
    cg.add_process(pid).unwrap();
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    cg.freeze().unwrap();
    assert!(kernel_file(&h, "", &path, "cgroup.events").contains("frozen 1"));
    s.release(gated);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        s.child(gated).try_wait().unwrap().is_none(),
        "ran while frozen"
    );
    cg.thaw().unwrap();
    assert_eq!(s.wait(gated, Duration::from_secs(5)).code(), Some(5));

    // CPU time is charged, and SIGKILL goes through cgroup.kill.
    let sleeper = s.spawn_gated("exec sleep 30");
    cg.add_process(s.pid(sleeper)).unwrap();
    s.release(sleeper);
    eventually("cpu.stat usage", || {
        cg.stats().unwrap().cpu.is_some_and(|c| c.usage_ns > 0)
    });
    assert!(
        dir.join("cgroup.kill").exists(),
        "kernel without cgroup.kill"
    );
    cg.kill_all(Signal::SIGKILL).unwrap();
    let status = s.wait(sleeper, Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    cg.delete().unwrap();
    assert!(!dir.exists());
    drop(s);
    assert!(
        !parent_dir.exists(),
        "the scratch guard left its parent behind"
    );
}
