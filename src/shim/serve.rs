//! The serving part of `berth-shim serve`: a current-thread tokio runtime (one thread, plus
//! blocking threads only while an executor call runs), the SIGCHLD reaper, and the Shim gRPC
//! service on `<pod dir>/shim.sock` (mode 0600) until Shutdown.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_stream::wrappers::UnixListenerStream;

use super::daemon::{Prepared, Ready};
use super::error::StartupError;
use super::reaper;
use super::service::Service;
use super::supervisor::Supervisor;
use crate::exec::Executor;
use crate::shimapi::args::ServeArgs;
use crate::shimapi::proto::shim_server::ShimServer;

/// How long in-flight replies (Shutdown's own) may take once the exit was requested.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// At most this many executor calls run at once; more wait for a thread.
const BLOCKING_THREADS: usize = 8;
/// An idle blocking thread exits after this long.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Builds the runtime and serves until Shutdown. Reports readiness (or the failure) on `ready`.
pub(crate) fn run(args: ServeArgs, prepared: Prepared, ready: Ready) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(serve(args, prepared, ready)),
        Err(e) => abort(prepared, ready, StartupError::Runtime(e)),
    }
}

/// Undoes the startup and reports why it failed.
fn abort(mut prepared: Prepared, ready: Ready, error: StartupError) -> ExitCode {
    ready.fail(&error);
    if let Err(e) = prepared.pins.remove() {
        tracing::warn!("undo namespace pins: {e}");
    }
    let _ = std::fs::remove_file(prepared.dir.join(crate::shimapi::PID_FILE));
    ExitCode::FAILURE
}

async fn serve(args: ServeArgs, prepared: Prepared, ready: Ready) -> ExitCode {
    let socket = prepared.dir.join(crate::shimapi::SOCKET);
    let sigchld = match signal(SignalKind::child()) {
        Ok(sigchld) => sigchld,
        Err(e) => return abort(prepared, ready, StartupError::Sigchld(e)),
    };
    let listener = match bind(&socket) {
        Ok(listener) => listener,
        Err(e) => return abort(prepared, ready, e),
    };
    let Prepared { dir, pins } = prepared;
    let executor = Executor::new("/proc/self/exe");
    let sup = Arc::new(Supervisor::new(args.id, executor, pins));
    tokio::spawn(reaper::run(sup.clone(), sigchld));
    ready.ok();
    tracing::info!(
        pod_id = sup.pod_id,
        socket = %socket.display(),
        namespaces = ?sup.namespaces(),
        "berth-shim serving"
    );

    let stop = sup.clone();
    let server = tonic::transport::Server::builder()
        .add_service(ShimServer::new(Service::new(sup.clone())))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            stop.exit_requested().await
        });
    let result = tokio::select! {
        result = server => result,
        // An open Events stream would hold a graceful stop forever.
        () = async {
            sup.exit_requested().await;
            tokio::time::sleep(EXIT_GRACE).await;
        } => Ok(()),
    };
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(dir.join(crate::shimapi::PID_FILE));
    match result {
        Ok(()) => {
            tracing::info!("berth-shim exiting");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("serve {}: {e}", socket.display());
            ExitCode::FAILURE
        }
    }
}

/// Binds the socket, mode 0600 from the start (umask), replacing a stale socket file (the
/// startup checked that no live shim answers on it).
fn bind(socket: &Path) -> Result<UnixListener, StartupError> {
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StartupError::io("remove stale socket", socket)(e)),
    }
    use nix::sys::stat::{Mode, umask};
    // Still one thread: nothing else creates files while the mask is narrowed.
    let old = umask(Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(socket);
    umask(old);
    listener.map_err(StartupError::io("bind", socket))
}
