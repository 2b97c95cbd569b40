//! cgroup v1 on a temporary directory laid out like `/sys/fs/cgroup`: which file gets which value.
//!
//! cgroupfs creates a new directory's control files itself; here the test makes them (with the
//! kernel's empty or default contents) before the code under test runs, and the code never
//! creates a file, so a write to a file the kernel would not have fails here too.

use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use super::*;

/// Control files a kernel puts in a new cgroup directory, per controller.
fn kernel_files(controller: &str) -> &'static [(&'static str, &'static str)] {
    match controller {
        "cpu" => &[
            ("cpu.shares", "1024\n"),
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.cfs_period_us", "100000\n"),
        ],
        "cpuacct" => &[("cpuacct.usage", "0\n")],
        "cpuset" => &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
        "memory" => &[
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ),
            ("memory.usage_in_bytes", "0\n"),
            ("memory.stat", "rss 0\ntotal_rss 0\n"),
        ],
        "pids" => &[("pids.max", "max\n"), ("pids.current", "0\n")],
        "hugetlb" => &[
            ("hugetlb.2MB.limit_in_bytes", "9223372036854771712\n"),
            ("hugetlb.1GB.limit_in_bytes", "9223372036854771712\n"),
        ],
        "freezer" => &[("freezer.state", "THAWED\n")],
        _ => &[],
    }
}

struct Fake {
    dir: tempfile::TempDir,
    controllers: Vec<&'static str>,
}

impl Fake {
    /// A v1 root with one hierarchy per controller; the cpuset root owns CPUs 0-3 and node 0.
    fn new(controllers: &[&'static str]) -> Fake {
        let fake = Fake {
            dir: tempfile::tempdir().unwrap(),
            controllers: controllers.to_vec(),
        };
        for c in controllers {
            fake.populate(c, "");
        }
        if controllers.contains(&"cpuset") {
            fs::write(fake.file("cpuset", "", "cpuset.cpus"), "0-3\n").unwrap();
            fs::write(fake.file("cpuset", "", "cpuset.mems"), "0\n").unwrap();
        }
        fake
    }

    fn hierarchy(&self) -> Hierarchy {
        Hierarchy::at(self.dir.path(), Mode::V1).unwrap()
    }

    /// Makes `rel` in a controller's hierarchy as the kernel would: the directory, `cgroup.procs`
    /// and the controller's files.
    fn populate(&self, controller: &str, rel: &str) {
        let dir = self.path(controller, rel);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cgroup.procs"), "").unwrap();
        for (name, content) in kernel_files(controller) {
            fs::write(dir.join(name), content).unwrap();
        }
    }

    /// `populate` in every hierarchy.
    fn populate_all(&self, rel: &str) {
        for c in &self.controllers {
            self.populate(c, rel);
        }
    }

    fn path(&self, controller: &str, rel: &str) -> PathBuf {
        let name = if controller == "name=systemd" {
            "systemd"
        } else {
            controller
        };
        self.dir.path().join(name).join(rel.trim_start_matches('/'))
    }

    fn file(&self, controller: &str, rel: &str, file: &str) -> PathBuf {
        self.path(controller, rel).join(file)
    }

    fn read(&self, controller: &str, rel: &str, file: &str) -> String {
        let path = self.file(controller, rel, file);
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .to_string()
    }
}

const ALL: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "pids", "hugetlb", "freezer",
];

fn exists(p: &Path) -> bool {
    p.exists()
}

#[test]
fn create_makes_the_path_in_every_hierarchy_and_delete_removes_it() {
    let fake = Fake::new(&["memory", "pids", "devices"]);
    fs::create_dir(fake.dir.path().join("systemd")).unwrap();
    let cg = Cgroup::create(&fake.hierarchy(), "/kubepods/besteffort/pod1/ctr").unwrap();
    assert_eq!(cg.path(), "/kubepods/besteffort/pod1/ctr");
    for c in ["memory", "pids", "devices", "name=systemd"] {
        assert!(exists(&fake.path(c, "kubepods/besteffort/pod1/ctr")), "{c}");
    }
    cg.delete().unwrap();
    for c in ["memory", "pids", "devices", "name=systemd"] {
        assert!(
            !exists(&fake.path(c, "kubepods/besteffort/pod1/ctr")),
            "{c}"
        );
        assert!(
            exists(&fake.path(c, "kubepods/besteffort/pod1")),
            "{c} parent stays"
        );
    }
}

#[test]
fn new_cpuset_levels_inherit_cpus_and_mems_from_their_parent() {
    let fake = Fake::new(&["cpuset"]);
    fake.populate_all("kubepods");
    fs::write(fake.file("cpuset", "kubepods", "cpuset.cpus"), "1\n").unwrap();
    fake.populate_all("kubepods/pod1");
    fake.populate_all("kubepods/pod1/ctr");
    Cgroup::create(&fake.hierarchy(), "/kubepods/pod1/ctr").unwrap();
    assert_eq!(
        fake.read("cpuset", "kubepods", "cpuset.cpus"),
        "1",
        "set levels stay"
    );
    assert_eq!(fake.read("cpuset", "kubepods", "cpuset.mems"), "0");
    for rel in ["kubepods/pod1", "kubepods/pod1/ctr"] {
        assert_eq!(fake.read("cpuset", rel, "cpuset.cpus"), "1", "{rel}");
        assert_eq!(fake.read("cpuset", rel, "cpuset.mems"), "0", "{rel}");
    }
}

#[test]
fn apply_writes_v1_files() {
    let fake = Fake::new(ALL);
    fake.populate_all("pod/ctr");
    let cg = Cgroup::open(&fake.hierarchy(), "/pod/ctr").unwrap();
    cg.apply(&Resources {
        cpu_shares: Some(512),
        cpu_quota: Some(25_000),
        cpu_period: Some(50_000),
        cpuset_cpus: Some("0-1".into()),
        cpuset_mems: Some("0".into()),
        memory_limit: Some(32 << 20),
        memory_swap: Some(64 << 20),
        pids_limit: Some(64),
        hugepage_limits: vec![("2MB".into(), 4 << 20), ("1GB".into(), 0)],
        oom_kill_disable: Some(true),
        ..Resources::default()
    })
    .unwrap();
    for (controller, file, want) in [
        ("cpu", "cpu.shares", "512"),
        ("cpu", "cpu.cfs_quota_us", "25000"),
        ("cpu", "cpu.cfs_period_us", "50000"),
        ("cpuset", "cpuset.cpus", "0-1"),
        ("cpuset", "cpuset.mems", "0"),
        ("memory", "memory.limit_in_bytes", "33554432"),
        ("memory", "memory.memsw.limit_in_bytes", "67108864"),
        ("memory", "memory.oom_control", "1"),
        ("pids", "pids.max", "64"),
        ("hugetlb", "hugetlb.2MB.limit_in_bytes", "4194304"),
        ("hugetlb", "hugetlb.1GB.limit_in_bytes", "0"),
    ] {
        assert_eq!(fake.read(controller, "pod/ctr", file), want, "{file}");
    }
}

#[test]
fn unlimited_and_unset_values() {
    let fake = Fake::new(ALL);
    fake.populate_all("c");
    let cg = Cgroup::open(&fake.hierarchy(), "/c").unwrap();
    cg.apply(&Resources {
        cpu_shares: Some(0),
        cpu_quota: Some(-1),
        memory_limit: Some(-1),
        memory_swap: Some(-1),
        pids_limit: Some(0),
        ..Resources::default()
    })
    .unwrap();
    assert_eq!(
        fake.read("cpu", "c", "cpu.shares"),
        "1024",
        "0 shares is unset"
    );
    assert_eq!(fake.read("cpu", "c", "cpu.cfs_quota_us"), "-1");
    assert_eq!(fake.read("cpu", "c", "cpu.cfs_period_us"), "100000");
    assert_eq!(fake.read("memory", "c", "memory.limit_in_bytes"), "-1");
    assert_eq!(
        fake.read("memory", "c", "memory.memsw.limit_in_bytes"),
        "-1"
    );
    assert_eq!(fake.read("pids", "c", "pids.max"), "max");
}

#[test]
fn unified_keys_are_rejected_on_v1_before_anything_is_written() {
    let fake = Fake::new(ALL);
    fake.populate_all("c");
    let cg = Cgroup::open(&fake.hierarchy(), "/c").unwrap();
    let mut r = Resources {
        cpu_shares: Some(2),
        ..Resources::default()
    };
    r.unified.insert("memory.high".into(), "1000".into());
    let err = cg.apply(&r).unwrap_err();
    assert!(matches!(err, CgroupError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("memory.high"), "{err}");
    assert_eq!(fake.read("cpu", "c", "cpu.shares"), "1024");
}

#[test]
fn swap_rules_on_v1() {
    let fake = Fake::new(&["memory"]);
    fake.populate_all("c");
    let cg = Cgroup::open(&fake.hierarchy(), "/c").unwrap();
    let r = |limit, swap| Resources {
        memory_limit: limit,
        memory_swap: swap,
        ..Resources::default()
    };
    let err = cg.apply(&r(Some(100), Some(50))).unwrap_err();
    assert!(matches!(err, CgroupError::InvalidResources { .. }), "{err}");

    // Without swap accounting: swap == limit is honoured as "no swap"; more is refused.
    fs::remove_file(fake.file("memory", "c", "memory.memsw.limit_in_bytes")).unwrap();
    cg.apply(&r(Some(4096), Some(4096))).unwrap();
    assert_eq!(fake.read("memory", "c", "memory.limit_in_bytes"), "4096");
    assert!(!exists(&fake.file(
        "memory",
        "c",
        "memory.memsw.limit_in_bytes"
    )));
    let err = cg.apply(&r(Some(4096), Some(8192))).unwrap_err();
    assert!(
        matches!(err, CgroupError::MissingController { .. }),
        "{err}"
    );
}

#[test]
fn limits_need_their_controller_except_hugetlb() {
    let fake = Fake::new(&["memory"]);
    fake.populate_all("c");
    let cg = Cgroup::open(&fake.hierarchy(), "/c").unwrap();
    let err = cg
        .apply(&Resources {
            pids_limit: Some(5),
            ..Resources::default()
        })
        .unwrap_err();
    assert!(
        matches!(&err, CgroupError::MissingController { controller, .. } if controller == "pids"),
        "{err}"
    );
    cg.apply(&Resources {
        hugepage_limits: vec![("2MB".into(), 0)],
        ..Resources::default()
    })
    .unwrap();
    let err = cg
        .apply(&Resources {
            hugepage_limits: vec![("../../x".into(), 0)],
            ..Resources::default()
        })
        .unwrap_err();
    assert!(matches!(err, CgroupError::InvalidResources { .. }), "{err}");
}

#[test]
fn stats_come_from_v1_files() {
    let fake = Fake::new(ALL);
    fake.populate_all("c");
    fs::write(fake.file("cpuacct", "c", "cpuacct.usage"), "123456\n").unwrap();
    fs::write(fake.file("memory", "c", "memory.usage_in_bytes"), "10000\n").unwrap();
    let stat = "rss 1\ninactive_file 1\npgfault 1\npgmajfault 1\ntotal_rss 5000\n\
                total_inactive_file 3000\ntotal_pgfault 7\ntotal_pgmajfault 2\n";
    fs::write(fake.file("memory", "c", "memory.stat"), stat).unwrap();
    fs::write(fake.file("pids", "c", "pids.current"), "3\n").unwrap();
    let cg = Cgroup::open(&fake.hierarchy(), "/c").unwrap();
    assert!(!cg.oom_killed().unwrap());

    let control = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
    fs::write(fake.file("memory", "c", "memory.oom_control"), control).unwrap();
    let stats = cg.stats().unwrap();
    assert_eq!(stats.cpu, Some(CpuStats { usage_ns: 123_456 }));
    assert_eq!(
        stats.memory,
        Some(MemoryStats {
            usage_bytes: 10_000,
            working_set_bytes: 7_000,
            rss_bytes: 5_000,
            page_faults: 7,
            major_page_faults: 2,
            oom_kills: 1,
        })
    );
    assert_eq!(stats.pids, Some(PidsStats { current: 3 }));
    assert!(cg.oom_killed().unwrap());
}

#[test]
fn stats_sections_are_absent_without_their_hierarchy() {
    let fake = Fake::new(&["pids"]);
    fake.populate_all("c");
    let stats = Cgroup::open(&fake.hierarchy(), "/c")
        .unwrap()
        .stats()
        .unwrap();
    assert_eq!(stats.cpu, None);
    assert_eq!(stats.memory, None);
    assert_eq!(stats.pids, Some(PidsStats { current: 0 }));
    // v1 has no pressure files: unknown, never zero.
    let fake = Fake::new(ALL);
    fake.populate_all("c");
    let cg = Cgroup::open(&fake.hierarchy(), "/c").unwrap();
    assert_eq!(cg.pressure().unwrap(), Pressure::default());
}

#[test]
fn processes_are_added_to_every_hierarchy_and_listed() {
    let fake = Fake::new(&["memory", "pids", "freezer"]);
    fake.populate_all("c");
    let cg = Cgroup::open(&fake.hierarchy(), "/c").unwrap();
    cg.add_process(4242).unwrap();
    for c in ["memory", "pids", "freezer"] {
        assert_eq!(fake.read(c, "c", "cgroup.procs"), "4242", "{c}");
    }
    assert_eq!(cg.pids().unwrap(), vec![4242]);
}

#[test]
fn freeze_and_thaw_write_freezer_state() {
    let fake = Fake::new(&["freezer"]);
    fake.populate_all("c");
    let cg = Cgroup::open(&fake.hierarchy(), "/c").unwrap();
    cg.freeze().unwrap();
    assert_eq!(fake.read("freezer", "c", "freezer.state"), "FROZEN");
    cg.thaw().unwrap();
    assert_eq!(fake.read("freezer", "c", "freezer.state"), "THAWED");
    // Signalling an empty cgroup freezes and thaws around nothing.
    cg.kill_all(Signal::SIGTERM).unwrap();
    assert_eq!(fake.read("freezer", "c", "freezer.state"), "THAWED");
}
