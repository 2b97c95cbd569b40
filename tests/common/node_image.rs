//! An image built for this node in the test: the busybox test image's files plus a block device
//! node `/disk` for the node's root disk ([`root_disk`]) and a setuid-root copy of the host's `id`
//! (`/bin/id-suid`, which prints euid 0 when its setuid bit takes effect). Built with
//! `hack/testimages/mkimage.py` and pushed to the plain test registry with `push.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::registry::registries;

/// Major and minor of the block device the attacks aim at: the one holding `/` (`st_dev` of
/// `/`), or, where root on the host itself may not open that one (a sandboxed VM that refuses
/// it, or `/` on a filesystem without a disk), the first block device in `/sys/block` that root
/// can open: the point is a device the host may open and a container must not.
pub fn root_disk() -> (u64, u64) {
    let dev = std::os::unix::fs::MetadataExt::dev(&std::fs::metadata("/").unwrap());
    let mut candidates = vec![(libc::major(dev) as u64, libc::minor(dev) as u64)];
    let mut disks: Vec<PathBuf> = std::fs::read_dir("/sys/block")
        .expect("read /sys/block")
        .flatten()
        .map(|e| e.path().join("dev"))
        .collect();
    disks.sort();
    for disk in disks {
        let text = std::fs::read_to_string(disk).unwrap();
        let (major, minor) = text.trim().split_once(':').unwrap();
        candidates.push((major.parse().unwrap(), minor.parse().unwrap()));
    }
    candidates
        .into_iter()
        .filter(|&(major, _)| major != 0)
        .find(|&(major, minor)| {
            node_for(major, minor).is_some_and(|node| std::fs::File::open(node).is_ok())
        })
        .expect("no block device on this node that root can open: nothing to attack")
}

fn node_for(major: u64, minor: u64) -> Option<PathBuf> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    std::fs::read_dir("/dev")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            std::fs::symlink_metadata(p).is_ok_and(|m| {
                m.file_type().is_block_device()
                    && (libc::major(m.rdev()) as u64, libc::minor(m.rdev()) as u64)
                        == (major, minor)
            })
        })
}

/// The host's device node for [`root_disk`], found in `/dev`.
pub fn root_disk_node() -> PathBuf {
    let (major, minor) = root_disk();
    node_for(major, minor).expect("root_disk has a node")
}

/// Builds and pushes the image (idempotent: same node, same digest); returns its full name.
pub fn push_node_image() -> String {
    let r = registries();
    let (major, minor) = root_disk();
    let test_dir = std::env::var("BERTH_TEST_DIR").unwrap_or_else(|_| "/var/lib/berth-test".into());
    let busybox = Path::new(&test_dir).join("build/busybox-amd64/rootfs");
    assert!(
        busybox.join("bin/busybox").exists(),
        "{}: missing; run `hack/testimages/build.sh busybox`",
        busybox.display()
    );
    let spec = serde_json::json!({
        "_comment": "test/node-attack: busybox, the node's root disk as /disk, a setuid-root id",
        "format": "oci",
        "compression": "gzip",
        "platform": {"os": "linux", "architecture": "amd64"},
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "layers": [
            {"dir": busybox.display().to_string(), "uid": 0, "gid": 0,
             "created_by": "the busybox test image's files"},
            {"created_by": "hostile: a device node and a setuid-root binary",
             "entries": [
                {"path": "disk", "type": "blockdev", "major": major, "minor": minor,
                 "mode": "0666"},
                {"path": "bin/id-suid", "source": "/usr/bin/id", "mode": "04755"}
             ]}
        ]
    });
    let work = tempfile::tempdir().unwrap();
    let spec_path = work.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let hack = Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/testimages");
    let layout = work.path().join("layout");
    let tag = format!("disk-{major}-{minor}");
    run(Command::new("python3")
        .arg(hack.join("mkimage.py"))
        .arg(&spec_path)
        .arg(&layout)
        .args(["--tag", &tag]));
    run(Command::new("python3")
        .arg(hack.join("push.py"))
        .args(["--registry", &format!("http://{}", r.plain)])
        .arg(&layout)
        .arg("test/node-attack"));
    format!("{}/test/node-attack:{tag}", r.plain)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run the image tools (python3)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
