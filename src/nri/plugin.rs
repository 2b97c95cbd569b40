//! The runtime's side of one NRI plugin connection: over the multiplexed socket (`mux`) berth
//! serves the `Runtime` service (the plugin calls RegisterPlugin first) and calls the plugin's
//! `Plugin` service: Configure (its config, berth's name and version, the timeouts; it answers
//! with the lifecycle events it subscribes to), then Synchronize with the pods and containers
//! that exist. Each step has a deadline; a plugin that misses one is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use ttrpc::r#async::transport::{Listener, Socket};

use super::NriError;
use super::api;
use super::api_ttrpc::{self, PluginClient};
use super::mux::{PLUGIN_SERVICE, RUNTIME_SERVICE, multiplex};

/// How long a plugin may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From connecting to RegisterPlugin.
    pub registration: Duration,
    /// For each request berth makes.
    pub request: Duration,
}

/// A registered, configured and synchronized plugin.
pub struct Plugin {
    /// `<index>-<name>`, how NRI names plugins.
    pub id: String,
    pub name: String,
    /// Two digits: plugins are called in ascending index order.
    pub index: String,
    /// The lifecycle events it subscribed to (a bit per `api::Event`).
    pub events: i32,
    /// Container updates it asked for while synchronizing (not applied yet).
    pub sync_updates: Vec<api::ContainerUpdate>,
    client: PluginClient,
    /// The multiplexer's task: finished once the connection is gone.
    trunk: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Set when berth hangs up on it (it missed the request timeout).
    hung_up: AtomicBool,
    /// The request timeout.
    pub timeout: Duration,
    /// One request at a time: ttrpc's client numbers a request before queueing it, so two
    /// concurrent requests can reach the plugin out of order, and NRI's Go ttrpc server refuses
    /// a stream id lower than the last one it saw ("StreamID cannot be re-used").
    calls: tokio::sync::Mutex<()>,
    // Kept for the life of the connection (in a mutex: the server is not `Sync`).
    _server: Mutex<ttrpc::r#async::Server>,
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // Dropping the last handle disconnects the plugin.
        self.trunk.abort();
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("id", &self.id)
            .field("events", &self.events)
            .finish()
    }
}

impl Plugin {
    /// The plugin's client, for events.
    pub fn client(&self) -> &PluginClient {
        &self.client
    }

    /// Whether its connection is gone.
    pub fn is_closed(&self) -> bool {
        self.hung_up.load(Ordering::Acquire) || self.trunk.is_finished()
    }

    /// Hangs up on the plugin: its socket closes, and requests waiting their turn fail as for a
    /// plugin that went away instead of each waiting out a timeout of its own.
    fn hang_up(&self) {
        self.hung_up.store(true, Ordering::Release);
        self.trunk.abort();
    }

    /// Whether it subscribed to `event`.
    pub fn wants(&self, event: api::Event) -> bool {
        let bit = 1i32 << (event as i32 - 1);
        // A plugin that subscribes to nothing gets everything, as NRI defines.
        self.events == 0 || self.events & bit != 0
    }

    /// Sends a Synchronize with `sync`; returns the updates it asks for.
    pub async fn synchronize(
        &self,
        sync: &api::SynchronizeRequest,
    ) -> Result<Vec<api::ContainerUpdate>, NriError> {
        let reply = self
            .call("Synchronize", |ctx| self.client.synchronize(ctx, sync))
            .await?;
        Ok(reply.update)
    }

    /// One request under the request timeout (counted once its turn comes); a plugin that
    /// misses it is hung up on.
    pub async fn call<T, F>(
        &self,
        name: &'static str,
        request: impl FnOnce(ttrpc::context::Context) -> F,
    ) -> Result<T, NriError>
    where
        F: std::future::Future<Output = ttrpc::Result<T>>,
    {
        let _one = self.calls.lock().await;
        if self.is_closed() {
            return Err(NriError::Connection(format!("{} is disconnected", self.id)));
        }
        let result = call(&self.id, name, self.timeout, request(context(self.timeout))).await;
        if let Err(NriError::Timeout { .. }) = result {
            self.hang_up();
        }
        result
    }
}

/// Where UpdateContainers requests of plugins go.
#[async_trait::async_trait]
pub trait UpdateSink: Send + Sync {
    /// Applies `updates` from plugin `plugin`; returns those that failed.
    async fn update_containers(
        &self,
        plugin: &str,
        updates: Vec<api::ContainerUpdate>,
    ) -> Vec<api::ContainerUpdate>;
}

/// What berth tells a plugin about itself.
#[derive(Debug, Clone)]
pub struct RuntimeInfo {
    pub name: String,
    pub version: String,
    /// The plugin's configuration (empty for plugins that connect on their own).
    pub config: String,
}

/// The `Runtime` service of one connection: takes the first RegisterPlugin, then the plugin's
/// UpdateContainers.
struct Registration {
    sender: Mutex<Option<oneshot::Sender<api::RegisterPluginRequest>>>,
    name: Mutex<String>,
    updates: Option<Arc<dyn UpdateSink>>,
}

#[async_trait::async_trait]
impl api_ttrpc::Runtime for Registration {
    async fn register_plugin(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        req: api::RegisterPluginRequest,
    ) -> ttrpc::Result<api::Empty> {
        let sender = self.sender.lock().expect("registration lock").take();
        match sender {
            Some(sender) => {
                *self.name.lock().expect("registration lock") =
                    format!("{}-{}", req.plugin_idx, req.plugin_name);
                let _ = sender.send(req);
                Ok(api::Empty::new())
            }
            None => Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                ttrpc::Code::ALREADY_EXISTS,
                "the plugin is already registered",
            ))),
        }
    }

    async fn update_containers(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        req: api::UpdateContainersRequest,
    ) -> ttrpc::Result<api::UpdateContainersResponse> {
        let Some(sink) = &self.updates else {
            return Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                ttrpc::Code::UNIMPLEMENTED,
                "this connection takes no container updates",
            )));
        };
        let name = self.name.lock().expect("registration lock").clone();
        let mut reply = api::UpdateContainersResponse::new();
        reply.failed = sink.update_containers(&name, req.update).await;
        Ok(reply)
    }
}

/// Runs the handshake on a plugin's connection (`trunk`); `sync` holds the pods and containers
/// to synchronize it with.
pub async fn handshake<S>(
    trunk: S,
    runtime: &RuntimeInfo,
    timeouts: Timeouts,
    sync: api::SynchronizeRequest,
) -> Result<Plugin, NriError>
where
    S: AsyncRead + AsyncWrite + Send + Sync + 'static,
{
    let mut plugin = connect(trunk, runtime, timeouts, None).await?;
    plugin.sync_updates = plugin.synchronize(&sync).await?;
    Ok(plugin)
}

/// Registers and configures the plugin on `trunk` (not yet synchronized); its UpdateContainers
/// go to `updates`.
pub async fn connect<S>(
    trunk: S,
    runtime: &RuntimeInfo,
    timeouts: Timeouts,
    updates: Option<Arc<dyn UpdateSink>>,
) -> Result<Plugin, NriError>
where
    S: AsyncRead + AsyncWrite + Send + Sync + 'static,
{
    let (mut conns, trunk_task) = multiplex(trunk, &[PLUGIN_SERVICE, RUNTIME_SERVICE]);
    let runtime_conn = conns.remove(&RUNTIME_SERVICE).expect("opened above");
    let plugin_conn = conns.remove(&PLUGIN_SERVICE).expect("opened above");

    let (registered_tx, registered_rx) = oneshot::channel();
    let service = Arc::new(Registration {
        sender: Mutex::new(Some(registered_tx)),
        name: Mutex::default(),
        updates,
    });
    // One connection, then a listener that never yields again (the server keeps serving it).
    let accepted =
        futures::stream::once(async move { Ok(runtime_conn) }).chain(futures::stream::pending());
    let mut server = ttrpc::r#async::Server::new()
        .add_listener(Listener::new(accepted))
        .register_service(api_ttrpc::create_runtime(service));
    server
        .start()
        .await
        .map_err(|e| NriError::Connection(e.to_string()))?;
    let client = PluginClient::new(ttrpc::r#async::Client::new(Socket::new(plugin_conn)));

    let registration = tokio::time::timeout(timeouts.registration, registered_rx)
        .await
        .map_err(|_| NriError::RegistrationTimeout(timeouts.registration))?
        .map_err(|_| NriError::Connection("closed before registering".into()))?;
    let (name, index) = (registration.plugin_name, registration.plugin_idx);
    check_name(&name, &index)?;
    let id = format!("{index}-{name}");

    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let mut configure = api::ConfigureRequest::new();
    configure.config = runtime.config.clone();
    configure.runtime_name = runtime.name.clone();
    configure.runtime_version = runtime.version.clone();
    configure.registration_timeout = ms(timeouts.registration);
    configure.request_timeout = ms(timeouts.request);
    let configured = call(
        &id,
        "Configure",
        timeouts.request,
        client.configure(context(timeouts.request), &configure),
    )
    .await?;
    Ok(Plugin {
        id,
        name,
        index,
        events: configured.events,
        sync_updates: vec![],
        client,
        trunk: trunk_task,
        hung_up: AtomicBool::new(false),
        timeout: timeouts.request,
        calls: tokio::sync::Mutex::new(()),
        _server: Mutex::new(server),
    })
}

fn context(timeout: Duration) -> ttrpc::context::Context {
    ttrpc::context::with_duration(timeout)
}

/// One request with berth's own deadline on top of ttrpc's.
async fn call<T>(
    id: &str,
    call: &'static str,
    timeout: Duration,
    request: impl std::future::Future<Output = ttrpc::Result<T>>,
) -> Result<T, NriError> {
    let timed_out = || NriError::Timeout {
        name: id.to_string(),
        call,
        timeout,
    };
    match tokio::time::timeout(timeout, request).await {
        // ttrpc's own deadline (the same) may fire first.
        Ok(Err(ttrpc::Error::Others(m))) if m.contains("deadline") => Err(timed_out()),
        Err(_) => Err(timed_out()),
        Ok(Err(ttrpc::Error::RpcStatus(status))) => Err(NriError::Refused {
            name: id.to_string(),
            call,
            message: status.message,
        }),
        Ok(Err(source)) => Err(NriError::Call {
            name: id.to_string(),
            call,
            source,
        }),
        Ok(Ok(reply)) => Ok(reply),
    }
}

/// A name NRI accepts (letters, digits, `-`, `_`, `.`) and a two-digit index.
fn check_name(name: &str, index: &str) -> Result<(), NriError> {
    let invalid = |why: &str| {
        Err(NriError::Invalid {
            name: name.chars().take(64).collect(),
            why: why.to_string(),
        })
    };
    if name.is_empty() || name.len() > 64 {
        return invalid("the name must have 1 to 64 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return invalid("the name may hold letters, digits, '-', '_' and '.' only");
    }
    if index.len() != 2 || !index.chars().all(|c| c.is_ascii_digit()) {
        return invalid(&format!("index {index:?} is not two digits"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "plugin_tests.rs"]
mod tests;
