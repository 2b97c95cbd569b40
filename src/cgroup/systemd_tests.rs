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

/// An idle `sleep` killed and reaped when the test ends, however it ends (on no output pipe).
struct Sleeper(std::process::Child);

impl Sleeper {
    fn spawn() -> Sleeper {
        let child = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Sleeper(child)
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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

/// systemd removes a scope's cgroup as soon as its last process exits, and with it
/// `memory.events`: read after the container's processes are gone, an OOM kill would be lost. A
/// hold keeps the scope (and the count) past every process of the container, a
/// `memory.oom.group` kill included, and systemd collects the scope once it is let go.
#[test]
fn a_held_scope_keeps_its_oom_kill_until_released() {
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::time::Duration;

    require_root();
    let h = Hierarchy::detect().unwrap();
    let id = format!("h{}", std::process::id());
    let slice = format!("berthtest{}h.slice", std::process::id());
    let path = Driver::Systemd.container_path(&slice, &id).unwrap();
    if !(super::systemd::booted() && h.mode() == Mode::V2) {
        // Only a v2 scope is systemd's to remove; nothing else needs a hold.
        let cg = Cgroup::open(&h, &path).unwrap();
        assert_eq!(cg.removed_when_empty(), h.mode() == Mode::V2);
        return;
    }
    let scope = scope_name(&id);
    let dir = h.root().join(path.trim_start_matches('/'));
    let cg = Cgroup::create(&h, &path).unwrap();
    assert!(cg.removed_when_empty());
    assert!(!Cgroup::open(&h, "/berth/x").unwrap().removed_when_empty());

    // The container: a hog that starts on a line of input, and a second process that sleeps.
    let mut hog = Command::new("sh")
        .args(["-c", "read _ && exec tail /dev/zero"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let r = Resources {
        memory_limit: Some(16 << 20),
        memory_swap: Some(16 << 20),
        unified: [("memory.oom.group".to_string(), "1".to_string())].into(),
        ..Resources::default()
    };
    cg.enter(hog.id() as i32, &r).unwrap();
    let mut sibling = Sleeper::spawn();
    cg.add_process(sibling.pid()).unwrap();
    let holder = Sleeper::spawn();
    cg.hold(holder.pid()).unwrap();
    let mut pids = cg.pids().unwrap();
    pids.sort();
    let mut expected = vec![hog.id() as i32, sibling.pid()];
    expected.sort();
    assert_eq!(
        pids, expected,
        "the hold is not among the container's processes"
    );
    assert!(!cg.oom_killed().unwrap());

    hog.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert_eq!(
        hog.wait().unwrap().signal(),
        Some(9),
        "the hog is OOM-killed"
    );
    let sibling_status = sibling.0.wait().unwrap();
    assert_eq!(
        sibling_status.signal(),
        Some(9),
        "memory.oom.group took it too"
    );
    // Time enough for systemd to stop the scope and remove its cgroup, were it empty.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        cg.oom_killed().unwrap(),
        "the OOM kill is still readable after the container's last process"
    );
    assert_eq!(load_state(&scope), "loaded active");
    assert!(dir.exists());

    // Let go: systemd stops the now empty scope and collects it on its own.
    drop(holder);
    wait_gone(&scope);
    assert!(!dir.exists(), "the scope's cgroup is gone");
    cg.delete().unwrap();
    release_parent(Driver::Systemd, &slice).unwrap();
}

/// A pod-level OOM kill (the limit on the pod's slice, as kubelet sets it, none on the
/// container) counts in the container's own `memory.events`, and the hold keeps it readable too.
#[test]
fn a_pod_level_oom_kill_is_the_containers_and_stays_readable() {
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::time::Duration;

    require_root();
    let h = Hierarchy::detect().unwrap();
    if !(super::systemd::booted() && h.mode() == Mode::V2) {
        // The systemd driver is refused there, pod slices and all.
        assert!(check_driver(Driver::Systemd, &h).is_err());
        return;
    }
    let id = format!("p{}", std::process::id());
    let slice = format!("berthtest{}p.slice", std::process::id());
    let path = Driver::Systemd.container_path(&slice, &id).unwrap();
    let cg = Cgroup::create(&h, &path).unwrap();
    super::systemd::set_properties(
        &slice,
        &[
            ("MemoryMax", super::unit_props::Value::U64(16 << 20)),
            ("MemorySwapMax", super::unit_props::Value::U64(0)),
        ],
    )
    .unwrap();
    let mut hog = Command::new("sh")
        .args(["-c", "read _ && exec tail /dev/zero"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    cg.enter(hog.id() as i32, &Resources::default()).unwrap();
    let holder = Sleeper::spawn();
    cg.hold(holder.pid()).unwrap();

    hog.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert_eq!(
        hog.wait().unwrap().signal(),
        Some(9),
        "the hog is OOM-killed"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        cg.oom_killed().unwrap(),
        "the pod's OOM kill is the container's"
    );

    drop(holder);
    wait_gone(&scope_name(&id));
    cg.delete().unwrap();
    release_parent(Driver::Systemd, &slice).unwrap();
}
