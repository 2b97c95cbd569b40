//! CNI networks for tests: real plugins from the node's bin dir, each network in its own conf
//! dir with its own name, bridge, subnet and host-local data dir, so tests (and other suites on
//! the machine) never share addresses.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth::client::CriClient;
use berth::cri::api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Daemon;
use super::registry::registries;

/// Where Debian's containernetworking-plugins are installed (hack/install-deps.sh).
pub const PLUGIN_DIR: &str = "/usr/lib/cni";

/// The network every test berthd gets unless it configures its own: shared by all tests, so
/// its leases live in host-local's default data dir, which locks against concurrent use.
pub const SHARED_CONFLIST: &str = r#"{
  "cniVersion": "1.0.0", "name": "berth-test",
  "plugins": [
    {"type": "bridge", "bridge": "berth-test0", "isGateway": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.0.0/16"}]]}}
  ]
}"#;

/// A private test network. `tag` (a few characters) names the network and its bridge;
/// `octet` picks its subnet, 10.99.<octet>.0/24. Both must be unique among the tests.
pub struct TestNet {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
}

impl TestNet {
    pub fn new(tag: &str, octet: u8) -> TestNet {
        assert!(tag.len() <= 8, "bridge names hold 15 bytes");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("net.d")).unwrap();
        TestNet {
            dir,
            name: format!("berth-test-{tag}"),
            bridge: format!("bt-{tag}"),
            subnet: format!("10.99.{octet}.0/24"),
            gateway: format!("10.99.{octet}.1"),
        }
    }

    pub fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("net.d")
    }

    /// host-local's lease files live in `<data dir>/<network name>/<ip>`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    pub fn lease(&self, ip: &str) -> PathBuf {
        self.data_dir().join(&self.name).join(ip)
    }

    /// IPs host-local has leased in this network.
    pub fn leases(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.data_dir().join(&self.name))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect();
        out.sort();
        out
    }

    /// The bridge plugin's config for this network.
    pub fn bridge_plugin(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "bridge", "bridge": self.bridge, "isGateway": true, "hairpinMode": true,
            "ipam": {
                "type": "host-local", "dataDir": self.data_dir(),
                "ranges": [[{"subnet": self.subnet, "gateway": self.gateway}]]
            }
        })
    }

    /// Writes `<conf dir>/<file>` as a conflist of `plugins`.
    pub fn write_conflist(&self, file: &str, plugins: Vec<serde_json::Value>) {
        let list = serde_json::json!({
            "cniVersion": "1.0.0", "name": self.name, "plugins": plugins
        });
        std::fs::write(self.conf_dir().join(file), list.to_string()).unwrap();
    }

    /// bridge + portmap + bandwidth, as hack/cni-config.sh installs it.
    pub fn write_default(&self) {
        self.write_conflist(
            "10-test.conflist",
            vec![
                self.bridge_plugin(),
                serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}}),
                serde_json::json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}),
            ],
        );
    }

    /// berthd config keys that use this network.
    pub fn yaml(&self) -> String {
        format!(
            "network:\n  conf_dir: {}\n  bin_dirs: [{PLUGIN_DIR}]\n",
            self.conf_dir().display()
        )
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // The bridge outlives its pods (as under containerd); remove it with the test.
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

// Driving networked pods.

pub fn daemon(net: &TestNet) -> Daemon {
    Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n{}",
        registries().plain,
        net.yaml()
    ))
}

pub fn busybox() -> String {
    format!("{}/library/busybox:latest", registries().plain)
}

pub async fn pod_status(cri: &mut CriClient, id: &str) -> api::PodSandboxStatus {
    cri.runtime
        .pod_sandbox_status(api::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: false,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
        .status
        .unwrap()
}

pub async fn pod_ip(cri: &mut CriClient, id: &str) -> String {
    pod_status(cri, id).await.network.unwrap().ip
}

/// GET `path` from `addr` over plain HTTP/1.0; the body, or `None` when nothing answers.
pub async fn http_get(addr: &str, path: &str) -> Option<String> {
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await.ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.").then(|| body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(3), work)
        .await
        .ok()
        .flatten()
}

/// Polls `http_get` until it answers (a server in a fresh container needs a moment).
pub async fn http_get_eventually(addr: &str, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(body) = http_get(addr, path).await {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "nothing served http://{addr}{path}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn stdout(out: &api::ExecSyncResponse) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
