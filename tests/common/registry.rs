//! The local test registries (`hack/registry.sh start`, images from `hack/testimages/build.sh`)
//! and the fault proxy in front of them. A test that needs them fails loudly when they are down.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

/// Addresses and credentials of the test registries, from `$BERTH_TEST_DIR/env`.
pub struct Registries {
    /// Plain HTTP, no auth.
    pub plain: String,
    /// HTTPS with htpasswd auth.
    pub tls: String,
    pub ca: PathBuf,
    pub user: String,
    pub password: String,
    /// The fault proxy in front of `plain`.
    pub proxy: String,
}

pub fn registries() -> Registries {
    let dir = std::env::var("BERTH_TEST_DIR").unwrap_or_else(|_| "/var/lib/berth-test".into());
    let path = PathBuf::from(dir).join("env");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: start the test registries with `hack/registry.sh start`",
            path.display()
        )
    });
    let vars: HashMap<String, String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches(|c| c == '"' || c == '\'').to_string(),
            )
        })
        .collect();
    let var = |k: &str| {
        vars.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} missing in {}", path.display()))
    };
    let r = Registries {
        plain: var("BERTH_TEST_REGISTRY"),
        tls: var("BERTH_TEST_REGISTRY_TLS"),
        ca: var("BERTH_TEST_CA").into(),
        user: var("BERTH_TEST_REGISTRY_USER"),
        password: var("BERTH_TEST_REGISTRY_PASSWORD"),
        proxy: "127.0.0.1:5002".into(),
    };
    // Fail here, with the reason, rather than in the middle of a pull.
    http(&r.plain, "GET", "/v2/", "").unwrap_or_else(|e| {
        panic!(
            "registry {} is down ({e}): run `hack/registry.sh start`",
            r.plain
        )
    });
    r
}

/// A tiny blocking HTTP/1.1 client for control calls (no TLS). Returns (status, body).
pub fn http(host: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(host)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The fault proxy's control API.
pub struct FaultProxy {
    pub addr: String,
    /// A proxy of this test's own (killed on drop), not the shared one.
    child: Option<std::process::Child>,
}

impl FaultProxy {
    pub fn new(r: &Registries) -> FaultProxy {
        let p = FaultProxy {
            addr: r.proxy.clone(),
            child: None,
        };
        p.reset();
        p
    }

    /// Starts a fault proxy of the test's own in front of the plain registry, on a free port, so
    /// that its faults meet no other test's pulls (and it has this checkout's modes).
    pub fn private(r: &Registries) -> FaultProxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/hack/faultproxy.py");
        let child = std::process::Command::new("python3")
            .arg(script)
            .args([
                "--listen",
                &addr,
                "--upstream",
                &format!("http://{}", r.plain),
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start python3 hack/faultproxy.py");
        let p = FaultProxy {
            addr,
            child: Some(child),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while http(&p.addr, "GET", "/__fault/state", "").is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "fault proxy on {} did not start",
                p.addr
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        p
    }

    pub fn set(&self, json: &str) {
        let (status, body) =
            http(&self.addr, "POST", "/__fault/set", json).expect("fault proxy is up");
        assert_eq!(status, 200, "fault proxy refused {json}: {body}");
    }

    pub fn reset(&self) {
        let (status, body) =
            http(&self.addr, "POST", "/__fault/reset", "").expect("fault proxy is up");
        assert_eq!(status, 200, "{body}");
    }

    /// Requests the proxy saw, oldest first.
    pub fn log(&self) -> Vec<serde_json::Value> {
        let (_, body) = http(&self.addr, "GET", "/__fault/log", "").expect("fault proxy is up");
        serde_json::from_str(&body).expect("fault log is JSON")
    }

    /// Paths of blob GETs seen.
    pub fn blob_gets(&self) -> Vec<String> {
        self.log()
            .iter()
            .filter(|e| {
                e["method"] == "GET" && e["path"].as_str().unwrap_or("").contains("/blobs/")
            })
            .map(|e| e["path"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
