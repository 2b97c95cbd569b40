//! The systemd driver against the real systemd: a slice and a delegated scope made over D-Bus,
//! limits through unit properties and the delegated files, then nothing left behind. Runs where
//! systemd is PID 1 on cgroup v2 (the e2e/vm guest); elsewhere it checks the driver is refused.

use std::fs;
use std::process::{Command, Stdio};

use super::host_tests::require_root;
use super::*;

fn load_state(unit: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", "LoadState,ActiveState", "--value", unit])
        .output()
        .expect("run systemctl");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits (10 s at most) until systemd has collected `unit`: a stopped unit stays loaded until
/// systemd's next garbage collection.
fn wait_gone(unit: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while load_state(unit) != "not-found inactive" {
        assert!(
            std::time::Instant::now() < deadline,
            "{unit} is still {}",
            load_state(unit)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn systemd_driver_makes_limits_and_removes_units() {
    require_root();
    let h = Hierarchy::detect().unwrap();
    if !(super::systemd::booted() && h.mode() == Mode::V2) {
        let err = check_driver(Driver::Systemd, &h).unwrap_err();
        assert!(matches!(err, CgroupError::Unsupported { .. }), "{err}");
        return;
    }
    check_driver(Driver::Systemd, &h).unwrap();
    let slice = format!("berthtest{}.slice", std::process::id());
    let id = format!("t{}", std::process::id());
    let path = Driver::Systemd.container_path(&slice, &id).unwrap();
    let scope = scope_name(&id);
    let dir = h.root().join(path.trim_start_matches('/'));

    let cg = Cgroup::create(&h, &path).unwrap();
    assert!(!dir.exists(), "a scope starts with its first process");
    assert_eq!(load_state(&slice), "loaded active");
    let mut child = Command::new("sleep")
        .arg("100")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let r = Resources {
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        memory_limit: Some(64 << 20),
        pids_limit: Some(50),
        unified: [("memory.oom.group".to_string(), "1".to_string())].into(),
        devices: Some(vec![DeviceRule {
            allow: false,
            kind: 'a',
            major: None,
            minor: None,
            access: "rwm".into(),
        }]),
        ..Resources::default()
    };
    cg.apply_new(&r).unwrap();
    cg.enter(pid, &r).unwrap();
    let file = |name: &str| {
        fs::read_to_string(dir.join(name))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(load_state(&scope), "loaded active");
    assert_eq!(cg.pids().unwrap(), vec![pid]);
    let membership = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(membership.trim(), format!("0::{path}"));
    assert_eq!(file("memory.max"), (64u64 << 20).to_string());
    assert_eq!(file("pids.max"), "50");
    assert_eq!(file("cpu.max"), "50000 100000");
    assert_eq!(file("cpu.weight"), shares_to_weight(512).to_string());
    assert_eq!(file("memory.oom.group"), "1");

    // An update: systemd re-applies the unit's settings; berth's own files stay.
    cg.apply(&Resources {
        memory_limit: Some(32 << 20),
        ..Resources::default()
    })
    .unwrap();
    assert_eq!(file("memory.max"), (32u64 << 20).to_string());
    assert_eq!(file("memory.oom.group"), "1");
    assert_eq!(file("pids.max"), "50");

    cg.kill_all(nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    cg.delete().unwrap();
    assert!(!dir.exists(), "the scope's cgroup is gone");
    wait_gone(&scope);
    release_parent(Driver::Systemd, &slice).unwrap();
    // A slice name always loads (slices need no unit file): stopped is what counts.
    assert!(
        load_state(&slice).ends_with(" inactive"),
        "{}",
        load_state(&slice)
    );
    assert!(!h.root().join(&slice).exists());
}
