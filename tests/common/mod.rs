//! Test harness: a real `berthd` process on a temp dir, reached through the CRI client.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod build;
pub mod fake_registry;
pub mod host;
pub mod network;
pub mod node_image;
pub mod pods;
pub mod raw_h2;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::client::CriClient;

/// A berthd child process with its own root, state dir and socket. Killed on drop.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config_path: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts berthd with a config rooted in a fresh temp dir; `extra_yaml` is appended to it.
    pub fn start(extra_yaml: &str) -> Daemon {
        Daemon::start_with(|_| {}, extra_yaml)
    }

    /// [`Daemon::start`], first calling `prepare` with the temp dir (berthd's data goes to its
    /// `root` subdir: a test may mount a filesystem there).
    pub fn start_with(prepare: impl FnOnce(&Path), extra_yaml: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        prepare(dir.path());
        // Searchable by others, as on a node: containers in a user namespace reach their rootfs
        // under it as an unprivileged host id.
        let searchable = std::os::unix::fs::PermissionsExt::from_mode(0o711);
        std::fs::set_permissions(dir.path(), searchable).expect("chmod 711 the temp dir");
        let socket = dir.path().join("state/berth.sock");
        let config_path = dir.path().join("config.yaml");
        // Pods need a network: unless the test brings its own, the shared test network.
        let mut extra_yaml = extra_yaml.to_string();
        if !extra_yaml.starts_with("network:") && !extra_yaml.contains("\nnetwork:") {
            let conf_dir = dir.path().join("net.d");
            std::fs::create_dir_all(&conf_dir).expect("create net.d");
            std::fs::write(conf_dir.join("10-test.conflist"), network::SHARED_CONFLIST)
                .expect("write the test network");
            extra_yaml.push_str(&format!(
                "network:\n  conf_dir: {}\n  bin_dirs: [{}]\n",
                conf_dir.display(),
                network::PLUGIN_DIR
            ));
        }
        // This machine's disk often sits near the default reserve (15%): a test not about the
        // reserve keeps only 1% free, so its pulls and builds do not depend on the host's disk.
        if !extra_yaml.contains("disk_reserve:") {
            extra_yaml = with_image_setting(&extra_yaml, "disk_reserve: 1%");
        }
        // The VM suite runs the cgroup tests once per driver (e2e/vm/suite.sh).
        if let Ok(driver) = std::env::var("BERTH_TEST_CGROUP_DRIVER")
            && !extra_yaml.starts_with("cgroup:")
            && !extra_yaml.contains("\ncgroup:")
        {
            extra_yaml.push_str(&format!("cgroup:\n  driver: {driver}\n"));
        }
        let config = format!(
            "root_dir: {root}\nstate_dir: {state}\ngrpc:\n  socket: {socket}\nlog:\n  level: \"info,berth=debug\"\n{extra_yaml}",
            root = dir.path().join("root").display(),
            state = dir.path().join("state").display(),
            socket = socket.display(),
        );
        std::fs::write(&config_path, config).expect("write config");
        let child = spawn_berthd(&config_path);
        let daemon = Daemon {
            dir,
            socket,
            config_path,
            child,
        };
        daemon.wait_for_socket();
        daemon
    }

    fn wait_for_socket(&self) {
        // 60 s: in the e2e/vm guest (20-40x slower) the handlers' startup probes alone can take
        // 20 s with the systemd cgroup driver.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("berthd did not open {} within 60s", self.socket.display());
    }

    pub async fn client(&self) -> CriClient {
        berth::client::connect(&self.socket)
            .await
            .expect("connect to berthd")
    }

    /// berthd's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills berthd with SIGKILL: no cleanup at all, like a crash.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL berthd");
        self.child.wait().expect("reap berthd");
    }

    /// Starts berthd again on the same config and dirs.
    pub fn restart(&mut self) {
        // A child the killed berthd was starting (between fork and exec) can hold its listener
        // for a moment; connecting to the stale socket file would look like the new berthd.
        let _ = std::fs::remove_file(&self.socket);
        self.child = spawn_berthd(&self.config_path);
        self.wait_for_socket();
    }

    /// Asks berthd (if it still answers) to remove every pod, so no container outlives the
    /// test. Runs on its own thread: `Drop` may be called inside a tokio runtime.
    fn remove_all_pods(&self) {
        let socket = self.socket.clone();
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let work = async {
                    let mut cri = berth::client::connect(&socket).await.ok()?;
                    let req = berth::cri::api::ListPodSandboxRequest { filter: None };
                    let pods = cri
                        .runtime
                        .list_pod_sandbox(req)
                        .await
                        .ok()?
                        .into_inner()
                        .items;
                    for pod in pods {
                        let req = berth::cri::api::RemovePodSandboxRequest {
                            pod_sandbox_id: pod.id,
                        };
                        let _ = cri.runtime.remove_pod_sandbox(req).await;
                    }
                    Some(())
                };
                let _ = tokio::time::timeout(Duration::from_secs(30), work).await;
            });
        });
        let _ = cleanup.join();
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal berthd");
        self.child.wait().expect("wait for berthd")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.remove_all_pods();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Shims outlive berthd by design: stop those of this test's pods, then release every
        // mount left under the temp dir (the pins' shared dir, and whatever a failed test left).
        let pods = self.dir.path().join("state/pods");
        for entry in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
            let pid = std::fs::read_to_string(entry.path().join("shim.pid"));
            if let Some(pid) = pid.ok().and_then(|p| p.trim().parse::<i32>().ok()) {
                let pid = nix::unistd::Pid::from_raw(pid);
                // Its process group holds its pause process too (a pod-shared PID namespace),
                // which would otherwise outlive it and keep the pod's namespaces (and a CNI
                // veth) alive.
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        for target in mounts_under(self.dir.path()).into_iter().rev() {
            let _ = nix::mount::umount2(target.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Mount points at or below `dir`, in mount order.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

pub fn berthd_path() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berthd"))
}

pub fn spawn_berthd(config: &Path) -> Child {
    Command::new(berthd_path())
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn berthd")
}

/// `yaml` with `setting` (one `key: value` line) under its `image:` section, added if missing.
fn with_image_setting(yaml: &str, setting: &str) -> String {
    if let Some(rest) = yaml.strip_prefix("image:\n") {
        return format!("image:\n  {setting}\n{rest}");
    }
    match yaml.find("\nimage:\n") {
        Some(at) => {
            let after = at + "\nimage:\n".len();
            format!("{}  {setting}\n{}", &yaml[..after], &yaml[after..])
        }
        None if yaml.is_empty() || yaml.ends_with('\n') => format!("{yaml}image:\n  {setting}\n"),
        None => format!("{yaml}\nimage:\n  {setting}\n"),
    }
}
