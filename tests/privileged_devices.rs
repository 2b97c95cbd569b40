//! Privileged containers get the host's device nodes, as under containerd and CRI-O: every node
//! of the host's /dev (not only the default set) and the allow-all device rule, for the built-in
//! executor and the runc handler, unless the handler is configured with
//! `privileged_without_host_devices`. An unprivileged container gets none of them and cannot
//! open one it makes itself. Root; real runc; the local registry's busybox.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use berth::client::CriClient;
use berth::cri::api;
use common::Daemon;
use common::pods::*;
use common::registry::registries;

/// A host device that is not in the default set: every Linux host with the loop driver has it.
const NODE: &str = "/dev/loop-control";

/// The host's `NODE`, as (major, minor); the test fails loudly without it.
fn host_node() -> (u64, u64) {
    let meta = std::fs::metadata(NODE)
        .unwrap_or_else(|e| panic!("{NODE} on the host: {e}: this test needs the loop driver"));
    assert!(meta.file_type().is_char_device(), "{NODE} is not a device");
    let rdev = meta.rdev();
    (u64::from(libc::major(rdev)), u64::from(libc::minor(rdev)))
}

/// Starts berthd with the runc handler; `extra` goes under `runtime:` (and `runc_extra` under
/// the runc handler).
async fn daemon(extra: &str, runc_extra: &str) -> (Daemon, CriClient, String) {
    let r = registries();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\nruntime:\n{extra}  handlers:\n  - name: runc\n    path: /usr/sbin/runc\n{runc_extra}",
        r.plain
    ));
    let mut cri = d.client().await;
    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut cri, &image).await;
    (d, cri, image)
}

async fn pod(cri: &mut CriClient, d: &Daemon, name: &str, handler: &str, privileged: bool) -> Pod {
    let mut config = pod_config(name, &d.dir.path().join("logs"));
    config.linux = Some(api::LinuxPodSandboxConfig {
        security_context: Some(api::LinuxSandboxSecurityContext {
            privileged,
            ..Default::default()
        }),
        ..Default::default()
    });
    let req = api::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: handler.into(),
    };
    let id = cri.runtime.run_pod_sandbox(req).await;
    let id = id.unwrap_or_else(|e| panic!("RunPodSandbox {name} ({handler:?}): {e:?}"));
    Pod {
        id: id.into_inner().pod_sandbox_id,
        config,
    }
}

async fn container(cri: &mut CriClient, pod: &Pod, image: &str, privileged: bool) -> String {
    let mut config = container_config("c", image, &["sleep", "1000"]);
    config.linux = Some(api::LinuxContainerConfig {
        security_context: Some(api::LinuxContainerSecurityContext {
            privileged,
            ..Default::default()
        }),
        ..Default::default()
    });
    start_container(cri, pod, config).await
}

/// Runs `script` in the container; returns its exit code and output.
async fn sh(cri: &mut CriClient, id: &str, script: &str) -> (i32, String) {
    let out = exec(cri, id, &["sh", "-c", script], 20).await.unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.exit_code, text)
}

/// The node is in the container's /dev and opens read-write.
const OPENS: &str = "[ -c /dev/loop-control ] && exec 3<>/dev/loop-control";

/// The node is not in /dev, and one made with mknod (allowed, as under runc) cannot be opened.
fn refused(major: u64, minor: u64) -> String {
    format!(
        "[ ! -e /dev/loop-control ] || exit 2; mknod /tmp/lc c {major} {minor} || exit 3; \
         (exec 3<>/tmp/lc) 2>&1 | grep -q 'not permitted'"
    )
}

async fn host_devices_for(handler: &str) {
    let (major, minor) = host_node();
    let (d, mut cri, image) = daemon("", "").await;

    let privileged_pod = pod(&mut cri, &d, "priv", handler, true).await;
    let id = container(&mut cri, &privileged_pod, &image, true).await;
    let (code, out) = sh(&mut cri, &id, OPENS).await;
    assert_eq!(
        code, 0,
        "{handler:?}: a privileged container cannot open {NODE}: {out}"
    );
    // Every host device node, not a chosen few: the whole loop family is there.
    let (code, out) = sh(&mut cri, &id, "ls /dev/loop0 /dev/loop1 /dev/kmsg").await;
    assert_eq!(code, 0, "{handler:?}: host devices missing: {out}");
    // The container's own terminal multiplexer stays its own.
    let (code, out) = sh(&mut cri, &id, "[ -L /dev/ptmx ] && [ -d /dev/pts ]").await;
    assert_eq!(code, 0, "{handler:?}: /dev/ptmx: {out}");
    remove_pod(&mut cri, &privileged_pod.id).await;

    let plain_pod = pod(&mut cri, &d, "plain", handler, false).await;
    let id = container(&mut cri, &plain_pod, &image, false).await;
    let (code, out) = sh(&mut cri, &id, &refused(major, minor)).await;
    assert_eq!(
        code, 0,
        "{handler:?}: an unprivileged container reached {NODE}: {out}"
    );
    remove_pod(&mut cri, &plain_pod.id).await;
}

#[tokio::test]
async fn privileged_containers_of_the_built_in_executor_get_the_hosts_devices() {
    host_devices_for("").await;
}

#[tokio::test]
async fn privileged_runc_containers_get_the_hosts_devices() {
    host_devices_for("runc").await;
}

/// With `privileged_without_host_devices`, a privileged container keeps the default device set
/// and policy (containerd's behaviour for the same switch), on both handlers.
#[tokio::test]
async fn privileged_without_host_devices_keeps_the_default_set() {
    let (major, minor) = host_node();
    let (d, mut cri, image) = daemon(
        "  privileged_without_host_devices: true\n",
        "    privileged_without_host_devices: true\n",
    )
    .await;
    for handler in ["", "runc"] {
        let p = pod(
            &mut cri,
            &d,
            &format!("nohost{}", handler.len()),
            handler,
            true,
        )
        .await;
        let id = container(&mut cri, &p, &image, true).await;
        let (code, out) = sh(&mut cri, &id, &refused(major, minor)).await;
        assert_eq!(code, 0, "{handler:?}: {NODE} reachable: {out}");
        let (code, out) = sh(&mut cri, &id, "head -c 1 /dev/zero | wc -c").await;
        assert_eq!((code, out.trim()), (0, "1"), "{handler:?}: /dev/zero");
        remove_pod(&mut cri, &p.id).await;
    }
}
