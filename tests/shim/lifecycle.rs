//! Shim tests of the container lifecycle: error codes of requests that do not fit, cgroup
//! placement and signalling every process of a container, and a pod-shared PID namespace.

use std::time::Duration;

use berth::cgroup::{Cgroup, Hierarchy};
use berth::error::{Classify, Kind};
use berth::shimclient::{CreateContainer, ShimClient, ShimError, ShimOptions};

use crate::container_support::Bundle;
use crate::support::{PidNs, Pod, args, eventually, inode, next_exit, pod_options, pod_spec};

#[tokio::test]
async fn requests_that_do_not_fit_get_the_right_codes() {
    let mut pod = Pod::spawn(pod_options()).await;
    let bundle = Bundle::new();
    let spec = pod_spec(&bundle, &pod, &["sleep", "300"], PidNs::New);
    pod.create("c1", &bundle, &spec, None).await;
    let kind = |r: Result<(), ShimError>| r.expect_err("must fail").kind();

    let again = CreateContainer {
        id: "c1".into(),
        bundle: bundle.path().to_path_buf(),
        ..Default::default()
    };
    assert_eq!(
        pod.client.create(&again).await.unwrap_err().kind(),
        Kind::AlreadyExists
    );
    assert_eq!(kind(pod.client.start("nope").await), Kind::NotFound);
    assert_eq!(kind(pod.client.delete("nope").await), Kind::NotFound);
    assert_eq!(kind(pod.client.reopen_log("nope").await), Kind::NotFound);
    let exec = pod
        .client
        .exec_sync("c1", &args(&["true"]), Duration::ZERO)
        .await;
    assert_eq!(
        exec.unwrap_err().kind(),
        Kind::FailedPrecondition,
        "exec in a created container"
    );
    let missing = CreateContainer {
        id: "c2".into(),
        bundle: pod.dir().join("no-bundle"),
        ..Default::default()
    };
    assert_eq!(
        pod.client.create(&missing).await.unwrap_err().kind(),
        Kind::InvalidArgument
    );

    pod.client.start("c1").await.expect("start");
    assert_eq!(kind(pod.client.start("c1").await), Kind::FailedPrecondition);
    // Delete of a running container kills it first.
    pod.client.delete("c1").await.expect("Delete running");
    assert!(pod.client.state().await.unwrap().is_empty());
    pod.shutdown(None).await;
}

/// A cgroup made for one test, removed on drop.
struct TestCgroup(Cgroup);

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = self.0.kill_all(nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.delete();
    }
}

#[tokio::test]
async fn containers_join_their_cgroup_and_all_its_processes_get_the_signal() {
    let hierarchy = Hierarchy::detect().expect("detect cgroups");
    let path = format!("/berth-shim-test-{:08x}", rand::random::<u32>());
    let cgroup = TestCgroup(Cgroup::create(&hierarchy, &path).expect("create cgroup"));
    let mut pod = Pod::spawn(pod_options()).await;
    let bundle = Bundle::new();
    let spec = pod_spec(
        &bundle,
        &pod,
        &["sh", "-c", "sleep 300 & sleep 301; true"],
        PidNs::New,
    );
    let request = CreateContainer {
        id: "grouped".into(),
        cgroup: Some(path.clone()),
        ..Default::default()
    };
    let pid = pod.create_with(request, &bundle, &spec).await as i32;
    assert_eq!(cgroup.0.pids().unwrap(), [pid], "placed before it runs");
    pod.client.start("grouped").await.expect("start");
    let out = pod
        .client
        .exec_sync(
            "grouped",
            &args(&["cat", "/proc/self/cgroup"]),
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    // The container's cgroup namespace is rooted at its cgroup: an exec placed there sees `/`.
    let groups = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        groups.lines().count() > 1 && groups.lines().all(|l| l.ends_with(":/")),
        "the exec is in the container's cgroup in every hierarchy: {groups}"
    );
    eventually("sh and both sleeps in the cgroup", || {
        cgroup.0.pids().unwrap().len() == 3
    })
    .await;

    let mut events = pod.client.events().await.expect("Events");
    pod.client
        .signal("grouped", libc::SIGKILL, true)
        .await
        .expect("Signal all");
    let exit = next_exit(&mut events, "grouped").await.exit;
    assert_eq!(
        (exit.exit_code, exit.signal, exit.oom_killed),
        (137, 9, false)
    );
    eventually("an empty cgroup", || cgroup.0.pids().unwrap().is_empty()).await;
    pod.shutdown(None).await;
}

#[tokio::test]
async fn pod_pid_namespace_is_shared_under_a_pause_process() {
    let opts = ShimOptions {
        pid: true,
        ..pod_options()
    };
    let mut pod = Pod::spawn(opts).await;
    let pid_pin = pod.ns("pid");
    assert!(pid_pin.exists());
    let bundle_a = Bundle::new();
    let bundle_b = Bundle::new();
    let spec_a = pod_spec(&bundle_a, &pod, &["sleep", "300"], PidNs::Pod(&pid_pin));
    let spec_b = pod_spec(&bundle_b, &pod, &["sleep", "301"], PidNs::Pod(&pid_pin));
    let pid_a = pod.run("a", &bundle_a, &spec_a, None).await;
    pod.run("b", &bundle_b, &spec_b, None).await;
    assert_eq!(inode(format!("/proc/{pid_a}/ns/pid")), inode(&pid_pin));

    let ps = args(&["sh", "-c", "cat /proc/1/cmdline; echo; ps -o pid,args"]);
    let out = pod
        .client
        .exec_sync("b", &ps, Duration::from_secs(10))
        .await
        .expect("ExecSync ps");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let first = text.lines().next().unwrap_or_default().replace('\0', " ");
    assert!(
        first.trim_end().ends_with("pause"),
        "PID 1 is not the pause process: {text}"
    );
    assert!(
        text.contains("sleep 300") && text.contains("sleep 301"),
        "{text}"
    );
    let pause = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.ends_with(b"pause\0"))
                && inode(format!("/proc/{pid}/ns/pid")) == inode(&pid_pin)
        })
        .expect("the pause process on the host");

    // Not PID 1 of its namespace: SIGTERM kills it.
    let mut events = pod.client.events().await.expect("Events");
    pod.client
        .signal("a", libc::SIGTERM, false)
        .await
        .expect("Signal");
    assert_eq!(next_exit(&mut events, "a").await.exit.exit_code, 143);
    pod.shutdown(Some(pause)).await;
}

#[tokio::test]
async fn a_killed_shim_takes_its_pause_process_and_pod_pid_namespace_along() {
    let opts = ShimOptions {
        pid: true,
        ..pod_options()
    };
    let mut pod = Pod::spawn(opts).await;
    let pid_pin = pod.ns("pid");
    let bundle = Bundle::new();
    let spec = pod_spec(&bundle, &pod, &["sleep", "300"], PidNs::Pod(&pid_pin));
    let sleeper = pod.run("a", &bundle, &spec, None).await as i32;
    let pause = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.ends_with(b"pause\0"))
                && inode(format!("/proc/{pid}/ns/pid")) == inode(&pid_pin)
        })
        .expect("the pause process on the host");
    // Only the shim itself, not its process group.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pod.shim_pid),
        nix::sys::signal::SIGKILL,
    )
    .expect("kill the shim");
    assert!(crate::support::gone(pod.shim_pid).await);
    // The namespace's other processes first: the pause process's exit waits until they are
    // reaped, and this test process, a subreaper, is where they are re-parented.
    assert!(
        crate::support::gone(sleeper).await,
        "a process of the pod's PID namespace outlived its init"
    );
    assert!(
        crate::support::gone(pause).await,
        "the pause process outlived its shim"
    );
}

#[tokio::test]
async fn a_dead_shim_is_unavailable() {
    let pod = Pod::spawn(pod_options()).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pod.shim_pid),
        nix::sys::signal::SIGKILL,
    )
    .expect("kill the shim");
    assert!(crate::support::gone(pod.shim_pid).await);
    assert!(
        pod.dir().join("shim.sock").exists(),
        "a stale socket file stays"
    );
    let err = ShimClient::connect(pod.dir())
        .await
        .expect_err("connect to a dead shim");
    assert_eq!(err.kind(), Kind::Unavailable, "{err}");
    let err = pod.client.state().await.expect_err("call a dead shim");
    assert_eq!(err.kind(), Kind::Unavailable, "{err}");
}
