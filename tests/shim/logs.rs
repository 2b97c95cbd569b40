//! Shim tests of container stdio: log rotation and ReopenLog, a terminal, and a stdin pipe held
//! open by the shim.

use std::time::Duration;

use berth::shimclient::{ContainerStatus, CreateContainer};

use crate::container_support::Bundle;
use crate::support::{self, PidNs, Pod, lines_of, next_exit, pod_options, pod_spec, read_log};

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
    let tty_log = pod.dir().join("logs/tty.log");
    let request = CreateContainer {
        id: "tty".into(),
        log_path: Some(tty_log.clone()),
        tty: true,
        ..Default::default()
    };
    pod.create_with(request, &tty_bundle, &spec).await;
    pod.client.start("tty").await.expect("start tty container");
    assert_eq!(next_exit(&mut events, "tty").await.exit.exit_code, 0);
    pod.client.delete("tty").await.expect("Delete");
    let records = read_log(&tty_log);
    assert_eq!(lines_of(&records, "stdout"), ["on-a-tty"], "{records:?}");
    pod.shutdown(None).await;
}

#[tokio::test]
async fn stdin_is_held_open_by_the_shim() {
    let mut pod = Pod::spawn(pod_options()).await;
    let bundle = Bundle::new();
    // Without a stdin pipe, `cat` reads /dev/null and exits at once.
    let spec = pod_spec(&bundle, &pod, &["cat"], PidNs::New);
    let request = CreateContainer {
        id: "reader".into(),
        stdin: true,
        ..Default::default()
    };
    pod.create_with(request, &bundle, &spec).await;
    pod.client.start("reader").await.expect("start");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let states = pod.client.state().await.unwrap();
    assert_eq!(states[0].status, ContainerStatus::Running, "{states:?}");
    pod.client.delete("reader").await.expect("Delete");
    pod.shutdown(None).await;
}
