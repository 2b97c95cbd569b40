//! Helpers for the executor tests: a busybox rootfs in a bundle, a minimal spec, stdio pipes,
//! a network namespace and a running container, each cleaned up on drop.

#![allow(dead_code)] // not every test uses every helper

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth::exec::{Executor, Stdio, set_child_subreaper};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, LinuxNamespace, LinuxNamespaceType, Spec,
};

/// Busybox applets linked into the rootfs's /bin.
const APPLETS: &[&str] = &[
    "sh", "cat", "id", "ls", "hostname", "sleep", "echo", "touch", "mount", "grep", "ps",
    "readlink", "stat", "true", "pwd", "test",
];

/// What `ls /` shows in a container of this rootfs.
pub const ROOT_ENTRIES: &[&str] = &["bin", "dev", "etc", "proc", "root", "sys", "tmp"];

/// A bundle directory with a busybox rootfs at `rootfs/`.
pub struct Bundle {
    dir: tempfile::TempDir,
    executor: Executor,
}

impl Bundle {
    pub fn new() -> Bundle {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the executor tests must run as root"
        );
        set_child_subreaper().expect("become a child subreaper");
        let dir = tempfile::Builder::new()
            .prefix("berth-exec-")
            .tempdir()
            .expect("bundle dir");
        let rootfs = dir.path().join("rootfs");
        for sub in ["bin", "dev", "etc", "proc", "root", "sys", "tmp"] {
            std::fs::create_dir_all(rootfs.join(sub)).expect("rootfs dir");
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("copy /bin/busybox (install busybox-static)");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
                .expect("applet link");
        }
        let passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n";
        std::fs::write(rootfs.join("etc/passwd"), passwd).expect("passwd");
        let group = "root:x:0:\ng10:x:10:\ng20:x:20:\napp:x:1000:\n";
        std::fs::write(rootfs.join("etc/group"), group).expect("group");
        let executor = Executor::new(env!("CARGO_BIN_EXE_berth-shim"));
        Bundle { dir, executor }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }
}

/// A namespace entry of the spec.
pub fn namespace(kind: LinuxNamespaceType, path: Option<&Path>) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(kind);
    ns.set_path(path.map(Path::to_path_buf));
    ns
}

/// The same capabilities in every set but ambient (empty).
pub fn cap_set(caps: &[Capability]) -> LinuxCapabilities {
    let set: Capabilities = caps.iter().copied().collect();
    let mut c = LinuxCapabilities::default();
    c.set_bounding(Some(set.clone()));
    c.set_effective(Some(set.clone()));
    c.set_permitted(Some(set.clone()));
    c.set_inheritable(Some(set));
    c.set_ambient(Some(Capabilities::new()));
    c
}

/// oci-spec's default spec (new pid, net, ipc, uts, mount and cgroup namespaces; proc, dev, pts,
/// shm, mqueue, sysfs and cgroup mounts; masked and read-only paths) on the bundle's rootfs,
/// writable, running `args`.
pub fn spec_for(bundle: &Bundle, args: &[&str]) -> Spec {
    let mut spec = Spec::default();
    let mut root = spec.root().clone().unwrap();
    root.set_path(bundle.rootfs());
    root.set_readonly(Some(false));
    spec.set_root(Some(root));
    spec.set_hostname(Some("berth-test".to_string()));
    let mut process = spec.process().clone().unwrap();
    process.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
    process.set_env(Some(vec!["PATH=/bin".to_string()]));
    spec.set_process(Some(process));
    spec
}

/// Stdio whose stdout and stderr are pipes read by the test.
pub fn stdio_pipes() -> (Stdio, std::io::PipeReader, std::io::PipeReader) {
    let (out_r, out_w) = std::io::pipe().expect("pipe");
    let (err_r, err_w) = std::io::pipe().expect("pipe");
    (Stdio::pipes(None, out_w.into(), err_w.into()), out_r, err_r)
}

/// What a finished container printed and its exit code.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Waits for `pid` and returns its exit code (128 + signal when killed).
pub fn wait_exit(pid: i32) -> i32 {
    match waitpid(Pid::from_raw(pid), None).expect("waitpid") {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        other => panic!("unexpected wait status {other:?}"),
    }
}

/// Reads both pipes to the end, then reaps `pid`.
pub fn output(pid: i32, mut out: std::io::PipeReader, mut err: std::io::PipeReader) -> Output {
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).expect("read stderr");
        s
    });
    let mut stdout = String::new();
    out.read_to_string(&mut stdout).expect("read stdout");
    let stderr = stderr.join().expect("stderr reader");
    Output {
        code: wait_exit(pid),
        stdout,
        stderr,
    }
}

/// Creates, starts and waits for a container; returns its output.
pub fn run(bundle: &Bundle, spec: Spec) -> Output {
    let (stdio, out, err) = stdio_pipes();
    let created = bundle
        .executor()
        .create(bundle.path(), &spec, stdio)
        .expect("create");
    let pid = created.pid;
    created.start().expect("start");
    output(pid, out, err)
}

/// Everything written to a pty master until the slave side is closed.
pub fn read_pty(master: OwnedFd) -> String {
    let mut file = std::fs::File::from(master);
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            // EIO: every slave descriptor is closed.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) => panic!("read pty: {e}"),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Whether this process holds CAP_SYS_RESOURCE (lowering oom_score_adj needs it).
pub fn has_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    u64::from_str_radix(eff, 16).unwrap() & (1 << 24) != 0
}

/// A started container, killed and reaped on drop.
pub struct Running {
    pub pid: i32,
    /// The process held by a pidfd, for execs.
    pub process: berth::exec::ContainerProcess,
    _out: std::io::PipeReader,
    _err: std::io::PipeReader,
}

impl Running {
    pub fn start(bundle: &Bundle, spec: &Spec) -> Running {
        let (stdio, out, err) = stdio_pipes();
        let created = bundle
            .executor()
            .create(bundle.path(), spec, stdio)
            .expect("create");
        let pid = created.pid;
        let process = created.process().expect("pidfd");
        created.start().expect("start");
        Running {
            pid,
            process,
            _out: out,
            _err: err,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(self.pid), None);
    }
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct NetNs {
    name: String,
}

impl NetNs {
    pub fn new() -> NetNs {
        let name = format!("berth-test-{:08x}", rand::random::<u32>());
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add");
        assert!(status.success(), "ip netns add {name} failed");
        NetNs { name }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A cgroup directory in one hierarchy (v1 controller name, or "" on a cgroup v2 host), removed on
/// drop once empty.
pub struct Cgroup {
    dir: PathBuf,
    name: String,
}

impl Cgroup {
    pub fn new(controller: &str) -> Cgroup {
        let name = format!("berth-test-{:08x}", rand::random::<u32>());
        let dir = Path::new("/sys/fs/cgroup").join(controller).join(&name);
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("create cgroup {}: {e}", dir.display()));
        Cgroup { dir, name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its `tasks` file, through which a thread moves itself in.
    pub fn tasks(&self) -> PathBuf {
        self.dir.join("tasks")
    }

    /// The pids in it.
    pub fn procs(&self) -> String {
        std::fs::read_to_string(self.dir.join("cgroup.procs")).expect("read cgroup.procs")
    }

    pub fn add(&self, pid: i32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .expect("move pid into cgroup");
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
