//! Exploit-style checks against the processes berth itself runs inside a pod's namespaces: the
//! pause process (PID 1 of a pod-shared PID namespace), the executor's container process before
//! it executes its program (created and held until StartContainer, or an exec's), and the
//! console sockets a runc pod's shim listens on. Each attack is made for real from a container;
//! the tests assert it reaches nothing on the host. Root; local registry; runc for the last.

mod common;

use std::path::{Path, PathBuf};

use berth::client::CriClient;
use berth::cri::api;
use common::Daemon;
use common::pods::*;
use common::registry::registries;

const HOST_ID: u32 = 100000;
const SIZE: u32 = 65536;

async fn daemon(extra_yaml: &str) -> (Daemon, CriClient, String) {
    let r = registries();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n{extra_yaml}",
        r.plain
    ));
    let mut cri = d.client().await;
    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut cri, &image).await;
    (d, cri, image)
}

/// Namespace options of a pod-shared PID namespace, with a pod user namespace when `userns`.
fn shared_pid(userns: bool) -> api::NamespaceOption {
    let maps = vec![api::IdMapping {
        container_id: 0,
        host_id: HOST_ID,
        length: SIZE,
    }];
    api::NamespaceOption {
        pid: api::NamespaceMode::Pod as i32,
        userns_options: userns.then(|| api::UserNamespace {
            mode: api::NamespaceMode::Pod as i32,
            uids: maps.clone(),
            gids: maps,
        }),
        ..Default::default()
    }
}

fn in_namespaces(
    mut c: api::ContainerConfig,
    ns: &api::NamespaceOption,
    add_caps: &[&str],
) -> api::ContainerConfig {
    c.linux = Some(api::LinuxContainerConfig {
        security_context: Some(api::LinuxContainerSecurityContext {
            namespace_options: Some(ns.clone()),
            capabilities: Some(api::Capability {
                add_capabilities: add_caps.iter().map(|c| c.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    c
}

async fn sh(cri: &mut CriClient, id: &str, script: &str) -> String {
    let out = exec(cri, id, &["sh", "-c", script], 30)
        .await
        .expect("ExecSync");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A host path no container should be able to create: in the host's /tmp (sticky and
/// world-writable, so even a user-namespaced root could write there if it reached it).
fn host_target(what: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "berth-escape-{what}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// From a container with CAP_SYS_PTRACE in a pod-shared PID namespace, PID 1 (berth's pause
/// process) is ptrace-accessible; its root, working directory and open descriptors must lead
/// nowhere: an empty root of its own, no host file open. Both without and with a pod user
/// namespace.
#[tokio::test]
async fn the_pause_process_leads_nowhere_from_a_ptrace_container() {
    let (d, mut cri, image) = daemon("").await;
    for userns in [false, true] {
        let ns = shared_pid(userns);
        let name = if userns { "pause-userns" } else { "pause" };
        let config = pod_config_with_namespaces(name, &d.dir.path().join("logs"), ns.clone());
        let pod = run_pod(&mut cri, config).await;
        let c = container_config("attacker", &image, &["sleep", "1000"]);
        let id = start_container(&mut cri, &pod, in_namespaces(c, &ns, &["SYS_PTRACE"])).await;

        let (via_root, via_cwd) = (host_target("root"), host_target("cwd"));
        let mark = format!("berth-mark-{}", std::process::id());
        let script = format!(
            "tr '\\0' ' ' < /proc/1/cmdline; echo\n\
             echo x > /proc/1/root{root} 2>/dev/null && echo root-write=BROKEN\n\
             echo x > /proc/1/cwd{cwd} 2>/dev/null && echo cwd-write=BROKEN\n\
             ls -A /proc/1/root/ >/dev/null && echo root-listed\n\
             echo \"root-entries=$(ls -A /proc/1/root/ /proc/1/cwd/ 2>&1 | grep -v ':$' | tr '\\n' ' ')\"\n\
             ls /proc/1/fd/ >/dev/null && echo fds-listed\n\
             for f in /proc/1/fd/*; do t=$(readlink $f); echo \"fd=$t\"; \
               case $t in /*) echo {mark} >> $f 2>/dev/null;; esac; done\n\
             echo x >> /proc/1/exe 2>/dev/null && echo exe-write=BROKEN\n",
            root = via_root.display(),
            cwd = via_cwd.display(),
        );
        let out = sh(&mut cri, &id, &script).await;
        assert!(out.starts_with("berth-shim pause"), "{name}: {out}");
        // The attacker does reach PID 1 (the test would prove nothing otherwise) ...
        assert!(
            out.contains("root-listed") && out.contains("fds-listed"),
            "{name}: {out}"
        );
        // ... but finds an empty root, and no descriptor of a host file.
        assert!(!out.contains("BROKEN"), "{name}: {out}");
        assert!(!via_root.exists(), "{name}: wrote {}", via_root.display());
        assert!(!via_cwd.exists(), "{name}: wrote {}", via_cwd.display());
        let entries = out.lines().find_map(|l| l.strip_prefix("root-entries="));
        assert_eq!(entries.map(str::trim), Some(""), "{name}: {out}");
        for fd in out.lines().filter_map(|l| l.strip_prefix("fd=")) {
            assert!(
                fd.starts_with("pipe:") || fd.starts_with("anon_inode:"),
                "{name}: the pause process holds {fd}: {out}"
            );
        }
        let shim_log = d.dir.path().join(format!("state/pods/{}/shim.log", pod.id));
        let log = std::fs::read_to_string(&shim_log).unwrap_or_default();
        assert!(
            !log.contains(&mark),
            "{name}: wrote into {}",
            shim_log.display()
        );
        remove_pod(&mut cri, &pod.id).await;
    }
}

/// The probe a container runs against every `berth-shim init` process it can see (a container
/// process set up and waiting to execute its program; the shim runs it as `/proc/self/exe init`,
/// so its `comm` is `exe`): none may be ptrace-accessible. (`true`, not the special builtin `:`,
/// whose failed redirection would end the shell.)
const PROBE_HELPERS: &str = "for p in /proc/[0-9]*; do \
       if [ \"$(cat $p/comm 2>/dev/null)\" = exe ]; then \
         echo found $p $(tr '\\0' ' ' < $p/cmdline); \
         readlink $p/exe >/dev/null 2>&1 && echo exe-readable=BROKEN; \
         for f in $p/fd/*; do readlink $f; done 2>/dev/null | grep -q . && echo fd-links=BROKEN; \
         cat $p/environ >/dev/null 2>&1 && echo environ-readable=BROKEN; \
         true < $p/mem 2>/dev/null && echo mem-open=BROKEN; \
         ls $p/root/ >/dev/null 2>&1 && echo root-listable=BROKEN; \
       fi; \
     done";

/// A created container waits (before its `execve`) for StartContainer with the container's
/// credentials and capabilities already in place: a sibling container with the same ones must
/// not be able to ptrace it, read its `exe` (the host's berth-shim) or its memory.
#[tokio::test]
async fn a_created_container_cannot_be_ptraced_before_it_starts() {
    let (d, mut cri, image) = daemon("").await;
    let ns = shared_pid(false);
    let config = pod_config_with_namespaces("held", &d.dir.path().join("logs"), ns.clone());
    let pod = run_pod(&mut cri, config).await;
    let c = container_config("attacker", &image, &["sleep", "1000"]);
    let attacker = start_container(&mut cri, &pod, in_namespaces(c, &ns, &[])).await;
    let held = in_namespaces(container_config("held", &image, &["true"]), &ns, &[]);
    let req = api::CreateContainerRequest {
        pod_sandbox_id: pod.id.clone(),
        config: Some(held),
        sandbox_config: Some(pod.config.clone()),
    };
    cri.runtime
        .create_container(req)
        .await
        .expect("CreateContainer");
    let out = sh(&mut cri, &attacker, PROBE_HELPERS).await;
    assert!(
        out.contains("found"),
        "the held process is not visible: {out}"
    );
    assert!(!out.contains("BROKEN"), "{out}");
    remove_pod(&mut cri, &pod.id).await;
}

/// The same for an exec'd process: the container makes its `/etc/passwd` a FIFO, so the exec
/// (which looks `HOME` up there after taking the container's credentials) waits on it before
/// its `execve`, while the container probes it; then the container releases it.
#[tokio::test]
async fn an_exec_cannot_be_ptraced_before_it_executes() {
    let (d, mut cri, image) = daemon("").await;
    let config = pod_config("exec-held", &d.dir.path().join("logs"));
    let pod = run_pod(&mut cri, config).await;
    let script = format!(
        "cp /etc/passwd /tmp/passwd && rm /etc/passwd && mkfifo /etc/passwd\n\
         while [ ! -s /tmp/result ]; do ({PROBE_HELPERS}) > /tmp/probe; \
           grep -q 'exe init' /tmp/probe && cp /tmp/probe /tmp/result; sleep 0.05; done\n\
         cat /tmp/passwd > /etc/passwd; rm /etc/passwd; cp /tmp/passwd /etc/passwd\n\
         sleep 1000"
    );
    let c = container_config("target", &image, &["sh", "-c", &script]);
    let id = start_container(&mut cri, &pod, c).await;
    // Every exec from the moment the FIFO is in place is held on it, probed and released: the
    // first one to find a result has been probed itself (or a predecessor was).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let out = loop {
        let out = sh(&mut cri, &id, "cat /tmp/result 2>/dev/null").await;
        if !out.trim().is_empty() {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "no exec was held");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        out.contains("exe init"),
        "the held exec was not seen: {out}"
    );
    assert!(!out.contains("BROKEN"), "{out}");
    remove_pod(&mut cri, &pod.id).await;
}

/// runc hands a terminal's master over a `--console-socket`: the shim's socket lives in a private
/// directory under berth's state, never at a guessable path in /tmp, where a planted file would
/// be removed (or a planted symlink followed).
#[tokio::test]
async fn runc_console_sockets_are_not_in_tmp() {
    let handlers = "runtime:\n  handlers:\n  - name: runc\n    path: /usr/sbin/runc\n";
    let (d, mut cri, image) = daemon(handlers).await;
    let config = pod_config("console", &d.dir.path().join("logs"));
    let req = api::RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: "runc".into(),
    };
    let pod_id = cri
        .runtime
        .run_pod_sandbox(req)
        .await
        .expect("RunPodSandbox")
        .into_inner()
        .pod_sandbox_id;
    let pod = Pod { id: pod_id, config };
    let shim_pid =
        std::fs::read_to_string(d.dir.path().join(format!("state/pods/{}/shim.pid", pod.id)))
            .expect("shim.pid");
    // Files planted where the shim used to put its sockets (`berth-console-<pid>-<n>.sock`).
    let planted: Vec<PathBuf> = (0..4)
        .map(|n| std::env::temp_dir().join(format!("berth-console-{}-{n}.sock", shim_pid.trim())))
        .collect();
    for path in &planted {
        std::fs::write(path, "planted\n").unwrap();
    }
    let mut c = container_config("tty", &image, &["sh", "-c", "tty; sleep 100"]);
    c.tty = true;
    c.stdin = true;
    start_container(&mut cri, &pod, c).await;
    let log = d.dir.path().join("logs/tty/0.log");
    wait_for_line(&log, " stdout F /dev/pts/").await;
    for path in &planted {
        let text = std::fs::read_to_string(path);
        let _ = std::fs::remove_file(path);
        assert_eq!(
            text.ok().as_deref(),
            Some("planted\n"),
            "{}",
            path.display()
        );
    }
    remove_pod(&mut cri, &pod.id).await;
}

async fn wait_for_line(log: &Path, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: {text}",
            log.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
