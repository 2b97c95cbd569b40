//! `berth-shim serve` up to the async runtime: detach from the caller, then — still with a
//! single thread — start a session, send stdio to `<pod dir>/shim.log`, become a child
//! subreaper, create and pin the namespaces and write `shim.pid`. Only then does `serve.rs`
//! start a current-thread runtime.
//!
//! The caller (`ShimClient::spawn`) just runs the command: the process it started forks, waits
//! on a pipe until the detached child reports `ok` (socket bound) or an error message, and exits
//! 0 or 1 with that message on stderr.

use std::fmt::Display;
use std::io::{PipeReader, PipeWriter, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nix::unistd::Pid;

use super::error::StartupError;
use super::pins::Pins;
use crate::shimapi::args::ServeArgs;
use crate::sys::fork::{Forked, SingleThreaded};

/// What the detached child sends when it serves.
const READY: &str = "ok\n";

/// The detached child's end of the startup pipe.
pub(crate) struct Ready(PipeWriter);

impl Ready {
    /// Tells the waiting parent that the shim serves; the parent exits 0.
    pub fn ok(mut self) {
        let _ = self.0.write_all(READY.as_bytes());
    }

    /// Tells the waiting parent why the shim could not start; the parent prints it and exits 1.
    pub fn fail(mut self, error: &dyn Display) {
        tracing::error!("start the shim: {error}");
        let _ = write!(self.0, "{error}");
    }
}

/// What the startup prepared for the serving loop.
pub(crate) struct Prepared {
    /// The pod directory, absolute.
    pub dir: PathBuf,
    pub pins: Pins,
}

/// Entry point of `berth-shim serve`: forks, and returns the parent's exit code once the child is
/// ready or failed. The child never returns from here until the shim exits.
pub fn serve_main(args: ServeArgs) -> ExitCode {
    let single = match SingleThreaded::check() {
        Ok(single) => single,
        Err(e) => return detach_failed(&e),
    };
    let (reader, writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(e) => return detach_failed(&e),
    };
    match single.fork() {
        Err(e) => detach_failed(&e),
        Ok(Forked::Parent(child)) => {
            drop(writer);
            wait_ready(reader, child)
        }
        Ok(Forked::Child) => {
            drop(reader);
            run_detached(args, Ready(writer))
        }
    }
}

fn detach_failed(e: &dyn Display) -> ExitCode {
    eprintln!("berth-shim: detach: {e}");
    ExitCode::FAILURE
}

/// The parent: relays the child's verdict.
fn wait_ready(mut reader: PipeReader, child: Pid) -> ExitCode {
    let mut message = String::new();
    let read = reader.read_to_string(&mut message);
    if read.is_ok() && message == READY {
        return ExitCode::SUCCESS;
    }
    if message.is_empty() {
        let status = nix::sys::wait::waitpid(child, None);
        message = format!("the shim exited during startup ({status:?}); see shim.log");
    }
    eprintln!("berth-shim: {message}");
    ExitCode::FAILURE
}

/// The detached child: prepares everything that needs a single thread, then serves.
fn run_detached(args: ServeArgs, ready: Ready) -> ExitCode {
    let prepared = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(e) => {
            ready.fail(&e);
            return ExitCode::FAILURE;
        }
    };
    super::serve::run(args, prepared, ready)
}

/// The single-threaded part of the startup.
fn prepare(args: &ServeArgs) -> Result<Prepared, StartupError> {
    nix::unistd::setsid().map_err(|e| StartupError::sys("start a new session", e))?;
    std::fs::create_dir_all(&args.dir).map_err(StartupError::io("create", &args.dir))?;
    let dir = std::fs::canonicalize(&args.dir).map_err(StartupError::io("resolve", &args.dir))?;
    nix::unistd::chdir("/").map_err(|e| StartupError::sys("change directory to /", e))?;
    let socket = dir.join(crate::shimapi::SOCKET);
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return Err(StartupError::AlreadyServing { socket });
    }
    redirect_stdio(&dir.join(crate::shimapi::LOG))?;
    init_logging();
    tracing::info!(pod_id = args.id, dir = %dir.display(), "berth-shim starting");
    crate::exec::set_child_subreaper()?;
    let pins = Pins::create(&dir, &args.options())?;
    let pid_file = dir.join(crate::shimapi::PID_FILE);
    if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        let mut pins = pins;
        let _ = pins.remove();
        return Err(StartupError::io("write", pid_file)(e));
    }
    Ok(Prepared { dir, pins })
}

/// Descriptors 1 and 2 append to `log`; descriptor 0 reads `/dev/null`.
fn redirect_stdio(log: &Path) -> Result<(), StartupError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .map_err(StartupError::io("open", log))?;
    let null = std::fs::File::open("/dev/null").map_err(StartupError::io("open", "/dev/null"))?;
    let dup = |result: nix::Result<()>, what: &str| {
        result.map_err(|e| StartupError::sys(format!("redirect {what}"), e))
    };
    dup(nix::unistd::dup2_stdin(null.as_fd()), "stdin")?;
    dup(nix::unistd::dup2_stdout(file.as_fd()), "stdout")?;
    dup(nix::unistd::dup2_stderr(file.as_fd()), "stderr")?;
    Ok(())
}

/// Plain-text logging to stderr (the shim's log file) at `BERTH_LOG`'s level, `info` by default.
/// A level filter rather than an env-filter keeps the per-pod process small.
fn init_logging() {
    let level = std::env::var("BERTH_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}
