//! The cgroup v2 device program: its encoding, its decisions (run in a small interpreter) for the
//! default container policy, CRI devices, deny rules and privileged containers, and, on this
//! host's cgroup2 mount (hybrid or not), the real kernel loading it and enforcing it.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::time::Duration;

use super::device_bpf::{Insn, bytes, program, run};
use super::devices::{ACC_MKNOD, ACC_READ, ACC_WRITE, Checked, DeviceRule};
use super::host_tests::{Scratch, require_root};
use super::*;

const CHAR: u32 = 2;
const BLOCK: u32 = 1;
const RW: u32 = ACC_READ | ACC_WRITE;

fn rule(allow: bool, kind: char, major: Option<i64>, minor: Option<i64>, a: &str) -> DeviceRule {
    DeviceRule {
        allow,
        kind,
        major,
        minor,
        access: a.into(),
    }
}

/// berth's default list for a non-privileged container (src/spec/linux.rs), plus one CRI device
/// granted read-only (block 8:16).
fn default_rules() -> Vec<DeviceRule> {
    let mut rules = vec![
        rule(false, 'a', None, None, "rwm"),
        rule(true, 'c', None, None, "m"),
        rule(true, 'b', None, None, "m"),
    ];
    for (major, minor) in [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(9)),
        (5, Some(2)),
        (136, None),
    ] {
        rules.push(rule(true, 'c', Some(major), minor, "rwm"));
    }
    rules.push(rule(true, 'b', Some(8), Some(16), "r"));
    rules
}

fn compile(rules: &[DeviceRule]) -> Vec<u8> {
    let checked: Vec<Checked> = rules.iter().map(|r| r.check().unwrap()).collect();
    bytes(&program(&checked))
}

#[test]
fn instructions_are_encoded_as_the_kernel_reads_them() {
    let load = Insn {
        code: 0x61,
        dst: 2,
        src: 1,
        off: 8,
        imm: 0,
    };
    assert_eq!(load.encode(), [0x61, 0x12, 8, 0, 0, 0, 0, 0]);
    let jump = Insn {
        code: 0x55,
        dst: 4,
        src: 0,
        off: -2,
        imm: 136,
    };
    assert_eq!(jump.encode(), [0x55, 0x04, 0xfe, 0xff, 136, 0, 0, 0]);
    assert_eq!(Insn::decode(jump.encode()), jump);
}

#[test]
fn the_default_policy_allows_the_standard_devices_and_nothing_else() {
    let code = compile(&default_rules());
    let cases = [
        // (what, type, access, major, minor, allowed)
        ("read /dev/null", CHAR, RW, 1, 3, 1),
        ("read /dev/urandom", CHAR, ACC_READ, 1, 9, 1),
        ("a pts", CHAR, RW, 136, 7, 1),
        ("/dev/ptmx", CHAR, RW, 5, 2, 1),
        ("mknod any char", CHAR, ACC_MKNOD, 10, 200, 1),
        ("mknod any block", BLOCK, ACC_MKNOD, 259, 0, 1),
        ("read the disk", BLOCK, ACC_READ, 259, 0, 0),
        ("write the disk", BLOCK, ACC_WRITE, 8, 0, 0),
        ("/dev/mem", CHAR, ACC_READ, 1, 1, 0),
        ("/dev/kmsg", CHAR, RW, 1, 11, 0),
        ("block 1:3 is not char 1:3", BLOCK, ACC_READ, 1, 3, 0),
        ("the CRI device, read", BLOCK, ACC_READ, 8, 16, 1),
        ("the CRI device, read-write", BLOCK, RW, 8, 16, 0),
        ("the CRI device's neighbour", BLOCK, ACC_READ, 8, 17, 0),
    ];
    for (what, kind, access, major, minor, want) in cases {
        assert_eq!(run(&code, kind, access, major, minor), want, "{what}");
    }
}

#[test]
fn later_rules_override_earlier_ones_and_deny_rules_deny_any_listed_access() {
    let rules = [
        rule(true, 'a', None, None, "rwm"),
        rule(false, 'c', Some(1), Some(3), "w"),
        rule(false, 'b', None, None, "rwm"),
        rule(true, 'b', Some(8), None, "r"),
    ];
    let code = compile(&rules);
    assert_eq!(run(&code, CHAR, ACC_READ, 1, 3), 1);
    assert_eq!(run(&code, CHAR, RW, 1, 3), 0, "write is denied");
    assert_eq!(run(&code, BLOCK, ACC_READ, 259, 0), 0);
    assert_eq!(run(&code, BLOCK, ACC_READ, 8, 2), 1);
    assert_eq!(run(&code, BLOCK, RW, 8, 2), 0);
    assert_eq!(run(&code, CHAR, RW, 4, 1), 1);
}

#[test]
fn privileged_and_empty_policies() {
    let all = compile(&[rule(true, 'a', None, None, "rwm")]);
    assert_eq!(run(&all, BLOCK, RW, 259, 0), 1);
    // A catch-all rule ends the program: nothing before it is compiled.
    assert_eq!(all.len(), (6 + 2) * 8);
    let none = compile(&[]);
    assert_eq!(run(&none, CHAR, ACC_READ, 1, 3), 0);
}

/// A block device node root may open here: the one holding `/`, else (a sandboxed VM may refuse
/// even root that one) the first openable block device in /dev.
fn openable_disk() -> PathBuf {
    let root = std::fs::metadata("/").unwrap().dev();
    let mut nodes: Vec<(bool, PathBuf)> = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter_map(|p| {
            let m = std::fs::symlink_metadata(&p).ok()?;
            m.file_type()
                .is_block_device()
                .then(|| (m.rdev() != root, p))
        })
        .collect();
    nodes.sort();
    nodes
        .into_iter()
        .map(|(_, p)| p)
        .find(|p| std::fs::File::open(p).is_ok())
        .expect("no block device root can open here")
}

/// The kernel verifies and runs the program: in a cgroup of this host's cgroup2 mount (the
/// hybrid host's `unified` one counts: device programs are checked there whatever the v1
/// hierarchies say), reading a disk fails with EPERM, /dev/null works.
#[test]
fn the_kernel_enforces_the_program_on_a_cgroup2_cgroup() {
    require_root();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = info
        .lines()
        .filter(|l| l.contains(" - cgroup2 "))
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .next()
        .expect("no cgroup2 filesystem is mounted");
    let h = Hierarchy::at(&mount, Mode::V2).unwrap();
    let mut s = Scratch::new(&h);
    let cg = Cgroup::create(&h, &s.path("devices")).unwrap();
    cg.apply(&Resources {
        devices: Some(default_rules()),
        ..Resources::default()
    })
    .unwrap();
    let disk = openable_disk();
    let probe = format!(
        "head -c 1 /dev/null && ! head -c 1 {d} 2>/tmp/.berth-devbpf-$$ && grep -q 'not permitted' /tmp/.berth-devbpf-$$; r=$?; rm -f /tmp/.berth-devbpf-$$; exit $r",
        d = disk.display()
    );
    let child = s.spawn_gated(&probe);
    cg.add_process(s.pid(child)).unwrap();
    s.release(child);
    assert_eq!(s.wait(child, Duration::from_secs(5)).code(), Some(0));
    // Outside the cgroup the disk opens: the refusal was the program's.
    let out = std::process::Command::new("head")
        .args(["-c", "1"])
        .arg(&disk)
        .output()
        .unwrap();
    assert!(out.status.success());
}
