//! TCP sockets made inside another network namespace (a pod's) by one long-lived thread, so
//! port-forward connections cost no thread each and no runtime thread ever changes namespace.
//! A socket stays in the namespace it was made in; connecting it is then ordinary async I/O.
//! The thread returns to berthd's own namespace after each socket, so it pins no pod's.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::mpsc;

use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
use tokio::sync::oneshot;

struct Job {
    netns: PathBuf,
    v4: bool,
    reply: oneshot::Sender<io::Result<OwnedFd>>,
}

/// The maker thread's queue; None when the thread could not be started.
static MAKER: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();

/// A non-blocking, close-on-exec TCP socket (IPv4 or IPv6) in network namespace `netns`.
pub async fn tcp_socket_in(netns: &Path, v4: bool) -> io::Result<OwnedFd> {
    let maker = MAKER.get_or_init(start).as_ref().ok_or_else(|| {
        io::Error::other("the thread that makes sockets in pod namespaces did not start")
    })?;
    let (reply, answer) = oneshot::channel();
    let job = Job {
        netns: netns.to_path_buf(),
        v4,
        reply,
    };
    maker
        .send(job)
        .map_err(|_| io::Error::other("the pod-namespace socket thread is gone"))?;
    answer
        .await
        .map_err(|_| io::Error::other("the pod-namespace socket thread is gone"))?
}

fn start() -> Option<mpsc::Sender<Job>> {
    let own = match File::open("/proc/thread-self/ns/net") {
        Ok(f) => f,
        Err(e) => {
            tracing::error!("open berthd's network namespace: {e}");
            return None;
        }
    };
    let (tx, rx) = mpsc::channel::<Job>();
    let spawned = std::thread::Builder::new()
        .name("berth-netns-sock".into())
        .spawn(move || {
            for job in rx {
                let made = make(&job.netns, job.v4);
                let back = setns(&own, CloneFlags::CLONE_NEWNET);
                let _ = job.reply.send(made);
                if let Err(e) = back {
                    // Never make another socket from the wrong namespace.
                    tracing::error!("return to berthd's network namespace: {e}");
                    return;
                }
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::error!("start the pod-namespace socket thread: {e}");
            None
        }
    }
}

fn make(netns: &Path, v4: bool) -> io::Result<OwnedFd> {
    let ns = File::open(netns)?;
    setns(&ns, CloneFlags::CLONE_NEWNET)
        .map_err(|e| io::Error::other(format!("enter {}: {e}", netns.display())))?;
    let family = if v4 {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(io::Error::from)
}
