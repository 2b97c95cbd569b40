//! cgroup v2 on a temporary directory laid out like `/sys/fs/cgroup`: which file gets which value.
//!
//! As in `v1_tests.rs`, the test makes the control files the kernel would, and the code under
//! test never creates a file.

use std::fs;
use std::path::PathBuf;

use nix::sys::signal::Signal;

use super::*;

/// Control files of a non-root v2 cgroup with every controller enabled.
const LEAF_FILES: &[(&str, &str)] = &[
    ("cgroup.procs", ""),
    ("cgroup.subtree_control", ""),
    ("cgroup.freeze", "0\n"),
    ("cgroup.events", "populated 0\nfrozen 0\n"),
    ("cgroup.kill", ""),
    ("cpu.weight", "100\n"),
    ("cpu.max", "max 100000\n"),
    ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"),
    ("cpuset.cpus", "\n"),
    ("cpuset.mems", "\n"),
    ("memory.max", "max\n"),
    ("memory.swap.max", "max\n"),
    ("memory.high", "max\n"),
    ("memory.current", "0\n"),
    ("memory.stat", "anon 0\ninactive_file 0\n"),
    ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
    ("pids.max", "max\n"),
    ("pids.current", "0\n"),
    ("hugetlb.2MB.max", "max\n"),
    ("hugetlb.1GB.max", "max\n"),
];

const ROOT_CONTROLLERS: &str = "cpuset cpu io memory hugetlb pids\n";

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new(root_controllers: &str, root_enabled: &str) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cgroup.controllers"), root_controllers).unwrap();
        fs::write(dir.path().join("cgroup.subtree_control"), root_enabled).unwrap();
        fs::write(dir.path().join("cgroup.procs"), "1\n").unwrap();
        Fake { dir }
    }

    fn hierarchy(&self) -> Hierarchy {
        Hierarchy::at(self.dir.path(), Mode::V2).unwrap()
    }

    fn populate(&self, rel: &str) {
        let dir = self.path(rel);
        fs::create_dir_all(&dir).unwrap();
        for (name, content) in LEAF_FILES {
            fs::write(dir.join(name), content).unwrap();
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn read(&self, rel: &str, file: &str) -> String {
        let path = self.path(rel).join(file);
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_string()
    }

    fn leaf(&self) -> Cgroup {
        self.populate("c");
        Cgroup::open(&self.hierarchy(), "/c").unwrap()
    }
}

#[test]
fn create_enables_missing_controllers_in_every_ancestor_but_not_the_leaf() {
    let fake = Fake::new(ROOT_CONTROLLERS, "cpu memory\n");
    fake.populate("kubepods");
    fake.populate("kubepods/pod1");
    fs::write(
        fake.path("kubepods/pod1").join("cgroup.subtree_control"),
        "cpu cpuset hugetlb io memory pids\n",
    )
    .unwrap();
    fake.populate("kubepods/pod1/ctr");
    Cgroup::create(&fake.hierarchy(), "/kubepods/pod1/ctr").unwrap();
    assert_eq!(
        fake.read("", "cgroup.subtree_control"),
        "+cpuset +hugetlb +io +pids"
    );
    assert_eq!(
        fake.read("kubepods", "cgroup.subtree_control"),
        "+cpu +cpuset +hugetlb +io +memory +pids"
    );
    assert_eq!(
        fake.read("kubepods/pod1", "cgroup.subtree_control"),
        "cpu cpuset hugetlb io memory pids",
        "a level with everything enabled is not written"
    );
    assert_eq!(fake.read("kubepods/pod1/ctr", "cgroup.subtree_control"), "");
}

#[test]
fn a_failed_create_removes_the_directories_it_made() {
    let fake = Fake::new(ROOT_CONTROLLERS, "");
    fake.populate("kept");
    // A fresh temp directory has no cgroup.subtree_control, unlike a kernel-made one: enabling
    // controllers below "kept/new" fails, and "kept/new" is removed again; "kept" stays.
    let err = Cgroup::create(&fake.hierarchy(), "/kept/new/leaf").unwrap_err();
    assert!(matches!(err, CgroupError::Read { .. }), "{err}");
    assert!(
        err.to_string().contains("kept/new/cgroup.subtree_control"),
        "{err}"
    );
    assert!(!fake.path("kept/new").exists());
    assert!(fake.path("kept").exists());
}

#[test]
fn apply_writes_v2_files() {
    let fake = Fake::new(ROOT_CONTROLLERS, "");
    let cg = fake.leaf();
    let mut r = Resources {
        cpu_shares: Some(1024),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpuset_cpus: Some("0-1".into()),
        cpuset_mems: Some("0".into()),
        memory_limit: Some(32 << 20),
        memory_swap: Some(64 << 20),
        pids_limit: Some(64),
        hugepage_limits: vec![("2MB".into(), 4 << 20)],
        oom_kill_disable: Some(false),
        ..Resources::default()
    };
    r.unified.insert("memory.high".into(), "30000000".into());
    cg.apply(&r).unwrap();
    for (file, want) in [
        ("cpu.weight", "39"),
        ("cpu.max", "50000 100000"),
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
        ("memory.max", "33554432"),
        ("memory.swap.max", "33554432"),
        ("memory.high", "30000000"),
        ("pids.max", "64"),
        ("hugetlb.2MB.max", "4194304"),
        ("hugetlb.1GB.max", "max"),
    ] {
        assert_eq!(fake.read("c", file), want, "{file}");
    }
}

#[test]
fn shares_become_weights() {
    let fake = Fake::new(ROOT_CONTROLLERS, "");
    let cg = fake.leaf();
    for (shares, weight) in [(2, "1"), (512, "20"), (1024, "39"), (262_144, "10000")] {
        let r = Resources {
            cpu_shares: Some(shares),
            ..Resources::default()
        };
        cg.apply(&r).unwrap();
        assert_eq!(fake.read("c", "cpu.weight"), weight, "shares {shares}");
    }
}

#[test]
fn cpu_max_keeps_the_part_not_given() {
    let fake = Fake::new(ROOT_CONTROLLERS, "");
    let cg = fake.leaf();
    let r = |quota, period| Resources {
        cpu_quota: quota,
        cpu_period: period,
        ..Resources::default()
    };
    cg.apply(&r(Some(25_000), None)).unwrap();
    assert_eq!(fake.read("c", "cpu.max"), "25000");
    fs::write(fake.path("c").join("cpu.max"), "max 100000\n").unwrap();
    cg.apply(&r(None, Some(50_000))).unwrap();
    assert_eq!(fake.read("c", "cpu.max"), "max 50000");
    cg.apply(&r(Some(-1), Some(100_000))).unwrap();
    assert_eq!(fake.read("c", "cpu.max"), "max 100000");
}

#[test]
fn swap_rules_on_v2() {
    let fake = Fake::new(ROOT_CONTROLLERS, "");
    let cg = fake.leaf();
    let r = |limit, swap| Resources {
        memory_limit: limit,
        memory_swap: swap,
        ..Resources::default()
    };
    cg.apply(&r(Some(100), Some(-1))).unwrap();
    assert_eq!(fake.read("c", "memory.swap.max"), "max");
    cg.apply(&r(Some(-1), Some(-1))).unwrap();
    assert_eq!(fake.read("c", "memory.max"), "max");
    for bad in [
        r(None, Some(50)),
        r(Some(100), Some(50)),
        r(Some(-1), Some(50)),
    ] {
        let err = cg.apply(&bad).unwrap_err();
        assert!(matches!(err, CgroupError::InvalidResources { .. }), "{err}");
    }
    // Without swap accounting only "no swap" can be honoured.
    fs::remove_file(fake.path("c").join("memory.swap.max")).unwrap();
    cg.apply(&r(Some(4096), Some(4096))).unwrap();
    assert_eq!(fake.read("c", "memory.max"), "4096");
    let err = cg.apply(&r(Some(4096), Some(8192))).unwrap_err();
    assert!(
        matches!(err, CgroupError::MissingController { .. }),
        "{err}"
    );
}

#[test]
fn settings_v2_cannot_express_or_reach_are_errors() {
    let fake = Fake::new(ROOT_CONTROLLERS, "");
    let cg = fake.leaf();
    let err = cg
        .apply(&Resources {
            oom_kill_disable: Some(true),
            ..Resources::default()
        })
        .unwrap_err();
    assert!(matches!(err, CgroupError::Unsupported { .. }), "{err}");

    let mut r = Resources::default();
    r.unified.insert("../escape.max".into(), "1".into());
    let err = cg.apply(&r).unwrap_err();
    assert!(matches!(err, CgroupError::InvalidResources { .. }), "{err}");

    let mut r = Resources::default();
    r.unified.insert("io.max".into(), "8:0 rbps=1".into());
    let err = cg.apply(&r).unwrap_err();
    assert!(
        matches!(err, CgroupError::MissingController { .. }),
        "{err}"
    );
    assert!(!fake.path("c").join("io.max").exists());

    fs::remove_file(fake.path("c").join("memory.max")).unwrap();
    let err = cg
        .apply(&Resources {
            memory_limit: Some(1 << 20),
            ..Resources::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("controller memory"), "{err}");
}

#[test]
fn hugetlb_is_enabled_in_every_ancestor_of_a_scope_that_needs_it() {
    // systemd enabled the controllers it manages; hugetlb is not one of them.
    let fake = Fake::new(ROOT_CONTROLLERS, "cpu memory pids\n");
    fake.populate("kubepods.slice");
    fake.populate("kubepods.slice/kubepods-pod1.slice");
    fake.populate("kubepods.slice/kubepods-pod1.slice/berth-abc.scope");
    fs::write(
        fake.path("kubepods.slice").join("cgroup.subtree_control"),
        "cpu hugetlb\n",
    )
    .unwrap();
    let cg = Cgroup::open(
        &fake.hierarchy(),
        "/kubepods.slice/kubepods-pod1.slice/berth-abc.scope",
    )
    .unwrap();
    v2::enable_hugetlb(&cg, &Resources::default()).unwrap();
    assert_eq!(fake.read("", "cgroup.subtree_control"), "cpu memory pids");
    let r = Resources {
        hugepage_limits: [("2MB".to_string(), 0)].into_iter().collect(),
        ..Default::default()
    };
    v2::enable_hugetlb(&cg, &r).unwrap();
    assert_eq!(fake.read("", "cgroup.subtree_control"), "+hugetlb");
    // Already enabled there: left alone.
    assert_eq!(
        fake.read("kubepods.slice", "cgroup.subtree_control"),
        "cpu hugetlb"
    );
    assert_eq!(
        fake.read(
            "kubepods.slice/kubepods-pod1.slice",
            "cgroup.subtree_control"
        ),
        "+hugetlb"
    );
    assert_eq!(
        fake.read(
            "kubepods.slice/kubepods-pod1.slice/berth-abc.scope",
            "cgroup.subtree_control"
        ),
        ""
    );
}

#[test]
fn hugetlb_limits_are_skipped_when_the_root_offers_no_hugetlb() {
    let fake = Fake::new("cpu memory pids\n", "");
    let cg = fake.leaf();
    cg.apply(&Resources {
        hugepage_limits: vec![("2MB".into(), 0)],
        ..Resources::default()
    })
    .unwrap();
    assert_eq!(fake.read("c", "hugetlb.2MB.max"), "max");
}

#[test]
fn stats_come_from_v2_files() {
    let fake = Fake::new(ROOT_CONTROLLERS, "");
    let cg = fake.leaf();
    let dir = fake.path("c");
    fs::write(dir.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").unwrap();
    fs::write(dir.join("memory.current"), "10000\n").unwrap();
    let stat = "anon 5000\nfile 4000\ninactive_file 3000\npgfault 7\npgmajfault 2\n";
    fs::write(dir.join("memory.stat"), stat).unwrap();
    fs::write(dir.join("pids.current"), "4\n").unwrap();
    assert!(!cg.oom_killed().unwrap());
    let events = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\noom_group_kill 0\n";
    fs::write(dir.join("memory.events"), events).unwrap();

    let stats = cg.stats().unwrap();
    assert_eq!(
        stats.cpu,
        Some(CpuStats {
            usage_ns: 1_500_000
        })
    );
    assert_eq!(
        stats.memory,
        Some(MemoryStats {
            usage_bytes: 10_000,
            working_set_bytes: 7_000,
            rss_bytes: 5_000,
            page_faults: 7,
            major_page_faults: 2,
            oom_kills: 2,
        })
    );
    assert_eq!(stats.pids, Some(PidsStats { current: 4 }));
    assert!(cg.oom_killed().unwrap());

    for f in ["memory.current", "memory.events", "pids.current"] {
        fs::remove_file(dir.join(f)).unwrap();
    }
    let stats = cg.stats().unwrap();
    assert_eq!(stats.memory, None);
    assert_eq!(stats.pids, None);
    assert!(!cg.oom_killed().unwrap());
}

#[test]
fn pressure_comes_from_the_v2_pressure_files() {
    let fake = Fake::new(ROOT_CONTROLLERS, "");
    let cg = fake.leaf();
    let dir = fake.path("c");
    assert_eq!(
        cg.pressure().unwrap(),
        Pressure::default(),
        "no files: unknown"
    );
    let line = |avg10, total| format!("avg10={avg10} avg60=0.00 avg300=0.00 total={total}");
    fs::write(
        dir.join("cpu.pressure"),
        format!("some {}\n", line("2.50", 10)),
    )
    .unwrap();
    let both = format!("some {}\nfull {}\n", line("0.00", 20), line("0.00", 5));
    fs::write(dir.join("memory.pressure"), &both).unwrap();
    fs::write(dir.join("io.pressure"), &both).unwrap();
    let p = cg.pressure().unwrap();
    let cpu = p.cpu.unwrap();
    assert_eq!((cpu.some.avg10_centi, cpu.some.total_us), (250, 10));
    assert_eq!(cpu.full, None);
    assert_eq!(p.memory.unwrap().full.unwrap().total_us, 5);
    assert_eq!(p.io.unwrap().some.total_us, 20);
}

#[test]
fn freeze_waits_for_cgroup_events_and_sigkill_uses_cgroup_kill() {
    let fake = Fake::new(ROOT_CONTROLLERS, "");
    let cg = fake.leaf();
    let dir = fake.path("c");
    fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
    cg.freeze().unwrap();
    assert_eq!(fake.read("c", "cgroup.freeze"), "1");
    fs::write(dir.join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
    cg.thaw().unwrap();
    assert_eq!(fake.read("c", "cgroup.freeze"), "0");

    cg.kill_all(Signal::SIGKILL).unwrap();
    assert_eq!(fake.read("c", "cgroup.kill"), "1");
}

#[test]
fn processes_are_added_and_listed() {
    let fake = Fake::new(ROOT_CONTROLLERS, "");
    let cg = fake.leaf();
    cg.add_process(4242).unwrap();
    assert_eq!(fake.read("c", "cgroup.procs"), "4242");
    assert_eq!(cg.pids().unwrap(), vec![4242]);
}
