//! Exploit-style checks: a container running a hostile script with the default security
//! context (what kubelet sends for a plain pod) cannot see host processes or mounts, cannot
//! read host files through /proc, `..` or symlinks in a volume, cannot mount, unshare, load
//! modules, open devices or write /sys and /proc/sys, and sees the masked paths masked. Each
//! probe prints `name=ok` when the attack failed. Root; local registry.

mod common;

use berth::cri::api;
use common::pods::*;

/// Every probe: the attack, run so that its failure prints `<name>=ok`.
const PROBES: &[(&str, &str)] = &[
    // No host process is visible: the pod's PID namespace holds its own few processes only.
    ("few-processes", "[ $(ls -d /proc/[0-9]* | wc -l) -lt 10 ]"),
    // (Neither the pattern nor the probe names match themselves: this script is visible too.)
    (
        "no-daemon",
        "! cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -q 'berth[d]'",
    ),
    // No host mount (the daemon's state dir, /work, /home) is mounted in the container. (A
    // bind's source path does show in mountinfo's root field, as under runc.)
    (
        "no-host-mounts",
        "! awk '{print $5}' /proc/self/mountinfo | grep -q -e \"^$STATE\" -e '^/work' -e '^/home'",
    ),
    // Host files: through other processes' roots, `..`, and symlinks planted in a volume.
    (
        "proc-root",
        "! cat /proc/[0-9]*/root\"$SECRET\" 2>/dev/null | grep -q secret",
    ),
    (
        "dot-dot",
        "! cat ../../../../../..\"$SECRET\" 2>/dev/null | grep -q secret",
    ),
    ("abs-symlink", "! cat /vol/abs 2>/dev/null | grep -q secret"),
    ("rel-symlink", "! cat /vol/rel 2>/dev/null | grep -q secret"),
    (
        "pause-environ",
        "! cat /proc/1/environ >/dev/null 2>&1 || [ \"$(cat /proc/1/cmdline)\" = sh ]",
    ),
    // Privileged operations.
    ("mount", "! mount -t tmpfs none /mnt 2>/dev/null"),
    (
        "remount-proc",
        "! mount -o remount,rw /proc/sys 2>/dev/null",
    ),
    ("unshare-mount", "! unshare -m true 2>/dev/null"),
    // CAP_SYS_MODULE is out of the bounding set, and loading fails.
    (
        "modules",
        "head -c 64 /dev/zero > /tmp/m.ko; ! insmod /tmp/m.ko 2>/dev/null && \
                 [ $(( 0x$(grep CapBnd /proc/self/status | cut -f2) & 0x10000 )) -eq 0 ]",
    ),
    (
        "block-device",
        "mknod /tmp/sda b 8 0 && ! head -c 1 /tmp/sda >/dev/null 2>&1",
    ),
    ("hostname", "! hostname evil 2>/dev/null"),
    (
        "set-time",
        "date -s 2000-01-01 >/dev/null 2>&1; [ $(date +%Y) != 2000 ]",
    ),
    // Kernel knobs are read-only.
    ("proc-sys", "! echo 1 2>/dev/null > /proc/sys/kernel/sysrq"),
    (
        "sysrq-trigger",
        "! echo h 2>/dev/null > /proc/sysrq-trigger",
    ),
    (
        "sys",
        "! echo 1 2>/dev/null > /sys/kernel/uevent_helper && ! touch /sys/x 2>/dev/null",
    ),
    (
        "cgroupfs",
        "! mkdir /sys/fs/cgroup/evil 2>/dev/null && ! mkdir /sys/fs/cgroup/memory/evil 2>/dev/null",
    ),
    // Masked paths read as empty.
    (
        "kcore",
        "[ ! -s /proc/kcore ] && [ -z \"$(head -c 1 /proc/kcore 2>/dev/null)\" ]",
    ),
    ("keys", "[ -z \"$(cat /proc/keys 2>/dev/null)\" ]"),
    ("firmware", "[ -z \"$(ls /sys/firmware)\" ]"),
];

#[tokio::test]
async fn a_hostile_container_stays_inside() {
    let mut f = fixture("hostile", "library/busybox:latest").await;
    // A secret on the host, outside every rootfs and volume, and a volume whose symlinks
    // point at it (absolute, and relative climbing out).
    let host = tempfile::tempdir().unwrap();
    let secret = host.path().join("secret");
    std::fs::write(&secret, "secret\n").unwrap();
    let volume = host.path().join("volume");
    std::fs::create_dir(&volume).unwrap();
    std::os::unix::fs::symlink(&secret, volume.join("abs")).unwrap();
    let climb = format!("../../../../../../..{}", secret.display());
    std::os::unix::fs::symlink(&climb, volume.join("rel")).unwrap();
    assert_eq!(
        std::fs::read_to_string(volume.join("abs")).unwrap(),
        "secret\n"
    );

    let mut script = String::new();
    for (name, probe) in PROBES {
        script.push_str(&format!(
            "if {probe}; then echo {name}=ok; else echo {name}=BROKEN; fi\n"
        ));
    }
    let mut config = container_config("hostile", &f.image, &["sleep", "1000"]);
    config.mounts = vec![api::Mount {
        container_path: "/vol".into(),
        host_path: volume.display().to_string(),
        ..Default::default()
    }];
    config.envs = vec![
        api::KeyValue {
            key: "SECRET".into(),
            value: secret.display().to_string().into(),
        },
        api::KeyValue {
            key: "STATE".into(),
            value: f.daemon.dir.path().display().to_string().into(),
        },
    ];
    let id = start_container(&mut f.cri, &f.pod, config).await;
    let out = exec(&mut f.cri, &id, &["sh", "-c", &script], 30)
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let broken: Vec<&str> = stdout.lines().filter(|l| !l.ends_with("=ok")).collect();
    assert!(
        broken.is_empty(),
        "escapes: {broken:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), PROBES.len(), "{stdout}");
    remove_pod(&mut f.cri, &f.pod.id).await;
}
