//! `berth-shim hold`: the process that keeps a container's systemd scope (and its
//! `memory.events`) until the shim has read how the container ended (`cgroup/hold.rs` says why).
//! It does nothing but wait: its stdin is a pipe whose other end the shim keeps in the
//! container's record, and it exits when that pipe hangs up, which happens when the shim has
//! recorded the exit, forgets the container, or dies itself. Like the pause process it closes
//! every inherited descriptor and confines itself (`confine.rs`) before it reports ready, so it
//! holds nothing of the host; only then is it moved into the container's cgroup, so what it
//! touched while starting is not charged to the container.

use std::io::{PipeWriter, Read, Write};
use std::os::unix::process::CommandExt;

use crate::cgroup::Cgroup;

/// Entry point of `berth-shim hold`; never returns.
pub fn hold_main() -> ! {
    if let Err(e) = crate::sys::fd::close_range(3, u32::MAX) {
        fail(&format!("close inherited descriptors: {e}"));
    }
    if let Err(message) = super::confine::confine() {
        fail(&message);
    }
    let reported = std::io::stdout().write_all(b"ok\n");
    if let Err(e) = reported.and_then(|()| std::io::stdout().flush()) {
        eprintln!("berth-shim hold: report ready: {e}");
        std::process::exit(1);
    }
    // std's stdout and stderr treat a closed descriptor (EBADF) as a sink.
    if let Err(e) = crate::sys::fd::close_range(1, 2) {
        fail(&format!("close stdout and stderr: {e}"));
    }
    let mut lifeline = std::io::stdin();
    let mut byte = [0u8; 1];
    loop {
        match lifeline.read(&mut byte) {
            Ok(0) => std::process::exit(0),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // The shim never writes; anything else ends the hold too.
            Ok(_) | Err(_) => std::process::exit(0),
        }
    }
}

fn fail(message: &str) -> ! {
    println!("{message}");
    std::process::exit(1);
}

/// A live hold: dropping it lets the process go (it exits, the reaper's sweep reaps it, and
/// systemd collects the scope once the container's processes are gone too).
#[derive(Debug)]
pub(crate) struct Hold {
    pid: u32,
    _lifeline: PipeWriter,
}

impl Hold {
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// Spawns `berth-shim hold`, waits until it has confined itself and moves it into `cgroup`'s
/// hold. On failure the process is killed and reaped again; the caller must hold the
/// supervisor's gate (the reaper's sweep would otherwise race the wait).
pub(crate) fn spawn(cgroup: &Cgroup) -> Result<Hold, String> {
    let (lifeline_r, lifeline) =
        std::io::pipe().map_err(|e| format!("create the hold's lifeline: {e}"))?;
    let (mut report, report_w) =
        std::io::pipe().map_err(|e| format!("create the hold's report pipe: {e}"))?;
    let report_w2 = report_w
        .try_clone()
        .map_err(|e| format!("create the hold's report pipe: {e}"))?;
    // The command (and with it our copies of the report pipe's write end) is gone once spawned.
    let mut child = std::process::Command::new("/proc/self/exe")
        .arg0("berth-shim")
        .arg("hold")
        .stdin(lifeline_r)
        .stdout(report_w)
        .stderr(report_w2)
        .spawn()
        .map_err(|e| format!("spawn the hold process: {e}"))?;
    let mut text = String::new();
    let read = report.read_to_string(&mut text);
    let placed = match read {
        Ok(_) if text == "ok\n" => cgroup
            .hold(child.id() as i32)
            .map_err(|e| format!("place the hold process: {e}")),
        Ok(_) => Err(format!("the hold process failed: {}", text.trim())),
        Err(e) => Err(format!("read the hold process's report: {e}")),
    };
    if let Err(e) = placed {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    Ok(Hold {
        pid: child.id(),
        _lifeline: lifeline,
    })
}
