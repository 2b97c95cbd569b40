//! Exploit-style checks: a container running a hostile script with the default security
//! context (what kubelet sends for a plain pod) cannot see host processes or mounts, cannot
//! read host files through /proc, `..` or symlinks in a volume, cannot mount, unshare, load
//! modules, open devices or write /sys and /proc/sys, and sees the masked paths masked. Each
//! probe prints `name=ok` when the attack failed. Root; local registry.

mod common;

use berth::cri::api;
use common::node_image::{push_node_image, root_disk, root_disk_node};
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
    // The node's root disk (major:minor from the host, see `root_disk`): the node may be created
    // (as under runc, `mknod` is allowed) but not opened; the error is the device policy's EPERM.
    (
        "block-device",
        "mknod /tmp/disk b $DISK_MAJOR $DISK_MINOR && ! head -c 1 /tmp/disk >/dev/null 2>/tmp/err \
                 && grep -q 'Operation not permitted' /tmp/err",
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
        api::KeyValue {
            key: "DISK_MAJOR".into(),
            value: root_disk().0.to_string().into(),
        },
        api::KeyValue {
            key: "DISK_MINOR".into(),
            value: root_disk().1.to_string().into(),
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

/// The container's cgroup directory in the v1 devices hierarchy, from its `/proc/self/cgroup`.
async fn devices_cgroup(f: &mut Fixture, id: &str) -> std::path::PathBuf {
    let out = exec(&mut f.cri, id, &["cat", "/proc/self/cgroup"], 10)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.split(':').nth(1) == Some("devices"))
        .unwrap_or_else(|| panic!("no devices hierarchy (this test needs cgroup v1): {text}"));
    let rel = line.splitn(3, ':').nth(2).unwrap().trim_start_matches('/');
    std::path::Path::new("/sys/fs/cgroup/devices").join(rel)
}

/// `head -c 512 PATH` in the container: Ok(bytes read) or Err(the error text).
async fn read_device(f: &mut Fixture, id: &str, path: &str) -> Result<usize, String> {
    let out = exec(&mut f.cri, id, &["head", "-c", "512", path], 10)
        .await
        .unwrap();
    if out.exit_code == 0 {
        Ok(out.stdout.len())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn device_nodes_outside_the_allow_list_cannot_be_opened() {
    let image = push_node_image();
    let (major, minor) = root_disk();
    let mut f = fixture("devices", "library/busybox:latest").await;
    pull(&mut f.cri, &image).await;
    let config = container_config("devices", &image, &["sleep", "1000"]);
    let id = start_container(&mut f.cri, &f.pod, config).await;

    // A node the image ships for the root disk, and one made with CAP_MKNOD: both EPERM.
    let read = read_device(&mut f, &id, "/disk").await;
    let refused =
        |r: &Result<usize, String>| r.as_ref().is_err_and(|e| e.contains("not permitted"));
    assert!(refused(&read), "the image's node /disk: {read:?}");
    let mknod = format!("mknod /tmp/disk b {major} {minor}");
    let out = exec(&mut f.cri, &id, &["sh", "-c", &mknod], 10)
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let read = read_device(&mut f, &id, "/tmp/disk").await;
    assert!(refused(&read), "a node made with mknod: {read:?}");
    // The kernel's policy for the container's cgroup is a deny-by-default list.
    let list = std::fs::read_to_string(devices_cgroup(&mut f, &id).await.join("devices.list"));
    let list = list.unwrap();
    assert!(
        !list.contains("a *:* rwm"),
        "devices.list allows all:\n{list}"
    );
    for allowed in [
        "c 1:3 rwm",
        "c 1:9 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
        "b *:* m",
    ] {
        assert!(
            list.lines().any(|l| l == allowed),
            "{allowed} missing:\n{list}"
        );
    }

    // The defaults still work.
    assert_eq!(read_device(&mut f, &id, "/dev/zero").await, Ok(512));

    // A CRI device is created and allowed with its permissions only (read here).
    let host_disk = root_disk_node().display().to_string();
    let mut config = container_config("granted", &image, &["sleep", "1000"]);
    config.devices = vec![api::Device {
        container_path: "/dev/xdisk".into(),
        host_path: host_disk.clone(),
        permissions: "r".into(),
    }];
    let granted = start_container(&mut f.cri, &f.pod, config).await;
    let read = read_device(&mut f, &granted, "/dev/xdisk").await;
    assert!(read.is_ok(), "the CRI device: {read:?}");
    let write = "head -c 1 /dev/zero | dd of=/dev/xdisk bs=1 count=1 conv=notrunc seek=0 2>&1 \
                 | grep -q 'Operation not permitted'";
    let out = exec(&mut f.cri, &granted, &["sh", "-c", write], 10)
        .await
        .unwrap();
    assert_eq!(
        out.exit_code, 0,
        "writing a read-only CRI device was not refused"
    );
    remove_pod(&mut f.cri, &f.pod.id).await;

    // A privileged container (in a privileged pod) keeps every device.
    let mut pod = pod_config("devices-priv", &f.daemon.dir.path().join("logs"));
    pod.linux = Some(api::LinuxPodSandboxConfig {
        security_context: Some(api::LinuxSandboxSecurityContext {
            privileged: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod = run_pod(&mut f.cri, pod).await;
    let mut config = container_config("priv", &image, &["sleep", "1000"]);
    config.linux = Some(api::LinuxContainerConfig {
        security_context: Some(api::LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = start_container(&mut f.cri, &pod, config).await;
    let read = read_device(&mut f, &id, "/disk").await;
    assert!(read.is_ok(), "privileged: {read:?}");
    remove_pod(&mut f.cri, &pod.id).await;
}
