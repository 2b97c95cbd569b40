//! A tiny NRI plugin for berth's NRI integration test (tests/nri.rs): connects to an NRI
//! socket, registers, subscribes to every event and appends each to a log file as
//! `<Event> <pod or container id> <name>`. Its CreateContainer answer depends on the mode:
//! `adjust` adds env `NRI_TEST=injected` and annotation `nri.test/seen=yes`, `fail` refuses,
//! `hang` never answers.
//!
//!     nri_test_plugin <socket> <index> <name> <adjust|fail|hang> <log file>

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use berth::nri::mux::{PLUGIN_SERVICE, RUNTIME_SERVICE, multiplex};
use berth::nri::{api, api_ttrpc};
use futures::StreamExt;
use protobuf::MessageField;
use ttrpc::r#async::TtrpcContext;
use ttrpc::r#async::transport::{Listener, Socket};

struct Plugin {
    mode: String,
    log: std::path::PathBuf,
}

impl Plugin {
    fn note(&self, event: &str, id: &str, name: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the log");
        writeln!(f, "{event} {id} {name}").expect("write the log");
    }
}

type Reply<T> = ttrpc::Result<T>;

#[async_trait::async_trait]
impl api_ttrpc::Plugin for Plugin {
    async fn configure(
        &self,
        _: &TtrpcContext,
        _: api::ConfigureRequest,
    ) -> Reply<api::ConfigureResponse> {
        Ok(api::ConfigureResponse::new()) // events 0: all of them
    }

    async fn synchronize(
        &self,
        _: &TtrpcContext,
        r: api::SynchronizeRequest,
    ) -> Reply<api::SynchronizeResponse> {
        self.note(
            "Synchronize",
            &r.pods.len().to_string(),
            &r.containers.len().to_string(),
        );
        Ok(api::SynchronizeResponse::new())
    }

    async fn run_pod_sandbox(
        &self,
        _: &TtrpcContext,
        r: api::RunPodSandboxRequest,
    ) -> Reply<api::RunPodSandboxResponse> {
        self.note("RunPodSandbox", &r.pod.id, &r.pod.name);
        Ok(api::RunPodSandboxResponse::new())
    }

    async fn stop_pod_sandbox(
        &self,
        _: &TtrpcContext,
        r: api::StopPodSandboxRequest,
    ) -> Reply<api::StopPodSandboxResponse> {
        self.note("StopPodSandbox", &r.pod.id, &r.pod.name);
        Ok(api::StopPodSandboxResponse::new())
    }

    async fn remove_pod_sandbox(
        &self,
        _: &TtrpcContext,
        r: api::RemovePodSandboxRequest,
    ) -> Reply<api::RemovePodSandboxResponse> {
        self.note("RemovePodSandbox", &r.pod.id, &r.pod.name);
        Ok(api::RemovePodSandboxResponse::new())
    }

    async fn create_container(
        &self,
        _: &TtrpcContext,
        r: api::CreateContainerRequest,
    ) -> Reply<api::CreateContainerResponse> {
        self.note("CreateContainer", &r.container.id, &r.container.name);
        match self.mode.as_str() {
            "fail" => Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                ttrpc::Code::UNKNOWN,
                "the test plugin refuses every container",
            ))),
            "hang" => std::future::pending().await,
            _ => {
                let mut adjust = api::ContainerAdjustment::new();
                let mut env = api::KeyValue::new();
                env.key = "NRI_TEST".into();
                env.value = "injected".into();
                adjust.env.push(env);
                adjust
                    .annotations
                    .insert("nri.test/seen".into(), "yes".into());
                let mut reply = api::CreateContainerResponse::new();
                reply.adjust = MessageField::some(adjust);
                Ok(reply)
            }
        }
    }

    async fn start_container(
        &self,
        _: &TtrpcContext,
        r: api::StartContainerRequest,
    ) -> Reply<api::StartContainerResponse> {
        self.note("StartContainer", &r.container.id, &r.container.name);
        Ok(api::StartContainerResponse::new())
    }

    async fn stop_container(
        &self,
        _: &TtrpcContext,
        r: api::StopContainerRequest,
    ) -> Reply<api::StopContainerResponse> {
        self.note("StopContainer", &r.container.id, &r.container.name);
        Ok(api::StopContainerResponse::new())
    }

    async fn remove_container(
        &self,
        _: &TtrpcContext,
        r: api::RemoveContainerRequest,
    ) -> Reply<api::RemoveContainerResponse> {
        self.note("RemoveContainer", &r.container.id, &r.container.name);
        Ok(api::RemoveContainerResponse::new())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, socket, index, name, mode, log] = &args[..] else {
        eprintln!("usage: nri_test_plugin <socket> <index> <name> <adjust|fail|hang> <log file>");
        std::process::exit(2);
    };
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let (mut conns, trunk) = multiplex(stream, &[PLUGIN_SERVICE, RUNTIME_SERVICE]);
    let plugin_conn = conns.remove(&PLUGIN_SERVICE).expect("opened");
    let accepted =
        futures::stream::once(async move { Ok(plugin_conn) }).chain(futures::stream::pending());
    let service = Arc::new(Plugin {
        mode: mode.clone(),
        log: log.into(),
    });
    let mut server = ttrpc::r#async::Server::new()
        .add_listener(Listener::new(accepted))
        .register_service(api_ttrpc::create_plugin(service));
    server.start().await.expect("serve the plugin service");
    let runtime_conn = conns.remove(&RUNTIME_SERVICE).expect("opened");
    let client =
        api_ttrpc::RuntimeClient::new(ttrpc::r#async::Client::new(Socket::new(runtime_conn)));
    let mut req = api::RegisterPluginRequest::new();
    req.plugin_name = name.clone();
    req.plugin_idx = index.clone();
    let ctx = ttrpc::context::with_duration(Duration::from_secs(5));
    client.register_plugin(ctx, &req).await.expect("register");
    // Runs until berth hangs up.
    let _ = trunk.await;
}
