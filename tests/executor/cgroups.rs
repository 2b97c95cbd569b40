//! Executor tests of processes that join their cgroup v1 cgroup by themselves
//! (`create_in_v1_cgroup`, `exec_in_v1_cgroup`): the whole process moves, before the cgroup
//! namespace; no cgroup file reaches the program; a refused or wrong file fails the call.

use crate::container_support::{self, Bundle, Running, output, spec_for, stdio_pipes};

#[test]
fn a_process_joins_its_v1_cgroup_by_itself_before_setup() {
    let bundle = Bundle::new();
    let pids = container_support::Cgroup::new("pids");
    let memory = container_support::Cgroup::new("memory");
    let script = "grep -E ':(pids|memory):' /proc/self/cgroup; cat /sys/fs/cgroup/pids/cgroup.procs; \
         for fd in /proc/self/fd/*; do echo \"fd $(readlink $fd)\"; done";
    let spec = spec_for(&bundle, &["sh", "-c", script]);
    let (stdio, out, err) = stdio_pipes();
    let created = bundle
        .executor()
        .create_in_v1_cgroup(
            bundle.path(),
            &spec,
            stdio,
            vec![pids.tasks(), memory.tasks()],
        )
        .expect("create");
    let pid = created.pid;
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        host_view.contains(&format!("pids:/{}\n", pids.name())),
        "{host_view}"
    );
    assert!(
        host_view.contains(&format!("memory:/{}\n", memory.name())),
        "{host_view}"
    );
    assert_eq!(pids.procs().trim(), pid.to_string(), "the whole process");
    assert_eq!(memory.procs().trim(), pid.to_string(), "the whole process");
    let held = open_files(pid);
    assert!(
        !held.iter().any(|f| f.contains("cgroup")),
        "the tasks files are closed once written: {held:?}"
    );
    created.start().expect("start");
    let out = output(pid, out, err);
    assert_eq!(out.code, 0, "{out:?}");
    let (fds, lines): (Vec<&str>, Vec<&str>) =
        out.stdout.lines().partition(|l| l.starts_with("fd "));
    assert!(lines.len() >= 3, "{out:?}");
    for controller in ["memory", "pids"] {
        let root = format!(":{controller}:/");
        assert!(
            lines[..2].iter().any(|l| l.ends_with(&root)),
            "the namespace is rooted at the joined cgroup: {out:?}"
        );
    }
    assert_eq!(
        lines[2], "1",
        "the mounted hierarchy shows the container's cgroup"
    );
    assert!(fds.len() >= 3, "{out:?}");
    assert!(
        !fds.iter().any(|l| l.contains("cgroup")),
        "no cgroup file reaches the program: {out:?}"
    );
}

#[test]
fn an_exec_joins_its_v1_cgroup_by_itself() {
    let bundle = Bundle::new();
    let spec = spec_for(&bundle, &["sleep", "30"]);
    let container = Running::start(&bundle, &spec);
    let pids = container_support::Cgroup::new("pids");
    let mut process = spec.process().clone().unwrap();
    process.set_args(Some(vec!["sleep".into(), "31".into()]));
    let (stdio, _out, _err) = stdio_pipes();
    let pid = bundle
        .executor()
        .exec_in_v1_cgroup(
            &container.process,
            &process,
            None,
            None,
            stdio,
            vec![pids.tasks()],
        )
        .expect("exec");
    let _reap = Reap(pid);
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        host_view.contains(&format!("pids:/{}\n", pids.name())),
        "{host_view}"
    );
    assert_eq!(pids.procs().trim(), pid.to_string(), "the whole process");
    let held = open_files(pid);
    assert!(
        !held.iter().any(|f| f.contains("cgroup")),
        "no cgroup file reaches the program: {held:?}"
    );
    let (stdio, _out, _err) = stdio_pipes();
    let cpuset = container_support::Cgroup::new("cpuset");
    let err = bundle
        .executor()
        .exec_in_v1_cgroup(
            &container.process,
            &process,
            None,
            None,
            stdio,
            vec![cpuset.tasks()],
        )
        .expect_err("a cpuset without cpus refuses the exec");
    assert!(
        err.to_string()
            .contains(&format!("join cgroup through {}", cpuset.tasks().display())),
        "{err}"
    );
    assert_eq!(cpuset.procs(), "");
}

/// Kills and reaps an exec's process when dropped.
struct Reap(i32);

impl Drop for Reap {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
}

/// Where the descriptors of process `pid` point.
fn open_files(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the fd table")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|target| target.display().to_string())
        .collect()
}

#[test]
fn a_cgroup_the_process_cannot_join_fails_the_create() {
    let bundle = Bundle::new();
    let spec = spec_for(&bundle, &["true"]);
    let missing = std::path::PathBuf::from("/sys/fs/cgroup/pids/berth-test-missing/tasks");
    let (stdio, _out, _err) = stdio_pipes();
    let err = bundle
        .executor()
        .create_in_v1_cgroup(bundle.path(), &spec, stdio, vec![missing])
        .expect_err("create must fail");
    assert!(
        err.to_string().contains("berth-test-missing/tasks"),
        "names the file: {err}"
    );
}

/// A cpuset cgroup with no cpus yet refuses tasks: the process's own move fails, after the
/// other hierarchy took it, and the create fails naming the file instead of leaving the process
/// half placed.
#[test]
fn a_refused_move_fails_the_create_and_the_process_is_gone() {
    let bundle = Bundle::new();
    let spec = spec_for(&bundle, &["true"]);
    let pids = container_support::Cgroup::new("pids");
    let cpuset = container_support::Cgroup::new("cpuset");
    let (stdio, _out, _err) = stdio_pipes();
    let err = bundle
        .executor()
        .create_in_v1_cgroup(
            bundle.path(),
            &spec,
            stdio,
            vec![pids.tasks(), cpuset.tasks()],
        )
        .expect_err("create must fail");
    let message = err.to_string();
    assert!(
        message.contains(&format!("join cgroup through {}", cpuset.tasks().display())),
        "names the file: {message}"
    );
    assert!(message.contains("No space left on device"), "{message}");
    assert_eq!(pids.procs(), "", "the process is gone");
    assert_eq!(cpuset.procs(), "");
}

/// Only a `tasks` file on a cgroup v1 filesystem is taken: a `0` written anywhere else would
/// "succeed" and leave the process in the caller's cgroup.
#[test]
fn a_tasks_path_that_is_not_a_cgroup_file_is_refused() {
    let bundle = Bundle::new();
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("tasks");
    std::fs::write(&fake, "").unwrap();
    let procs = std::path::PathBuf::from("/sys/fs/cgroup/pids/cgroup.procs");
    for (path, why) in [
        (&fake, "not on a cgroup v1 filesystem"),
        (&procs, "not a `tasks` file"),
    ] {
        let spec = spec_for(&bundle, &["true"]);
        let (stdio, _out, _err) = stdio_pipes();
        let err = bundle
            .executor()
            .create_in_v1_cgroup(bundle.path(), &spec, stdio, vec![path.clone()])
            .expect_err("create must fail");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(why), "{message}");
    }
    assert_eq!(
        std::fs::read_to_string(&fake).unwrap(),
        "",
        "nothing written"
    );
}
