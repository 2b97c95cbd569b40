//! Integration tests of the per-pod shim: a real `berth-shim serve` detached on a temp pod
//! directory, driven through `ShimClient`, running busybox containers with the built-in
//! executor. They need root; a test that cannot set up what it needs fails.

mod container_support;
#[path = "shim/support.rs"]
mod support;

use std::time::{Duration, Instant};

use berth::error::{Classify, Kind};
use berth::shim::{ContainerStatus, ShimClient, ShimError, ShimOptions, exit_file};
use container_support::Bundle;
use support::{PidNs, Pod, inode, lines_of, next_exit, pod_spec, read_log};

fn pod_options() -> ShimOptions {
    ShimOptions {
        net: true,
        ipc: true,
        uts: true,
        pid: false,
        hostname: Some("pod-host".into()),
    }
}

#[tokio::test]
async fn namespaces_are_pinned_in_the_shim_itself() {
    let pod = Pod::spawn(pod_options()).await;
    let info = pod.client.info().await.expect("Info");
    assert_eq!(info.pid as i32, pod.shim_pid);
    let kinds: Vec<&str> = info.namespaces.keys().map(String::as_str).collect();
    assert_eq!(kinds, ["ipc", "net", "uts"]);
    for kind in ["net", "ipc", "uts"] {
        let pin = inode(pod.ns(kind));
        assert_eq!(
            pin,
            inode(format!("/proc/{}/ns/{kind}", pod.shim_pid)),
            "{kind}"
        );
        assert_ne!(
            pin,
            inode(format!("/proc/self/ns/{kind}")),
            "{kind} is the host's"
        );
        assert_eq!(info.namespaces[kind], pod.ns(kind));
    }
    assert!(!pod.ns("pid").exists());

    // A second shim on the same pod directory is refused, with the reason.
    let err = ShimClient::spawn(support::SHIM.as_ref(), "again", pod.dir(), &pod_options())
        .await
        .expect_err("second shim");
    assert!(err.to_string().contains("another shim"), "{err}");
    pod.shutdown(None).await;
}

#[tokio::test]
async fn container_output_goes_to_the_cri_log_and_its_exit_everywhere() {
    let mut pod = Pod::spawn(pod_options()).await;
    let bundle = Bundle::new();
    let script = "echo out1; echo err1 >&2; s=x; \
        for i in 1 2 3 4 5 6 7 8 9 10 11 12; do s=$s$s; done; echo $s$s$s$s$s$s$s$s$s$s; \
        hostname; readlink /proc/self/ns/net; echo out2; exit 3";
    let spec = pod_spec(&bundle, &pod, &["sh", "-c", script], PidNs::New);
    let log = pod.dir().join("logs/printer/0.log");
    let mut events = pod.client.events().await.expect("Events");
    let pid = pod.run("printer", &bundle, &spec, Some(&log)).await;

    let event = next_exit(&mut events, "printer").await;
    assert_eq!((event.exit.exit_code, event.exit.signal), (3, 0));
    assert_eq!(event.exit.pid, pid);
    let file = exit_file::read(bundle.path())
        .expect("read exit file")
        .expect("exit file");
    assert_eq!(file, event.exit);
    let states = pod.client.state().await.expect("State");
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].status, ContainerStatus::Exited);
    assert!(states[0].started_at > 0 && states[0].started_at <= event.exit.finished_at);

    // Delete lets the log tasks finish with what is left in the pipes.
    pod.client.delete("printer").await.expect("Delete");
    let records = read_log(&log);
    let long = "x".repeat(40 * 1024);
    let net = format!("net:[{}]", inode(pod.ns("net")));
    let expected: Vec<&str> = vec!["out1", &long, "pod-host", &net, "out2"];
    assert_eq!(lines_of(&records, "stdout"), expected);
    assert_eq!(lines_of(&records, "stderr"), ["err1"]);
    let shape: Vec<(usize, bool)> = records
        .iter()
        .filter(|r| r.text.starts_with("xx"))
        .map(|r| (r.text.len(), r.partial))
        .collect();
    assert_eq!(shape, [(16384, true), (16384, true), (8192, false)]);
    assert!(pod.client.state().await.expect("State").is_empty());
    pod.shutdown(None).await;
}

#[tokio::test]
async fn exec_sync_signal_and_a_reconnecting_daemon() {
    let mut pod = Pod::spawn(pod_options()).await;
    let bundle = Bundle::new();
    // In the host's PID namespace `sleep` is not an init, so SIGTERM kills it.
    let spec = pod_spec(&bundle, &pod, &["sleep", "300"], PidNs::Host);
    pod.run("sleeper", &bundle, &spec, None).await;

    let out = pod
        .client
        .exec_sync("sleeper", &args(&["echo", "hi"]), Duration::ZERO)
        .await;
    let out = out.expect("ExecSync echo");
    assert_eq!(
        (out.stdout.as_slice(), out.exit_code, out.timed_out),
        (&b"hi\n"[..], 0, false)
    );
    let script = args(&["sh", "-c", "echo oops >&2; hostname; exit 5"]);
    let out = pod
        .client
        .exec_sync("sleeper", &script, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"pod-host\n"[..], &b"oops\n"[..])
    );
    assert_eq!(out.exit_code, 5);

    let started = Instant::now();
    let slow = args(&["sleep", "10"]);
    let out = pod
        .client
        .exec_sync("sleeper", &slow, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, berth::shim::EXEC_TIMEOUT_EXIT_CODE);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    let mut events = pod.client.events().await.expect("Events");
    pod.client
        .signal("sleeper", libc::SIGTERM, false)
        .await
        .expect("Signal");
    let event = next_exit(&mut events, "sleeper").await;
    assert_eq!((event.exit.exit_code, event.exit.signal), (143, 15));
    // Signalling an exited container is not an error; exec into it is refused.
    pod.client
        .signal("sleeper", libc::SIGKILL, true)
        .await
        .expect("Signal exited");
    let err = pod
        .client
        .exec_sync("sleeper", &args(&["true"]), Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::FailedPrecondition, "{err}");

    // The daemon goes away and comes back: state and exits are still there.
    drop(events);
    let reconnected = ShimClient::connect(pod.dir()).await.expect("reconnect");
    drop(std::mem::replace(&mut pod.client, reconnected));
    let states = pod.client.state().await.expect("State");
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].exit.map(|e| e.exit_code), Some(143));
    let mut replay = pod.client.events().await.expect("Events");
    assert_eq!(next_exit(&mut replay, "sleeper").await, event);
    pod.shutdown(None).await;
}

#[tokio::test]
async fn requests_that_do_not_fit_get_the_right_codes() {
    let mut pod = Pod::spawn(pod_options()).await;
    let bundle = Bundle::new();
    let spec = pod_spec(&bundle, &pod, &["sleep", "300"], PidNs::New);
    pod.create("c1", &bundle, &spec, None).await;
    let kind = |r: Result<(), ShimError>| r.expect_err("must fail").kind();

    let again = berth::shim::CreateContainer {
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
    let missing = berth::shim::CreateContainer {
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

#[tokio::test]
async fn reopen_log_after_rotation_and_tty_output() {
    let mut pod = Pod::spawn(pod_options()).await;
    let bundle = Bundle::new();
    let script = "echo before; while ! test -e /tmp/go; do sleep 1; done; echo after";
    let spec = pod_spec(&bundle, &pod, &["sh", "-c", script], PidNs::New);
    let log = pod.dir().join("logs/rotating.log");
    let mut events = pod.client.events().await.expect("Events");
    pod.run("rotating", &bundle, &spec, Some(&log)).await;
    support::eventually("the first line in the log", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("before"))
    })
    .await;
    let rotated = pod.dir().join("logs/rotating.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    pod.client.reopen_log("rotating").await.expect("ReopenLog");
    std::fs::write(bundle.rootfs().join("tmp/go"), "").unwrap();
    next_exit(&mut events, "rotating").await;
    pod.client.delete("rotating").await.expect("Delete");
    assert_eq!(lines_of(&read_log(&rotated), "stdout"), ["before"]);
    assert_eq!(lines_of(&read_log(&log), "stdout"), ["after"]);

    // A terminal: one stream, logged as stdout, without the terminal's carriage returns.
    let tty_bundle = Bundle::new();
    let mut spec = pod_spec(
        &tty_bundle,
        &pod,
        &["sh", "-c", "test -t 1 && echo on-a-tty"],
        PidNs::New,
    );
    let mut process = spec.process().clone().unwrap();
    process.set_terminal(Some(true));
    spec.set_process(Some(process));
    spec.save(tty_bundle.path().join("config.json")).unwrap();
    let tty_log = pod.dir().join("logs/tty.log");
    let request = berth::shim::CreateContainer {
        id: "tty".into(),
        bundle: tty_bundle.path().to_path_buf(),
        log_path: Some(tty_log.clone()),
        tty: true,
        ..Default::default()
    };
    pod.client
        .create(&request)
        .await
        .expect("create tty container");
    pod.client.start("tty").await.expect("start tty container");
    assert_eq!(next_exit(&mut events, "tty").await.exit.exit_code, 0);
    pod.client.delete("tty").await.expect("Delete");
    let records = read_log(&tty_log);
    assert_eq!(lines_of(&records, "stdout"), ["on-a-tty"], "{records:?}");
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

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}
