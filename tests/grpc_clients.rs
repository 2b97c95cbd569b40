//! Clients other than berth's own on berthd's CRI socket: gRPC C-core through Python's grpcio
//! with its default channel options (it sends the socket path, %-encoded, as `:authority`), and
//! hand-written HTTP/2 requests carrying the authorities other gRPC stacks send; and every RPC of
//! the v0.37 services called once by grpcio, so a reply its generated types cannot decode fails.
//! They need root,
//! python3 with grpcio and grpcio-tools (`hack/install-deps.sh`) and the test registry; a missing
//! one fails the test.

mod common;

use std::path::Path;
use std::process::Command;

use berth::cri::api;
use common::Daemon;
use common::raw_h2;
use common::registry::{Registries, registries};
use prost::Message;

/// The grpcio client; it generates its CRI stubs from proto/k8s/cri-api at each run.
const PY_CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/grpc_clients/cri_client.py"
);

fn daemon(r: &Registries) -> Daemon {
    Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n",
        r.plain
    ))
}

/// Runs the grpcio client against `socket`; returns its JSON lines, or panics with its output.
fn grpcio(socket: &Path, image: &str, authority: Option<&str>) -> Vec<serde_json::Value> {
    let stubs = tempfile::tempdir().expect("stub dir");
    let mut cmd = Command::new("python3");
    cmd.arg(PY_CLIENT).arg(socket).arg(stubs.path()).arg(image);
    cmd.args(authority);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run python3 ({e}): install it with hack/install-deps.sh"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "grpcio or grpcio-tools missing: run hack/install-deps.sh\n{stderr}"
    );
    assert!(
        out.status.success(),
        "grpcio client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Calls every RPC through grpcio (`cri_every_rpc.py`); returns its JSON lines by call name.
fn grpcio_every_rpc(
    socket: &Path,
    image: &str,
    parent: &str,
    logs: &Path,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let stubs = tempfile::tempdir().expect("stub dir");
    let script = Path::new(PY_CLIENT).with_file_name("cri_every_rpc.py");
    let out = Command::new("python3")
        .arg(script)
        .args([socket, stubs.path()])
        .args([image, parent])
        .arg(logs)
        .output()
        .unwrap_or_else(|e| panic!("run python3 ({e}): install it with hack/install-deps.sh"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "grpcio client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{l:?}: {e}"))
        })
        .map(|v| (v["call"].as_str().expect("call name").to_string(), v))
        .collect()
}

/// grpcio's version as (major, minor).
fn version(line: &serde_json::Value) -> (u32, u32) {
    let text = line["grpcio"].as_str().expect("grpcio version line");
    let mut parts = text.split('.').map(|p| p.parse().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[tokio::test]
async fn grpcio_with_default_options_calls_version_list_and_pull() {
    let r = registries();
    let d = daemon(&r);
    let image = format!("{}/library/busybox:latest", r.plain);
    let lines = grpcio(&d.socket, &image, None);
    // Since 1.57 C-core sends the %-encoded socket path as :authority; older ones send
    // "localhost" and would not show that berthd accepts it.
    assert!(
        version(&lines[0]) >= (1, 57),
        "grpcio {} is too old to test this: run hack/install-deps.sh",
        lines[0]["grpcio"]
    );
    assert_eq!(lines[1]["call"], "Version");
    assert_eq!(lines[1]["runtime_name"], "berth");
    assert_eq!(lines[1]["runtime_api_version"], "v1");
    assert_eq!(lines[2]["call"], "ListPodSandbox");
    assert_eq!(lines[2]["items"], 0);
    assert_eq!(lines[3]["call"], "PullImage");
    let id = lines[3]["image_ref"].as_str().expect("image_ref");
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    // The pull is real: berth's own client sees the image.
    let mut cri = d.client().await;
    let status = cri
        .image
        .image_status(api::ImageStatusRequest {
            image: Some(api::ImageSpec {
                image: image.clone(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .expect("ImageStatus")
        .into_inner();
    assert_eq!(status.image.expect("image pulled").id, id);
}

#[tokio::test]
async fn any_authority_is_accepted_on_the_cri_socket() {
    let d = Daemon::start("");
    let path = d.socket.display().to_string();
    let c_core = path.trim_start_matches('/').replace('/', "%2F");
    for authority in [
        "localhost",
        path.as_str(),   // grpc-java, older grpc-go
        c_core.as_str(), // gRPC C-core (grpcio, Ruby, C++) since 1.57
        "",
        "not an authority at all",
    ] {
        let reply = raw_h2::unary(
            &d.socket,
            authority,
            "/runtime.v1.RuntimeService/Version",
            &api::VersionRequest::default().encode_to_vec(),
        );
        assert_eq!(reply.reset, None, ":authority {authority:?} was refused");
        assert_eq!(reply.header_blocks, 2, "headers and trailers: {reply:?}");
        let version = api::VersionResponse::decode(reply.message.as_slice())
            .unwrap_or_else(|e| panic!(":authority {authority:?}: {e}: {reply:?}"));
        assert_eq!(version.runtime_name, "berth", ":authority {authority:?}");
    }
}

#[tokio::test]
async fn grpcio_decodes_every_reply_of_the_v037_services() {
    let parent = common::host::CgroupParent::new("berth-every-rpc");
    let r = registries();
    let d = daemon(&r);
    let image = format!("{}/library/busybox:latest", r.plain);
    let logs = d.dir.path().join("logs");
    let lines = grpcio_every_rpc(&d.socket, &image, &parent.0, &logs);
    let code = |call: &str| {
        let line = lines
            .get(call)
            .unwrap_or_else(|| panic!("no {call} in {lines:#?}"));
        line["code"].as_str().unwrap().to_string()
    };
    let unimplemented = ["CheckpointContainer", "CheckpointPod", "RestorePod"];
    let expected_errors = [
        ("UpdatePodSandboxResources(unknown)", "NOT_FOUND"),
        ("UpdatePodSandboxResources(stopped)", "FAILED_PRECONDITION"),
    ];
    // Every rpc of the upstream proto was called (UpdatePodSandboxResources twice more).
    let proto = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/proto/k8s/cri-api/v1/api.proto"
    ))
    .unwrap();
    let rpcs: Vec<&str> = proto
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .filter_map(|l| l.split('(').next())
        .collect();
    assert_eq!(rpcs.len(), 43, "{rpcs:?}");
    for rpc in &rpcs {
        assert!(lines.contains_key(*rpc), "{rpc} was not called");
    }
    assert_eq!(lines.len(), rpcs.len() + 2, "{lines:#?}");
    for (call, line) in &lines {
        let want = match expected_errors.iter().find(|(c, _)| c == call) {
            Some((_, code)) => *code,
            None if unimplemented.contains(&call.as_str()) => "UNIMPLEMENTED",
            None => "OK",
        };
        assert_eq!(code(call), want, "{call}: {line}");
    }
    for call in unimplemented {
        let details = lines[call]["details"].as_str().unwrap();
        assert!(
            details.contains(call) && details.contains("CRIU"),
            "{details}"
        );
    }
    assert_eq!(lines["PodSandboxStatus"]["resources_kept"], true);
    assert_eq!(lines["ExecSync"]["exit_code"], 0);
    // cgroup v1 host: no pressure files, so no PSI and no IO usage, rather than zeros.
    for call in ["ContainerStats", "PodSandboxStats"] {
        for field in ["cpu_psi", "memory_psi", "io"] {
            assert_eq!(lines[call][field], false, "{call}.{field}");
        }
    }
}
