//! Integration tests of the built-in executor (`berth::exec`): real containers from a busybox
//! rootfs, created through the real `berth-shim init` helper. They need root; a test that cannot
//! set up what it needs fails. This file covers the process (exit code, credentials, limits,
//! start/exec errors, stdio); `executor/` holds the mount, namespace and cgroup tests.

#[path = "executor/cgroups.rs"]
mod cgroups;
mod container_support;
#[path = "executor/mounts.rs"]
mod mounts;
#[path = "executor/namespaces.rs"]
mod namespaces;

use std::path::PathBuf;
use std::time::Duration;

use berth::exec::{ExecError, Stdio};
use container_support::{Bundle, cap_set, output, run, spec_for, stdio_pipes, wait_exit};
use oci_spec::runtime::{Capability, PosixRlimitBuilder, PosixRlimitType};

#[test]
fn exit_code_propagates() {
    let bundle = Bundle::new();
    let out = run(
        &bundle,
        spec_for(&bundle, &["sh", "-c", "echo out; exit 7"]),
    );
    assert_eq!(out.code, 7, "{out:?}");
    assert_eq!(out.stdout, "out\n");
}

#[test]
fn user_and_groups_come_from_the_spec() {
    let bundle = Bundle::new();
    let mut spec = spec_for(&bundle, &["sh", "-c", "id -u; id -g; id -G; id -un"]);
    let mut process = spec.process().clone().unwrap();
    let mut user = process.user().clone();
    user.set_uid(1000);
    user.set_gid(1000);
    user.set_additional_gids(Some(vec![10, 20]));
    process.set_user(user);
    spec.set_process(Some(process));
    let out = run(&bundle, spec);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    let mut groups: Vec<&str> = lines[2].split(' ').collect();
    groups.sort();
    assert_eq!(groups, ["10", "1000", "20"]);
    assert_eq!(lines[3], "app");
}

#[test]
fn capabilities_and_no_new_privs() {
    let bundle = Bundle::new();
    let mut spec = spec_for(
        &bundle,
        &[
            "grep",
            "-E",
            "^(CapEff|CapBnd|CapAmb|NoNewPrivs)",
            "/proc/self/status",
        ],
    );
    let mut process = spec.process().clone().unwrap();
    process.set_capabilities(Some(cap_set(&[Capability::Chown])));
    process.set_no_new_privileges(Some(true));
    spec.set_process(Some(process));
    let out = run(&bundle, spec);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("CapEff:\t0000000000000001"), "{out:?}");
    assert!(out.stdout.contains("CapBnd:\t0000000000000001"), "{out:?}");
    assert!(out.stdout.contains("NoNewPrivs:\t1"), "{out:?}");

    let mut spec = spec_for(&bundle, &["grep", "NoNewPrivs", "/proc/self/status"]);
    let mut process = spec.process().clone().unwrap();
    process.set_no_new_privileges(Some(false));
    spec.set_process(Some(process));
    let out = run(&bundle, spec);
    assert_eq!(out.stdout, "NoNewPrivs:\t0\n", "{out:?}");
}

#[test]
fn non_root_user_gets_ambient_capabilities_only() {
    let bundle = Bundle::new();
    let mut spec = spec_for(&bundle, &["grep", "CapEff", "/proc/self/status"]);
    let mut process = spec.process().clone().unwrap();
    let mut user = process.user().clone();
    user.set_uid(1000);
    user.set_gid(1000);
    process.set_user(user);
    let mut caps = cap_set(&[Capability::Chown, Capability::NetBindService]);
    caps.set_ambient(Some([Capability::NetBindService].into_iter().collect()));
    process.set_capabilities(Some(caps));
    spec.set_process(Some(process));
    let out = run(&bundle, spec);
    assert_eq!(out.stdout, "CapEff:\t0000000000000400\n", "{out:?}");
}

#[test]
fn the_process_runs_only_after_start() {
    let bundle = Bundle::new();
    let spec = spec_for(&bundle, &["touch", "/marker"]);
    let (stdio, _out, _err) = stdio_pipes();
    let created = bundle
        .executor()
        .create(bundle.path(), &spec, stdio)
        .expect("create");
    let pid = created.pid;
    std::thread::sleep(Duration::from_millis(300));
    let marker = bundle.rootfs().join("marker");
    assert!(!marker.exists(), "ran before start");
    created.start().expect("start");
    assert_eq!(wait_exit(pid), 0);
    assert!(marker.exists());
}

#[test]
fn missing_executable_is_a_start_error() {
    let bundle = Bundle::new();
    let spec = spec_for(&bundle, &["no-such-program", "arg"]);
    let (stdio, _out, _err) = stdio_pipes();
    let created = bundle
        .executor()
        .create(bundle.path(), &spec, stdio)
        .expect("create");
    let err = created.start().expect_err("start must fail");
    let msg = err.to_string();
    assert!(matches!(err, ExecError::Start(_)), "{err:?}");
    assert!(msg.contains("no-such-program"), "{msg}");
    assert!(msg.contains("executable file not found in $PATH"), "{msg}");
}

#[test]
fn rlimits_oom_score_sysctls_env_and_cwd() {
    let bundle = Bundle::new();
    let script = "ulimit -n; cat /proc/self/oom_score_adj; cat /proc/sys/net/ipv4/ip_forward; pwd; echo $FOO $HOME";
    let mut spec = spec_for(&bundle, &["sh", "-c", script]);
    let mut process = spec.process().clone().unwrap();
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(512u64)
        .hard(512u64)
        .build()
        .unwrap();
    process.set_rlimits(Some(vec![nofile]));
    process.set_oom_score_adj(Some(-999));
    process.set_cwd(PathBuf::from("/work/dir"));
    process.set_env(Some(vec!["PATH=/bin".to_string(), "FOO=bar".to_string()]));
    spec.set_process(Some(process));
    let mut linux = spec.linux().clone().unwrap();
    linux.set_sysctl(Some(
        [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
    ));
    spec.set_linux(Some(linux));
    let out = run(&bundle, spec);
    assert_eq!(out.code, 0, "{out:?}");
    // Lowering oom_score_adj needs CAP_SYS_RESOURCE; without it the value stays at ours.
    let ours = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap();
    let oom = if container_support::has_sys_resource() {
        "-999"
    } else {
        ours.trim()
    };
    assert_eq!(
        out.stdout,
        format!("512\n{oom}\n1\n/work/dir\nbar /root\n"),
        "{out:?}"
    );
}

#[test]
fn terminal_process_sees_a_tty() {
    let bundle = Bundle::new();
    let mut spec = spec_for(
        &bundle,
        &["sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo tty-yes"],
    );
    let mut process = spec.process().clone().unwrap();
    process.set_terminal(Some(true));
    spec.set_process(Some(process));
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let stdio = Stdio::tty(pty.slave).expect("tty stdio");
    let created = bundle
        .executor()
        .create(bundle.path(), &spec, stdio)
        .expect("create");
    let pid = created.pid;
    created.start().expect("start");
    let text = container_support::read_pty(pty.master);
    assert_eq!(wait_exit(pid), 0, "{text}");
    assert!(text.contains("tty-yes"), "{text:?}");
}

#[test]
fn stdin_is_passed_through() {
    use std::io::Write;
    let bundle = Bundle::new();
    let spec = spec_for(&bundle, &["cat"]);
    let (in_r, mut in_w) = std::io::pipe().expect("pipe");
    let (out_r, out_w) = std::io::pipe().expect("pipe");
    let (err_r, err_w) = std::io::pipe().expect("pipe");
    let stdio = Stdio::pipes(Some(in_r.into()), out_w.into(), err_w.into());
    let created = bundle
        .executor()
        .create(bundle.path(), &spec, stdio)
        .expect("create");
    let pid = created.pid;
    created.start().expect("start");
    in_w.write_all(b"through the pipe\n").unwrap();
    drop(in_w);
    let out = output(pid, out_r, err_r);
    assert_eq!(out.stdout, "through the pipe\n", "{out:?}");
}

#[test]
fn a_failing_hook_kills_the_process() {
    let bundle = Bundle::new();
    let spec = spec_for(&bundle, &["touch", "/marker"]);
    let (stdio, _out, _err) = stdio_pipes();
    let mut seen = 0;
    let hook = |pid: i32| {
        seen = pid;
        Err(ExecError::InvalidSpec("no cgroup for you".into()))
    };
    let err = bundle
        .executor()
        .create_with(bundle.path(), &spec, stdio, hook)
        .expect_err("create must fail");
    assert!(matches!(err, ExecError::Hook { .. }), "{err:?}");
    assert!(err.to_string().contains("no cgroup for you"), "{err}");
    assert!(seen > 0);
    let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(seen), None);
    assert_eq!(
        gone,
        Err(nix::errno::Errno::ESRCH),
        "the process was killed and reaped"
    );
    assert!(!bundle.rootfs().join("marker").exists());
}

#[test]
fn signals_start_with_default_dispositions() {
    let bundle = Bundle::new();
    let spec = spec_for(
        &bundle,
        &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"],
    );
    let out = run(&bundle, spec);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
        "{out:?}"
    );
}
