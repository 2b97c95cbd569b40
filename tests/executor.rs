//! Integration tests of the built-in executor (`berth::exec`): real containers from a busybox
//! rootfs, created through the real `berth-shim init` helper. They need root; a test that cannot
//! set up what it needs fails.

mod container_support;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use berth::exec::{ExecError, Stdio};
use container_support::{
    Bundle, Running, cap_set, namespace, output, run, spec_for, stdio_pipes, wait_exit,
};
use oci_spec::runtime::{
    Capability, LinuxNamespaceType, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
};

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
fn hostname_pid_namespace_and_root_view() {
    let bundle = Bundle::new();
    let script = "hostname; echo $$; ls /";
    let out = run(&bundle, spec_for(&bundle, &["sh", "-c", script]));
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "berth-test");
    assert_eq!(lines[1], "1", "the process is pid 1 of a new pid namespace");
    let mut entries: Vec<&str> = lines[2..]
        .iter()
        .flat_map(|l| l.split_whitespace())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        container_support::ROOT_ENTRIES,
        "only the rootfs is visible"
    );
}

#[test]
fn proc_and_dev_work() {
    let bundle = Bundle::new();
    let script = "echo gone > /dev/null && test -c /dev/zero && readlink /dev/stdout && \
                  cat /proc/1/cmdline && echo && grep -c . /proc/mounts";
    let out = run(&bundle, spec_for(&bundle, &["sh", "-c", script]));
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "/proc/self/fd/1");
    assert!(lines[1].starts_with("sh\0-c\0"), "{:?}", lines[1]);
}

#[test]
fn read_only_bind_mount_from_the_host() {
    let bundle = Bundle::new();
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("f"), "hello\n").unwrap();
    let mut spec = spec_for(
        &bundle,
        &["sh", "-c", "cat /data/f; touch /data/new; echo rc=$?"],
    );
    let mut mounts = spec.mounts().clone().unwrap();
    let bind = |dest: &str, ro: bool| {
        let mut options = vec!["rbind".to_string(), "nosuid".to_string()];
        if ro {
            options.push("ro".to_string());
        }
        MountBuilder::default()
            .destination(dest)
            .typ("bind")
            .source(host.path())
            .options(options)
            .build()
            .unwrap()
    };
    mounts.push(bind("/data", true));
    spec.set_mounts(Some(mounts));
    let out = run(&bundle, spec);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello\nrc=1\n");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
    assert!(!host.path().join("new").exists());
}

#[test]
fn readonly_root() {
    let bundle = Bundle::new();
    let mut spec = spec_for(
        &bundle,
        &["sh", "-c", "touch /x; echo rc=$?; echo ok > /dev/null"],
    );
    let mut root = spec.root().clone().unwrap();
    root.set_readonly(Some(true));
    spec.set_root(Some(root));
    let out = run(&bundle, spec);
    assert_eq!(out.stdout, "rc=1\n", "{out:?}");
    assert!(!bundle.rootfs().join("x").exists());
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
fn masked_paths_are_empty() {
    let bundle = Bundle::new();
    let host_firmware = std::fs::read_dir("/sys/firmware")
        .expect("/sys/firmware")
        .count();
    assert!(
        host_firmware > 0,
        "the host's /sys/firmware must not be empty for this test"
    );
    let script = "cat /proc/kcore; ls -A /sys/firmware; echo end";
    let out = run(&bundle, spec_for(&bundle, &["sh", "-c", script]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout, "end\n",
        "/proc/kcore and /sys/firmware are masked"
    );
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
fn setup_errors_name_the_step() {
    let bundle = Bundle::new();
    let mut spec = spec_for(&bundle, &["true"]);
    let mut mounts = spec.mounts().clone().unwrap();
    let bogus = MountBuilder::default()
        .destination("/bogus")
        .typ("nosuchfs")
        .source("x")
        .build()
        .unwrap();
    mounts.push(bogus);
    spec.set_mounts(Some(mounts));
    let (stdio, _out, _err) = stdio_pipes();
    let err = bundle
        .executor()
        .create(bundle.path(), &spec, stdio)
        .expect_err("create must fail");
    let msg = err.to_string();
    assert!(msg.contains("mount nosuchfs on /bogus"), "{msg}");
    assert!(msg.contains("ENODEV"), "{msg}");
}

#[test]
fn symlinks_in_the_image_cannot_redirect_mounts_outside() {
    let bundle = Bundle::new();
    let outside = tempfile::tempdir().expect("outside dir");
    std::os::unix::fs::symlink(outside.path(), bundle.rootfs().join("escape")).unwrap();
    let mut spec = spec_for(&bundle, &["grep", "-c", " tmpfs ", "/proc/self/mountinfo"]);
    let mut mounts = spec.mounts().clone().unwrap();
    let tmpfs = MountBuilder::default()
        .destination("/escape/sub")
        .typ("tmpfs")
        .source("tmpfs")
        .build()
        .unwrap();
    mounts.push(tmpfs);
    spec.set_mounts(Some(mounts));
    let out = run(&bundle, spec);
    assert_eq!(out.code, 0, "{out:?}");
    // The absolute symlink was resolved inside the rootfs: the directories were created there.
    let inside = bundle
        .rootfs()
        .join(outside.path().strip_prefix("/").unwrap())
        .join("sub");
    assert!(inside.is_dir(), "mount point not created inside the rootfs");
    assert!(
        !outside.path().join("sub").exists(),
        "mount point created outside the rootfs"
    );
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
fn joins_an_existing_network_namespace() {
    let bundle = Bundle::new();
    let netns = container_support::NetNs::new();
    let mut spec = spec_for(
        &bundle,
        &["sh", "-c", "readlink /proc/self/ns/net; cat /proc/net/dev"],
    );
    let mut linux = spec.linux().clone().unwrap();
    let mut namespaces = linux.namespaces().clone().unwrap();
    namespaces.retain(|ns| ns.typ() != LinuxNamespaceType::Network);
    namespaces.push(namespace(LinuxNamespaceType::Network, Some(&netns.path())));
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    let out = run(&bundle, spec);
    assert_eq!(out.code, 0, "{out:?}");
    let inode = std::fs::metadata(netns.path()).unwrap().ino();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], format!("net:[{inode}]"));
    let interfaces: Vec<&str> = lines[3..]
        .iter()
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "{out:?}");
}

#[test]
fn exec_runs_in_the_container_namespaces() {
    let bundle = Bundle::new();
    let spec = spec_for(&bundle, &["sleep", "30"]);
    let container = Running::start(&bundle, &spec);
    let mut process = spec.process().clone().unwrap();
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "cat /proc/1/cmdline; echo; echo $$; hostname; ls /; readlink /proc/self/ns/mnt; readlink /proc/1/ns/mnt".into(),
    ]));
    let (stdio, out, err) = stdio_pipes();
    let pid = bundle
        .executor()
        .exec(container.pid, &process, stdio)
        .expect("exec");
    let out = output(pid, out, err);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "sleep\x0030\x00");
    assert_ne!(lines[1], "1");
    assert_eq!(lines[2], "berth-test");
    let n = lines.len();
    assert_eq!(lines[n - 2], lines[n - 1], "same mount namespace as pid 1");

    process.set_args(Some(vec!["no-such-tool".into()]));
    let (stdio, _out, _err) = stdio_pipes();
    let err = bundle
        .executor()
        .exec(container.pid, &process, stdio)
        .expect_err("exec must fail");
    assert!(err.to_string().contains("no-such-tool"), "{err}");
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
fn cgroup_namespace_is_rooted_where_the_hook_placed_the_process() {
    let bundle = Bundle::new();
    let cgroup = container_support::Cgroup::new("pids");
    let script = "grep pids /proc/self/cgroup; cat /sys/fs/cgroup/pids/cgroup.procs";
    let spec = spec_for(&bundle, &["sh", "-c", script]);
    let (stdio, out, err) = stdio_pipes();
    let place = |pid: i32| {
        cgroup.add(pid);
        Ok(())
    };
    let created = bundle
        .executor()
        .create_with(bundle.path(), &spec, stdio, place)
        .expect("create");
    let pid = created.pid;
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        host_view.contains(&format!("pids:/{}", cgroup.name())),
        "{host_view}"
    );
    created.start().expect("start");
    let out = output(pid, out, err);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].ends_with(":pids:/"),
        "namespace root is the placed cgroup: {out:?}"
    );
    assert_eq!(
        lines[1], "1",
        "the mounted hierarchy shows the container's cgroup"
    );
}

#[test]
fn recursive_read_only_binds_tmpfs_options_and_readonly_paths() {
    let bundle = Bundle::new();
    let host = tempfile::tempdir().expect("host dir");
    let script = "touch /rro/x; echo rro=$?; stat -c %a /scratch; touch /scratch/ok && echo tmpfs-rw; \
                  grep -c ' /proc/sys ro,' /proc/self/mountinfo";
    let mut spec = spec_for(&bundle, &["sh", "-c", script]);
    let mut mounts = spec.mounts().clone().unwrap();
    let opts = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    mounts.push(
        MountBuilder::default()
            .destination("/rro")
            .typ("bind")
            .source(host.path())
            .options(opts(&["rbind", "rro"]))
            .build()
            .unwrap(),
    );
    mounts.push(
        MountBuilder::default()
            .destination("/scratch")
            .typ("tmpfs")
            .source("tmpfs")
            .options(opts(&["nosuid", "nodev", "size=1m", "mode=1777"]))
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    let out = run(&bundle, spec);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "rro=1\n1777\ntmpfs-rw\n1\n", "{out:?}");
    assert!(!host.path().join("x").exists());
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
