//! Test harness: a real `berthd` process on a temp dir, reached through the CRI client.

#![allow(dead_code)] // each test binary uses a different part of the harness

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
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("state/berth.sock");
        let config_path = dir.path().join("config.yaml");
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
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("berthd did not open {} within 20s", self.socket.display());
    }

    pub async fn client(&self) -> CriClient {
        berth::client::connect(&self.socket)
            .await
            .expect("connect to berthd")
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
