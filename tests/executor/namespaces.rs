//! Executor tests of namespaces: pid and uts, joining a named network namespace, exec into a
//! running container, and the cgroup namespace rooted by `create_with`.

use std::os::unix::fs::MetadataExt;

use oci_spec::runtime::LinuxNamespaceType;

use crate::container_support::{
    self, Bundle, Running, namespace, output, run, spec_for, stdio_pipes,
};

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
        .exec(&container.process, &process, None, stdio)
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
        .exec(&container.process, &process, None, stdio)
        .expect_err("exec must fail");
    assert!(err.to_string().contains("no-such-tool"), "{err}");
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
fn without_a_cgroup_namespace_the_own_cgroup_is_bind_mounted() {
    let bundle = Bundle::new();
    let cgroup = container_support::Cgroup::new("pids");
    let script = "grep pids /proc/self/cgroup; cat /sys/fs/cgroup/pids/cgroup.procs; \
                  mkdir /sys/fs/cgroup/pids/sub; echo rc=$?";
    let mut spec = spec_for(&bundle, &["sh", "-c", script]);
    let mut linux = spec.linux().clone().unwrap();
    let mut namespaces = linux.namespaces().clone().unwrap();
    namespaces.retain(|ns| ns.typ() != LinuxNamespaceType::Cgroup);
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
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
    created.start().expect("start");
    let out = output(pid, out, err);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].ends_with(&format!(":pids:/{}", cgroup.name())),
        "{out:?}"
    );
    assert_eq!(
        lines[1], "1",
        "the container's own cgroup (sh, then cat) is mounted: {out:?}"
    );
    assert_eq!(
        lines.last(),
        Some(&"rc=1"),
        "the cgroup mount is read-only: {out:?}"
    );
}

/// A host process given the pid `pid` (by setting the kernel's last pid just below it), as a pid
/// recycled after the container's exit would be. Retries while other forks take the pid first.
fn process_with_pid(pid: i32) -> std::process::Child {
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string())
            .expect("write ns_last_pid (root)");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        if child.id() == pid.unsigned_abs() {
            return child;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not recycle pid {pid}");
}

#[test]
fn exec_never_joins_a_recycled_pid() {
    let bundle = Bundle::new();
    let spec = spec_for(&bundle, &["sleep", "30"]);
    let container = Running::start(&bundle, &spec);
    let pid = container.pid;
    let target = container.process.try_clone().unwrap();
    drop(container); // killed and reaped: its pid is free
    let mut stand_in = process_with_pid(pid);
    let mut process = spec.process().clone().unwrap();
    process.set_args(Some(vec!["true".into()]));
    let (stdio, _out, _err) = stdio_pipes();
    let joined = bundle.executor().exec(&target, &process, None, stdio);
    let _ = stand_in.kill();
    let _ = stand_in.wait();
    let err = joined.expect_err("exec joined the process that took the container's pid");
    assert!(
        matches!(err, berth::exec::ExecError::ContainerExited(p) if p == pid),
        "{err}"
    );
    assert!(err.to_string().contains("has exited"), "{err}");
}
