//! The daemon's side of the shim protocol: start a pod's shim and talk to it, in domain types.
//!
//! ```ignore
//! let shim = ShimClient::spawn(&shim_binary, &pod_id, &pod_dir, &opts).await?;  // RunPodSandbox
//! let shim = ShimClient::connect(&pod_dir).await?;                              // after a restart
//! let pid = shim.create(&CreateContainer { id, bundle, .. }).await?;
//! shim.start(&id).await?;
//! let mut exits = shim.events().await?;   // replays recorded exits first, then streams
//! ```

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::error::{Classify, Kind};
use crate::shimapi::args::ServeArgs;
use crate::shimapi::convert::stream_output;
use crate::shimapi::proto::{self, shim_client::ShimClient as GrpcClient};
use crate::shimapi::{
    ContainerState, CreateContainer, ExecOutput, ExitEvent, ShimInfo, ShimOptions, StreamInput,
    StreamOutput, StreamStart,
};

/// How long `berth-shim serve` may take to report ready.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Room for an ExecSync reply with both streams at their limit.
const MAX_MESSAGE: usize = 2 * crate::shimapi::EXEC_OUTPUT_LIMIT + 1024 * 1024;

/// The inputs of a streamed exec or attach after its start.
pub type StreamInputs = Pin<Box<dyn Stream<Item = StreamInput> + Send>>;
/// The outputs of a streamed exec or attach; the exit code last.
pub type StreamOutputs = Pin<Box<dyn Stream<Item = Result<StreamOutput, ShimError>> + Send>>;

/// A stream of container exits.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<ExitEvent, ShimError>> + Send>>;

/// What went wrong talking to a shim.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// The shim binary could not be run.
    #[error("run {}: {source}", binary.display())]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The shim reported that it could not start.
    #[error("start the shim of pod {pod_id}: {message}")]
    Start {
        /// The pod.
        pod_id: String,
        /// The shim's message (or its exit status).
        message: String,
    },
    /// The shim did not report ready in time (it was killed).
    #[error("start the shim of pod {pod_id}: not ready within {}s", SPAWN_TIMEOUT.as_secs())]
    StartTimeout {
        /// The pod.
        pod_id: String,
    },
    /// Nothing answers on the shim's socket: the shim is not running.
    #[error("connect to shim {}: {message}", socket.display())]
    Unavailable {
        /// The socket.
        socket: PathBuf,
        /// Why.
        message: String,
    },
    /// A call failed; `kind` is what the shim (or the transport) said.
    #[error("shim {call}: {message}")]
    Call {
        /// The call: `CreateContainer c1`.
        call: String,
        /// What kind of failure.
        kind: Kind,
        /// The shim's message.
        message: String,
    },
}

impl Classify for ShimError {
    fn kind(&self) -> Kind {
        match self {
            ShimError::Spawn { .. } | ShimError::Start { .. } => Kind::Internal,
            ShimError::StartTimeout { .. } => Kind::DeadlineExceeded,
            ShimError::Unavailable { .. } => Kind::Unavailable,
            ShimError::Call { kind, .. } => *kind,
        }
    }
}

/// A connection to one pod's shim. Cheap to clone; calls may run concurrently.
#[derive(Debug, Clone)]
pub struct ShimClient {
    inner: GrpcClient<Channel>,
    socket: PathBuf,
}

impl ShimClient {
    /// Starts `<shim_binary> serve` for a pod and connects to it. Returns once the shim has
    /// detached, pinned the namespaces and bound its socket (or with the shim's own error).
    pub async fn spawn(
        shim_binary: &Path,
        pod_id: &str,
        pod_dir: &Path,
        opts: &ShimOptions,
    ) -> Result<ShimClient, ShimError> {
        let args = ServeArgs::new(pod_id, pod_dir.to_path_buf(), opts);
        let mut command = tokio::process::Command::new(shim_binary);
        command
            .args(args.to_args())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(SPAWN_TIMEOUT, command.output())
            .await
            .map_err(|_| ShimError::StartTimeout {
                pod_id: pod_id.to_string(),
            })?
            .map_err(|source| ShimError::Spawn {
                binary: shim_binary.to_path_buf(),
                source,
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let message = stderr.trim().trim_start_matches("berth-shim: ");
            let message = match message.is_empty() {
                true => format!("exited with {}", output.status),
                false => message.to_string(),
            };
            return Err(ShimError::Start {
                pod_id: pod_id.to_string(),
                message,
            });
        }
        ShimClient::connect(pod_dir).await
    }

    /// Connects to the shim serving `pod_dir` (after a berthd restart). A shim that is not
    /// running is [`ShimError::Unavailable`].
    pub async fn connect(pod_dir: &Path) -> Result<ShimClient, ShimError> {
        let socket = pod_dir.join(crate::shimapi::SOCKET);
        let path = socket.clone();
        // The URI is required by tonic but unused: the connector always dials the socket.
        let channel = Endpoint::from_static("http://shim.sock")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(stream))
                }
            }))
            .await
            .map_err(|e| ShimError::Unavailable {
                socket: socket.clone(),
                message: error_chain(&e),
            })?;
        let inner = GrpcClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Ok(ShimClient { inner, socket })
    }

    /// The shim's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The shim's pid, pinned namespaces and version.
    pub async fn info(&self) -> Result<ShimInfo, ShimError> {
        let reply = self.inner.clone().info(proto::InfoRequest {}).await;
        Ok(reply.map_err(call("Info"))?.into_inner().into())
    }

    /// Creates a container (stopped before exec); returns its host pid.
    pub async fn create(&self, request: &CreateContainer) -> Result<u32, ShimError> {
        let reply = self
            .inner
            .clone()
            .create_container(proto::CreateContainerRequest::from(request))
            .await;
        let name = format!("CreateContainer {}", request.id);
        Ok(reply.map_err(call(name))?.into_inner().pid)
    }

    /// Lets a created container execute its program.
    pub async fn start(&self, id: &str) -> Result<(), ShimError> {
        let reply = self.inner.clone().start_container(container(id)).await;
        reply.map_err(call(format!("StartContainer {id}")))?;
        Ok(())
    }

    /// Sends `signal` to the container's init process, or to all its processes with `all`.
    pub async fn signal(&self, id: &str, signal: i32, all: bool) -> Result<(), ShimError> {
        let request = proto::SignalRequest {
            id: id.to_string(),
            signal,
            all,
        };
        let reply = self.inner.clone().signal(request).await;
        reply.map_err(call(format!("Signal {id} {signal}")))?;
        Ok(())
    }

    /// Forgets a container (killing it first if it still runs).
    pub async fn delete(&self, id: &str) -> Result<(), ShimError> {
        let reply = self.inner.clone().delete_container(container(id)).await;
        reply.map_err(call(format!("DeleteContainer {id}")))?;
        Ok(())
    }

    /// Every container the shim knows.
    pub async fn state(&self) -> Result<Vec<ContainerState>, ShimError> {
        let reply = self.inner.clone().state(proto::StateRequest {}).await;
        let containers = reply.map_err(call("State"))?.into_inner().containers;
        Ok(containers.into_iter().map(Into::into).collect())
    }

    /// Container exits: first every recorded exit of a container not yet deleted, then new
    /// ones as they happen. An exit may be delivered more than once (a replay after the
    /// subscriber fell behind): treat them as idempotent, keyed by container id and pid.
    pub async fn events(&self) -> Result<EventStream, ShimError> {
        let reply = self.inner.clone().events(proto::EventsRequest {}).await;
        let stream = reply.map_err(call("Events"))?.into_inner();
        Ok(Box::pin(stream.map(|item| {
            item.map(ExitEvent::from).map_err(|s| call("Events")(s))
        })))
    }

    /// Runs `args` in a running container; `timeout` zero means none (rounded up to seconds).
    pub async fn exec_sync(
        &self,
        id: &str,
        args: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ShimError> {
        let seconds = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        let request = proto::ExecSyncRequest {
            id: id.to_string(),
            args: args.to_vec(),
            timeout: i64::try_from(seconds).unwrap_or(i64::MAX),
        };
        let reply = self.inner.clone().exec_sync(request).await;
        Ok(reply
            .map_err(call(format!("ExecSync {id}")))?
            .into_inner()
            .into())
    }

    /// Runs a process in a running container with streamed stdio (`attach` false), or attaches
    /// to the container's own (`attach` true). `inputs` follow the start; the outputs end with
    /// the exit code. Dropping the outputs kills an exec'd process (detaches an attach).
    pub async fn stream(
        &self,
        attach: bool,
        start: &StreamStart,
        inputs: StreamInputs,
    ) -> Result<StreamOutputs, ShimError> {
        let first = proto::ExecInput {
            input: Some(proto::exec_input::Input::Start(start.into())),
        };
        // Through a channel: tonic wants a request stream whose type it can prove Send.
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let _ = tx.try_send(first);
        tokio::spawn(async move {
            let mut inputs = inputs;
            while let Some(input) = inputs.next().await {
                if tx.send(input.into()).await.is_err() {
                    break;
                }
            }
        });
        let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
        let name = format!("{} {}", if attach { "Attach" } else { "Exec" }, start.id);
        let mut client = self.inner.clone();
        let reply = match attach {
            true => client.attach(requests).await,
            false => client.exec(requests).await,
        };
        let outputs = reply.map_err(call(name.clone()))?.into_inner();
        let outputs = outputs.filter_map(move |o| {
            let o = match o {
                Ok(o) => stream_output(o).map(Ok),
                Err(status) => Some(Err(call(name.clone())(status))),
            };
            std::future::ready(o)
        });
        Ok(Box::pin(outputs))
    }

    /// Reopens a container's log file (after kubelet renamed it).
    pub async fn reopen_log(&self, id: &str) -> Result<(), ShimError> {
        let reply = self.inner.clone().reopen_log(container(id)).await;
        reply.map_err(call(format!("ReopenLog {id}")))?;
        Ok(())
    }

    /// Kills every container, unpins the namespaces; the shim exits right after replying.
    pub async fn shutdown(&self) -> Result<(), ShimError> {
        let reply = self.inner.clone().shutdown(proto::ShutdownRequest {}).await;
        reply.map_err(call("Shutdown"))?;
        Ok(())
    }
}

fn container(id: &str) -> proto::ContainerRequest {
    proto::ContainerRequest { id: id.to_string() }
}

/// Turns a failed call's status into a [`ShimError::Call`].
fn call(name: impl Into<String>) -> impl FnOnce(tonic::Status) -> ShimError {
    let name = name.into();
    move |status| ShimError::Call {
        call: name,
        kind: kind_of(status.code()),
        message: status.message().to_string(),
    }
}

fn kind_of(code: tonic::Code) -> Kind {
    use tonic::Code;
    match code {
        Code::InvalidArgument | Code::OutOfRange => Kind::InvalidArgument,
        Code::NotFound => Kind::NotFound,
        Code::AlreadyExists => Kind::AlreadyExists,
        Code::FailedPrecondition | Code::Aborted => Kind::FailedPrecondition,
        Code::DeadlineExceeded => Kind::DeadlineExceeded,
        Code::Unavailable | Code::Cancelled => Kind::Unavailable,
        Code::PermissionDenied | Code::Unauthenticated => Kind::PermissionDenied,
        Code::ResourceExhausted => Kind::ResourceExhausted,
        Code::Unimplemented => Kind::Unimplemented,
        Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => Kind::Internal,
    }
}

/// An error with its sources: tonic's transport error alone says only "transport error".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
