//! Lifecycle events against fake plugins speaking the generated protocol over a real unix
//! socket pair (no root): events by subscription, adjustments applied to the spec, a plugin's
//! error and a plugin's silence failing CreateContainer, conflicts between two plugins.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use oci_spec::runtime::{ProcessBuilder, Spec};
use protobuf::MessageField;
use ttrpc::r#async::transport::{Listener, Socket};

use crate::error::{Classify, Kind};
use crate::nri::mux::{PLUGIN_SERVICE, RUNTIME_SERVICE, multiplex};
use crate::nri::plugin::Timeouts;
use crate::nri::{Adaptation, NriError, api, api_ttrpc};
use crate::runtime::nri_seam::{NewContainer, NriHooks};
use crate::runtime::records::{SandboxRecord, SandboxState};

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Sets env `FROM_<name>=1` and annotation `<name>=seen`.
    Adjust,
    /// Sets env `SHARED=<name>`.
    Shared,
    Fail,
    Hang,
    /// Closes its connection while answering CreateContainer.
    HangUp,
    /// Never answers Synchronize.
    HangSync,
}

struct FakePlugin {
    name: String,
    behaviour: Behaviour,
    events: i32,
    seen: Arc<Mutex<Vec<String>>>,
    /// Its own connection, for `HangUp`.
    trunk: Arc<Mutex<Option<tokio::task::AbortHandle>>>,
}

#[async_trait::async_trait]
impl api_ttrpc::Plugin for FakePlugin {
    async fn configure(
        &self,
        _: &ttrpc::r#async::TtrpcContext,
        _: api::ConfigureRequest,
    ) -> ttrpc::Result<api::ConfigureResponse> {
        let mut reply = api::ConfigureResponse::new();
        reply.events = self.events;
        Ok(reply)
    }

    async fn synchronize(
        &self,
        _: &ttrpc::r#async::TtrpcContext,
        _: api::SynchronizeRequest,
    ) -> ttrpc::Result<api::SynchronizeResponse> {
        if self.behaviour == Behaviour::HangSync {
            std::future::pending::<()>().await;
        }
        Ok(api::SynchronizeResponse::new())
    }

    async fn run_pod_sandbox(
        &self,
        _: &ttrpc::r#async::TtrpcContext,
        req: api::RunPodSandboxRequest,
    ) -> ttrpc::Result<api::RunPodSandboxResponse> {
        self.seen
            .lock()
            .unwrap()
            .push(format!("RunPodSandbox {}", req.pod.id));
        Ok(api::RunPodSandboxResponse::new())
    }

    async fn create_container(
        &self,
        _: &ttrpc::r#async::TtrpcContext,
        req: api::CreateContainerRequest,
    ) -> ttrpc::Result<api::CreateContainerResponse> {
        let c = &req.container;
        self.seen
            .lock()
            .unwrap()
            .push(format!("CreateContainer {} {}", c.id, c.name));
        let mut adjust = api::ContainerAdjustment::new();
        let mut kv = api::KeyValue::new();
        match self.behaviour {
            Behaviour::Adjust => {
                kv.key = format!("FROM_{}", self.name);
                kv.value = "1".into();
                adjust.annotations.insert(self.name.clone(), "seen".into());
            }
            Behaviour::Shared => {
                kv.key = "SHARED".into();
                kv.value = self.name.clone();
            }
            Behaviour::Fail => {
                return Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                    ttrpc::Code::UNKNOWN,
                    "induced failure",
                )));
            }
            Behaviour::Hang | Behaviour::HangSync => std::future::pending().await,
            Behaviour::HangUp => {
                self.trunk.lock().unwrap().as_ref().unwrap().abort();
                std::future::pending().await
            }
        }
        adjust.env.push(kv);
        let mut reply = api::CreateContainerResponse::new();
        reply.adjust = MessageField::some(adjust);
        Ok(reply)
    }
}

/// Connects a fake plugin to `adaptation` over a unix socket pair; returns what it saw and
/// what keeps it alive.
async fn plugin(
    adaptation: &Arc<Adaptation>,
    name: &str,
    index: &str,
    behaviour: Behaviour,
    events: i32,
) -> (Arc<Mutex<Vec<String>>>, Alive) {
    let (ours, theirs) = tokio::net::UnixStream::pair().unwrap();
    let (mut conns, trunk) = multiplex(theirs, &[PLUGIN_SERVICE, RUNTIME_SERVICE]);
    let seen = Arc::new(Mutex::new(vec![]));
    let plugin_conn = conns.remove(&PLUGIN_SERVICE).unwrap();
    let accepted =
        futures::stream::once(async move { Ok(plugin_conn) }).chain(futures::stream::pending());
    let service = Arc::new(FakePlugin {
        name: name.into(),
        behaviour,
        events,
        seen: seen.clone(),
        trunk: Arc::new(Mutex::new(Some(trunk.abort_handle()))),
    });
    let mut server = ttrpc::r#async::Server::new()
        .add_listener(Listener::new(accepted))
        .register_service(api_ttrpc::create_plugin(service));
    server.start().await.unwrap();
    let runtime_conn = conns.remove(&RUNTIME_SERVICE).unwrap();
    let client =
        api_ttrpc::RuntimeClient::new(ttrpc::r#async::Client::new(Socket::new(runtime_conn)));
    let mut req = api::RegisterPluginRequest::new();
    req.plugin_name = name.into();
    req.plugin_idx = index.into();
    let registering = client.clone();
    tokio::spawn(async move {
        let ctx = ttrpc::context::with_duration(Duration::from_secs(5));
        let _ = registering.register_plugin(ctx, &req).await;
    });
    adaptation.admit(ours).await;
    let alive = Alive {
        _server: server,
        _client: client,
        trunk,
    };
    (seen, alive)
}

/// A fake plugin's connection: dropping it hangs up.
struct Alive {
    _server: ttrpc::r#async::Server,
    _client: api_ttrpc::RuntimeClient,
    trunk: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.trunk.abort();
    }
}

fn adaptation() -> Arc<Adaptation> {
    Adaptation::new(Timeouts {
        registration: Duration::from_secs(2),
        request: Duration::from_millis(300),
    })
}

fn pod() -> SandboxRecord {
    SandboxRecord {
        id: "pod1".into(),
        state: SandboxState::Ready,
        created_at: 1,
        config: crate::runtime::tests::pod_config("web"),
        runtime_handler: String::new(),
        pod_dir: "/nonexistent/pod".into(),
        data_dir: "/nonexistent/data".into(),
        namespaces: Default::default(),
        shm: None,
        hostname: None,
        ips: vec!["10.0.0.2".into()],
    }
}

fn spec() -> Spec {
    let mut spec = Spec::default();
    let process = ProcessBuilder::default()
        .args(vec!["/app".to_string()])
        .env(vec!["PATH=/bin".to_string()])
        .build()
        .unwrap();
    spec.set_process(Some(process));
    spec
}

async fn create(adaptation: &Adaptation, spec: &mut Spec) -> Result<(), NriError> {
    let config = crate::runtime::tests::container_config("app");
    let new = NewContainer {
        id: "ctr1",
        config: &config,
        built_in: false,
    };
    adaptation.create_container(&pod(), new, spec).await
}

fn env(spec: &Spec) -> Vec<String> {
    spec.process().clone().unwrap().env().clone().unwrap()
}

const ALL: i32 = 0;
const CREATE_ONLY: i32 = 1 << (api::Event::CREATE_CONTAINER as i32 - 1);

#[tokio::test]
async fn plugins_adjust_the_spec_in_index_order_and_see_events() {
    let adaptation = adaptation();
    let (second, _b) = plugin(&adaptation, "b", "20", Behaviour::Adjust, ALL).await;
    let (first, _a) = plugin(&adaptation, "a", "10", Behaviour::Adjust, CREATE_ONLY).await;
    assert_eq!(adaptation.plugin_count(), 2);

    adaptation.run_pod_sandbox(&pod()).await.unwrap();
    let mut spec = spec();
    create(&adaptation, &mut spec).await.unwrap();

    assert_eq!(env(&spec), vec!["PATH=/bin", "FROM_a=1", "FROM_b=1"]);
    let annotations = spec.annotations().clone().unwrap();
    assert_eq!(annotations.get("a").map(String::as_str), Some("seen"));
    assert_eq!(annotations.get("b").map(String::as_str), Some("seen"));
    // `a` subscribed to CreateContainer only.
    assert_eq!(*first.lock().unwrap(), vec!["CreateContainer ctr1 app"]);
    assert_eq!(
        *second.lock().unwrap(),
        vec!["RunPodSandbox pod1", "CreateContainer ctr1 app"]
    );
}

#[tokio::test]
async fn a_failing_plugin_fails_create_container_with_its_message() {
    let adaptation = adaptation();
    let (_seen, _p) = plugin(&adaptation, "refuser", "10", Behaviour::Fail, ALL).await;
    let mut spec = spec();
    let err = create(&adaptation, &mut spec).await.unwrap_err();
    assert!(err.to_string().contains("induced failure"), "{err}");
    assert!(err.to_string().contains("10-refuser"), "{err}");
    assert_eq!(err.kind(), Kind::FailedPrecondition);
    // The plugin stays: a retry reaches it again.
    assert_eq!(adaptation.plugin_count(), 1);
}

#[tokio::test]
async fn a_hanging_plugin_times_out_and_is_disconnected() {
    let adaptation = adaptation();
    let (_seen, _p) = plugin(&adaptation, "sleeper", "10", Behaviour::Hang, ALL).await;
    let started = std::time::Instant::now();
    let err = create(&adaptation, &mut spec()).await.unwrap_err();
    assert!(matches!(err, NriError::Timeout { .. }), "{err}");
    assert_eq!(err.kind(), Kind::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(adaptation.plugin_count(), 0);
    // Without it, creation goes through untouched.
    let mut spec2 = spec();
    create(&adaptation, &mut spec2).await.unwrap();
    assert_eq!(env(&spec2), vec!["PATH=/bin"]);
}

#[tokio::test]
async fn two_plugins_setting_one_variable_conflict() {
    let adaptation = adaptation();
    let (_a, _pa) = plugin(&adaptation, "a", "10", Behaviour::Shared, ALL).await;
    let (_b, _pb) = plugin(&adaptation, "b", "20", Behaviour::Shared, ALL).await;
    let err = create(&adaptation, &mut spec()).await.unwrap_err();
    assert!(matches!(err, NriError::Conflict { .. }), "{err}");
}

#[tokio::test]
async fn a_plugin_that_went_away_is_forgotten_without_failing_anything() {
    let adaptation = adaptation();
    let (_seen, keep) = plugin(&adaptation, "gone", "10", Behaviour::Adjust, ALL).await;
    drop(keep);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut spec = spec();
    create(&adaptation, &mut spec).await.unwrap();
    assert_eq!(env(&spec), vec!["PATH=/bin"]);
    assert_eq!(adaptation.plugin_count(), 0);
}

#[path = "hooks_hostile_tests.rs"]
mod hostile;
