//! Integration tests of the per-pod shim: a real `berth-shim serve` detached on a temp pod
//! directory, driven through `ShimClient`, running busybox containers with the built-in
//! executor. They need root; a test that cannot set up what it needs fails.

mod container_support;
#[path = "shim/lifecycle.rs"]
mod lifecycle;
#[path = "shim/logs.rs"]
mod logs;
#[path = "common/raw_h2.rs"]
mod raw_h2;
#[path = "shim/support.rs"]
mod support;

use std::time::{Duration, Instant};

use berth::error::{Classify, Kind};
use berth::shimclient::{ContainerStatus, ShimClient, exit_file};
use container_support::Bundle;
use prost::Message;
use support::{PidNs, Pod, args, inode, lines_of, next_exit, pod_options, pod_spec, read_log};

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
async fn shim_socket_accepts_any_authority() {
    let pod = Pod::spawn(pod_options()).await;
    let socket = pod.dir().join(berth::shimapi::SOCKET);
    let path = socket.display().to_string();
    let c_core = path.trim_start_matches('/').replace('/', "%2F");
    for authority in ["localhost", &path, &c_core, ""] {
        let reply = raw_h2::unary(&socket, authority, "/berth.shim.v1.Shim/Info", &[]);
        assert_eq!(reply.reset, None, ":authority {authority:?} was refused");
        assert_eq!(reply.header_blocks, 2, "headers and trailers: {reply:?}");
        let info = berth::shimapi::proto::InfoResponse::decode(reply.message.as_slice())
            .unwrap_or_else(|e| panic!(":authority {authority:?}: {e}: {reply:?}"));
        assert_eq!(info.pid as i32, pod.shim_pid, ":authority {authority:?}");
    }
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
    assert_eq!(out.exit_code, berth::shimapi::EXEC_TIMEOUT_EXIT_CODE);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    exec_dies_with_its_caller(&pod, &bundle).await;

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

/// An ExecSync whose caller goes away (here: a client-side timeout) takes its process with it.
async fn exec_dies_with_its_caller(pod: &Pod, bundle: &Bundle) {
    let pid_file = bundle.rootfs().join("tmp/exec.pid");
    let script = args(&["sh", "-c", "echo $$ > /tmp/exec.pid; exec sleep 30"]);
    let call = pod.client.exec_sync("sleeper", &script, Duration::ZERO);
    let cancelled = tokio::time::timeout(Duration::from_millis(500), call).await;
    assert!(cancelled.is_err(), "{cancelled:?}");
    let pid = std::fs::read_to_string(&pid_file).expect("exec.pid");
    let pid: i32 = pid.trim().parse().expect("a pid");
    assert!(support::gone(pid).await, "exec {pid} outlived its caller");
}
