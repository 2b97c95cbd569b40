//! The handshake against a fake plugin speaking the generated protocol over the multiplexer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use ttrpc::r#async::transport::{Listener, Socket};

use super::*;
use crate::nri::api_ttrpc::RuntimeClient;

#[derive(Default)]
struct Seen {
    configure: Option<api::ConfigureRequest>,
    synchronized_pods: Option<usize>,
}

struct FakePlugin {
    seen: Arc<Mutex<Seen>>,
    /// Never answer Configure.
    stall: bool,
}

#[async_trait::async_trait]
impl api_ttrpc::Plugin for FakePlugin {
    async fn configure(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        req: api::ConfigureRequest,
    ) -> ttrpc::Result<api::ConfigureResponse> {
        if self.stall {
            std::future::pending::<()>().await;
        }
        self.seen.lock().unwrap().configure = Some(req);
        let mut reply = api::ConfigureResponse::new();
        reply.events = 0b1010;
        Ok(reply)
    }

    async fn synchronize(
        &self,
        _ctx: &ttrpc::r#async::TtrpcContext,
        req: api::SynchronizeRequest,
    ) -> ttrpc::Result<api::SynchronizeResponse> {
        self.seen.lock().unwrap().synchronized_pods = Some(req.pods.len());
        Ok(api::SynchronizeResponse::new())
    }
}

/// Connects a fake plugin to the other end of `trunk`; it registers as `name`/`index` unless
/// `name` is `None`. Returns what it saw and what keeps it alive.
async fn fake_plugin(
    trunk: tokio::io::DuplexStream,
    registration: Option<(&str, &str)>,
    stall: bool,
) -> (Arc<Mutex<Seen>>, impl Sized) {
    let (mut conns, trunk_task) = multiplex(trunk, &[PLUGIN_SERVICE, RUNTIME_SERVICE]);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let plugin_conn = conns.remove(&PLUGIN_SERVICE).unwrap();
    let accepted =
        futures::stream::once(async move { Ok(plugin_conn) }).chain(futures::stream::pending());
    let service = Arc::new(FakePlugin {
        seen: seen.clone(),
        stall,
    });
    let mut server = ttrpc::r#async::Server::new()
        .add_listener(Listener::new(accepted))
        .register_service(api_ttrpc::create_plugin(service));
    server.start().await.unwrap();
    let runtime_conn = conns.remove(&RUNTIME_SERVICE).unwrap();
    let client = RuntimeClient::new(ttrpc::r#async::Client::new(Socket::new(runtime_conn)));
    if let Some((name, index)) = registration {
        let mut req = api::RegisterPluginRequest::new();
        req.plugin_name = name.into();
        req.plugin_idx = index.into();
        let client = client.clone();
        tokio::spawn(async move {
            let _ = client
                .register_plugin(ttrpc::context::with_duration(Duration::from_secs(5)), &req)
                .await;
        });
    }
    (seen, (server, client, trunk_task))
}

fn info() -> RuntimeInfo {
    RuntimeInfo {
        name: "berth".into(),
        version: "0.1.0".into(),
        config: String::new(),
    }
}

fn timeouts() -> Timeouts {
    Timeouts {
        registration: Duration::from_millis(500),
        request: Duration::from_millis(500),
    }
}

fn one_pod() -> api::SynchronizeRequest {
    let mut sync = api::SynchronizeRequest::new();
    let mut pod = api::PodSandbox::new();
    pod.id = "pod-1".into();
    sync.pods.push(pod);
    sync
}

#[tokio::test]
async fn a_plugin_registers_is_configured_and_synchronized() {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (seen, _alive) = fake_plugin(theirs, Some(("test-plugin", "10")), false).await;
    let plugin = handshake(ours, &info(), timeouts(), one_pod())
        .await
        .unwrap();
    assert_eq!(plugin.id, "10-test-plugin");
    assert_eq!(plugin.events, 0b1010);
    let seen = seen.lock().unwrap();
    let configure = seen
        .configure
        .as_ref()
        .expect("Configure reached the plugin");
    assert_eq!(configure.runtime_name, "berth");
    assert_eq!(configure.request_timeout, 500);
    assert_eq!(seen.synchronized_pods, Some(1));
}

#[tokio::test]
async fn a_plugin_that_never_registers_is_dropped_after_the_timeout() {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (_seen, _alive) = fake_plugin(theirs, None, false).await;
    let started = std::time::Instant::now();
    let err = handshake(ours, &info(), timeouts(), one_pod())
        .await
        .unwrap_err();
    assert!(matches!(err, NriError::RegistrationTimeout(_)), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[tokio::test]
async fn a_plugin_that_stalls_or_misnames_itself_is_refused() {
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let (_seen, _alive) = fake_plugin(theirs, Some(("slow", "20")), true).await;
    let err = handshake(ours, &info(), timeouts(), one_pod())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NriError::Timeout {
                call: "Configure",
                ..
            }
        ),
        "{err}"
    );

    for (name, index) in [("bad name", "10"), ("ok", "1"), ("ok", "ab")] {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (_seen, _alive) = fake_plugin(theirs, Some((name, index)), false).await;
        let err = handshake(ours, &info(), timeouts(), one_pod())
            .await
            .unwrap_err();
        assert!(
            matches!(err, NriError::Invalid { .. }),
            "{name} {index}: {err}"
        );
    }
}
