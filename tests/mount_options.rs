//! `Mount.mount_options` (CRI v0.37): nosuid, nodev, noexec and the atime options are applied to
//! a CRI bind mount (the OCI mount options both the built-in executor and runc apply); anything else
//! is InvalidArgument, and Status advertises the feature. Root; the local test registry.

mod common;

use std::os::unix::fs::PermissionsExt;

use berth::cri::api;
use common::pods::*;

/// A host dir holding an executable script, mounted at /vol with `options`.
fn volume(dir: &std::path::Path, options: &[&str]) -> api::Mount {
    let host = dir.join("vol");
    std::fs::create_dir_all(&host).unwrap();
    let script = host.join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    api::Mount {
        container_path: "/vol".into(),
        host_path: host.display().to_string(),
        mount_options: options.iter().map(|o| o.to_string()).collect(),
        ..Default::default()
    }
}

async fn container_with(
    f: &mut Fixture,
    name: &str,
    mount: api::Mount,
) -> Result<String, tonic::Status> {
    let mut config = container_config(name, &f.image, &["sleep", "300"]);
    config.mounts = vec![mount];
    let req = api::CreateContainerRequest {
        pod_sandbox_id: f.pod.id.clone(),
        config: Some(config),
        sandbox_config: Some(f.pod.config.clone()),
    };
    let id = f
        .cri
        .runtime
        .create_container(req)
        .await?
        .into_inner()
        .container_id;
    let req = api::StartContainerRequest {
        container_id: id.clone(),
    };
    f.cri.runtime.start_container(req).await?;
    Ok(id)
}

/// The options of the mount at `/vol` as the container sees them.
async fn vol_options(f: &mut Fixture, id: &str) -> String {
    let out = exec(&mut f.cri, id, &["cat", "/proc/self/mounts"], 10)
        .await
        .unwrap();
    let mounts = String::from_utf8_lossy(&out.stdout).to_string();
    mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/vol"))
        .unwrap_or_else(|| panic!("no /vol in {mounts}"))
        .split(' ')
        .nth(3)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn noexec_nosuid_nodev_reach_the_bind_mount() {
    let mut f = fixture("mntopts", "library/busybox:latest").await;
    let dir = f.daemon.dir.path().to_path_buf();

    let plain = container_with(&mut f, "plain", volume(&dir, &[]))
        .await
        .unwrap();
    let ran = exec(&mut f.cri, &plain, &["/vol/run.sh"], 10)
        .await
        .unwrap();
    assert_eq!(ran.exit_code, 0, "{ran:?}");
    assert!(!vol_options(&mut f, &plain).await.contains("noexec"));

    let id = container_with(
        &mut f,
        "noexec",
        volume(&dir, &["noexec", "nosuid", "nodev"]),
    )
    .await
    .unwrap();
    let options = vol_options(&mut f, &id).await;
    for flag in ["noexec", "nosuid", "nodev"] {
        assert!(options.split(',').any(|o| o == flag), "{flag} in {options}");
    }
    // Through a shell, so the refused execve is an exit status (126), not a failed exec.
    let ran = exec(&mut f.cri, &id, &["sh", "-c", "/vol/run.sh"], 10)
        .await
        .unwrap();
    assert_eq!(
        ran.exit_code, 126,
        "a script on a noexec mount ran: {ran:?}"
    );

    let err = container_with(&mut f, "bad", volume(&dir, &["noexec", "suid"]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("\"suid\""), "{err:?}");
}

#[tokio::test]
async fn status_advertises_mount_options() {
    let daemon = common::Daemon::start("");
    let mut cri = daemon.client().await;
    let status = cri
        .runtime
        .status(api::StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    assert!(status.features.unwrap().mount_options);
}
