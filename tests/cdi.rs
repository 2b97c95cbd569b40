//! CDI devices end to end: fake vendor specs (YAML in one spec directory, JSON in the other)
//! expose device nodes made with mknod in a temp dir, a host directory and env; a container
//! asking for them by `cdi_devices` and by `cdi.k8s.io/*` annotation sees the nodes (and may use
//! them as far as their cgroup rule allows), the env, the mount and the extra group, with the
//! built-in handler and with runc (which also runs the spec's OCI hook). Unknown devices fail
//! CreateContainer with InvalidArgument. Root; local registry; the busybox test image.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth::client::CriClient;
use berth::cri::api;
use common::Daemon;
use common::node_image::root_disk;
use common::pods::*;
use common::registry::registries;

struct Vendor {
    dir: tempfile::TempDir,
}

impl Vendor {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn etc_cdi(&self) -> PathBuf {
        self.path("etc-cdi")
    }

    fn run_cdi(&self) -> PathBuf {
        self.path("run-cdi")
    }

    fn write_spec(&self, path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

/// Host side of the fake vendor: nodes made with mknod (a null-like char device and one with
/// the root disk's numbers, outside the default allow list), a library directory, the specs.
fn fake_vendor() -> Vendor {
    assert!(nix::unistd::geteuid().is_root(), "the CDI tests need root");
    let dir = tempfile::tempdir().unwrap();
    let v = Vendor { dir };
    for d in ["etc-cdi", "run-cdi", "nodes", "lib"] {
        std::fs::create_dir_all(v.path(d)).unwrap();
    }
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    let mode = Mode::from_bits_truncate(0o666);
    mknod(&v.path("nodes/null0"), SFlag::S_IFCHR, mode, makedev(1, 3)).unwrap();
    let (major, minor) = root_disk();
    mknod(
        &v.path("nodes/disk0"),
        SFlag::S_IFBLK,
        mode,
        makedev(major, minor),
    )
    .unwrap();
    std::fs::write(v.path("lib/libvendor.so"), "vendor library\n").unwrap();
    let yaml = format!(
        r#"cdiVersion: "0.7.0"
kind: test.berth.io/fake
containerEdits:
  env: [FAKE_VENDOR=yes]
  mounts:
    - hostPath: {lib}
      containerPath: /usr/lib/fake-vendor
      options: [ro, nosuid, nodev, bind]
  additionalGids: [4242]
devices:
  - name: null0
    containerEdits:
      env: [FAKE_DEVICE=null0]
      deviceNodes:
        - path: /dev/fake-null
          hostPath: {null0}
  - name: disk0
    containerEdits:
      deviceNodes:
        - path: /dev/fake-disk
          hostPath: {disk0}
          permissions: r
  - name: hooked
    containerEdits:
      hooks:
        - hookName: createRuntime
          path: /bin/sh
          args: [sh, -c, "echo ran > {marker}"]
"#,
        lib = v.path("lib").display(),
        null0 = v.path("nodes/null0").display(),
        disk0 = v.path("nodes/disk0").display(),
        marker = v.path("hook-marker").display(),
    );
    v.write_spec(&v.etc_cdi().join("fake.yaml"), &yaml);
    let json = r#"{"cdiVersion": "1.1.0", "kind": "test.berth.io/json",
        "devices": [{"name": "a", "containerEdits": {"env": ["JSON_DEVICE=a"]}}]}"#;
    v.write_spec(&v.run_cdi().join("json.json"), json);
    v
}

async fn daemon(v: &Vendor) -> (Daemon, CriClient, String) {
    let r = registries();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\ncdi:\n  spec_dirs: [{}, {}]\n\
         runtime:\n  handlers:\n  - name: runc\n    path: /usr/sbin/runc\n",
        r.plain,
        v.etc_cdi().display(),
        v.run_cdi().display()
    ));
    let mut cri = d.client().await;
    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut cri, &image).await;
    (d, cri, image)
}

fn with_devices(mut config: api::ContainerConfig, names: &[&str]) -> api::ContainerConfig {
    config.cdi_devices = names
        .iter()
        .map(|n| api::CdiDevice {
            name: n.to_string(),
        })
        .collect();
    config
}

/// Runs `script` in the container; its stdout, after checking it exited 0.
async fn sh(cri: &mut CriClient, id: &str, script: &str) -> String {
    let out = exec(cri, id, &["sh", "-c", script], 10).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.exit_code, 0, "{script}: {stdout} {stderr}");
    stdout
}

/// What every handler must give the container of [`fake_vendor`]'s devices.
async fn assert_devices_env_and_mounts(cri: &mut CriClient, id: &str) {
    let (major, minor) = root_disk();
    let out = sh(cri, id, "stat -c '%F %t:%T' /dev/fake-null /dev/fake-disk").await;
    let expected = format!("character special file 1:3\nblock special file {major:x}:{minor:x}\n");
    assert_eq!(out, expected);
    // The null-like node works (allowed rwm); the disk is readable (r) but not writable.
    sh(
        cri,
        id,
        "echo hi > /dev/fake-null && head -c 16 /dev/fake-null | wc -c",
    )
    .await;
    // (Opening it for reading is what the rule allows; the device may hold no data: an unused
    // loop device reads as empty.)
    sh(cri, id, "head -c 512 /dev/fake-disk >/dev/null").await;
    let write = "! dd if=/dev/zero of=/dev/fake-disk bs=1 count=1 conv=notrunc 2>/tmp/err \
                 && grep -q 'not permitted' /tmp/err";
    sh(cri, id, write).await;
    let env = sh(cri, id, "echo $FAKE_VENDOR $FAKE_DEVICE $JSON_DEVICE").await;
    assert_eq!(env, "yes null0 a\n");
    let lib = sh(cri, id, "cat /usr/lib/fake-vendor/libvendor.so").await;
    assert_eq!(lib, "vendor library\n");
    sh(cri, id, "! touch /usr/lib/fake-vendor/x 2>/dev/null").await;
    let groups = sh(cri, id, "id -G").await;
    assert!(groups.split_whitespace().any(|g| g == "4242"), "{groups}");
}

#[tokio::test]
async fn cdi_devices_reach_containers_of_both_handlers() {
    let v = fake_vendor();
    let (d, mut cri, image) = daemon(&v).await;
    let logs = d.dir.path().join("logs");

    // Built-in handler: by field and by annotation.
    let pod = run_pod(&mut cri, pod_config("cdi", &logs)).await;
    let mut config = container_config("gpu", &image, &["sleep", "1000"]);
    config.annotations.insert(
        "cdi.k8s.io/test-plugin_dev".into(),
        "test.berth.io/json=a".into(),
    );
    let config = with_devices(
        config,
        &["test.berth.io/fake=null0", "test.berth.io/fake=disk0"],
    );
    let id = try_create_container(&mut cri, &pod, config)
        .await
        .expect("CreateContainer");
    cri.runtime
        .start_container(api::StartContainerRequest {
            container_id: id.clone(),
        })
        .await
        .unwrap();
    assert_devices_env_and_mounts(&mut cri, &id).await;

    // Unknown devices, and a hook the built-in handler cannot run: InvalidArgument naming it.
    for (name, why) in [
        ("test.berth.io/fake=nope", "unknown"),
        ("nosuch.io/x=0", "unknown"),
        ("test.berth.io/fake=hooked", "built-in"),
    ] {
        let config = with_devices(container_config("bad", &image, &["true"]), &[name]);
        let err = try_create_container(&mut cri, &pod, config)
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{name}: {err:?}");
        assert!(
            err.message().contains(name) && err.message().contains(why),
            "{err:?}"
        );
    }
    let mut config = container_config("bad", &image, &["true"]);
    config
        .annotations
        .insert("cdi.k8s.io/x".into(), "not-a-name".into());
    let err = try_create_container(&mut cri, &pod, config)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");

    // A spec installed while berthd runs is picked up by the next CreateContainer.
    let late = r#"{"cdiVersion": "0.3.0", "kind": "test.berth.io/late",
        "devices": [{"name": "x", "containerEdits": {"env": ["LATE=1"]}}]}"#;
    v.write_spec(&v.run_cdi().join("late.json"), late);
    let config = with_devices(
        container_config("late", &image, &["sleep", "1000"]),
        &["test.berth.io/late=x"],
    );
    let late_id = start_container(&mut cri, &pod, config).await;
    assert_eq!(sh(&mut cri, &late_id, "echo $LATE").await, "1\n");
    remove_pod(&mut cri, &pod.id).await;

    // runc: the same edits, and the OCI hook runs.
    let req = api::RunPodSandboxRequest {
        config: Some(pod_config("cdi-runc", &logs)),
        runtime_handler: "runc".into(),
    };
    let runc_pod = Pod {
        id: cri
            .runtime
            .run_pod_sandbox(req)
            .await
            .unwrap()
            .into_inner()
            .pod_sandbox_id,
        config: pod_config("cdi-runc", &logs),
    };
    let mut config = container_config("gpu", &image, &["sleep", "1000"]);
    config.annotations.insert(
        "cdi.k8s.io/test-plugin".into(),
        "test.berth.io/json=a".into(),
    );
    let names = [
        "test.berth.io/fake=null0",
        "test.berth.io/fake=disk0",
        "test.berth.io/fake=hooked",
    ];
    let id = start_container(&mut cri, &runc_pod, with_devices(config, &names)).await;
    assert_devices_env_and_mounts(&mut cri, &id).await;
    let marker =
        std::fs::read_to_string(v.path("hook-marker")).expect("the createRuntime hook ran");
    assert_eq!(marker, "ran\n");
    remove_pod(&mut cri, &runc_pod.id).await;
}
