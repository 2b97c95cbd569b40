//! A registry the test controls completely: a tiny HTTP/1.1 server (optionally over TLS) that
//! answers from a table of paths and records every request, for hostile images and hostile
//! registries the real test registries cannot play.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the server answers on one path.
#[derive(Clone)]
pub enum Reply {
    /// A status, extra headers and a body.
    Body {
        status: u16,
        headers: Vec<(String, String)>,
        body: Arc<Vec<u8>>,
    },
    /// 200 with `len` zero bytes, streamed; with `length`, announced in Content-Length, else
    /// the body ends when the connection closes.
    Zeros {
        len: u64,
        content_type: &'static str,
        length: bool,
    },
}

impl Reply {
    pub fn ok(content_type: &str, body: Vec<u8>) -> Reply {
        Reply::Body {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: Arc::new(body),
        }
    }
}

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
}

pub struct FakeRegistry {
    /// `127.0.0.1:port`.
    pub addr: String,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl FakeRegistry {
    /// Listens on a free loopback port; over TLS with `tls`. `/v2/` answers 200 unless routed.
    pub async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap().to_string();
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        routes
            .lock()
            .unwrap()
            .insert("/v2/".into(), Reply::ok("application/json", b"{}".to_vec()));
        let (r, s) = (routes.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (r, s, tls) = (r.clone(), s.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => serve(tcp, r, s).await,
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(tcp).await {
                                serve(stream, r, s).await
                            }
                        }
                    }
                });
            }
        });
        FakeRegistry { addr, routes, seen }
    }

    pub fn route(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.into(), reply);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Serves `repo:tag` as an OCI manifest with `config` and uncompressed tar `layers`.
    /// Returns the image's name to pull.
    pub fn image(&self, repo: &str, tag: &str, config: &[u8], layers: &[Vec<u8>]) -> String {
        let config_digest = sha256(config);
        self.route(
            &format!("/v2/{repo}/blobs/{config_digest}"),
            Reply::ok("application/octet-stream", config.to_vec()),
        );
        let mut descs = vec![];
        for layer in layers {
            let digest = sha256(layer);
            self.route(
                &format!("/v2/{repo}/blobs/{digest}"),
                Reply::ok("application/octet-stream", layer.clone()),
            );
            descs.push(serde_json::json!({
                "mediaType": OCI_LAYER_TAR, "digest": digest, "size": layer.len()
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
            "layers": descs,
        });
        self.route(
            &format!("/v2/{repo}/manifests/{tag}"),
            Reply::ok(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap()),
        );
        format!("{}/{repo}:{tag}", self.addr)
    }
}

/// An image config for linux/amd64 with `diff_ids` for uncompressed `layers` and `user`.
pub fn image_config(layers: &[Vec<u8>], user: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": {"User": user, "Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.lines();
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_string();
    let path = target.split('?').next().unwrap_or("/").to_string();
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.trim().to_string());
    seen.lock().unwrap().push(Seen {
        path: path.clone(),
        authorization,
    });
    let reply = routes.lock().unwrap().get(&path).cloned();
    let result = match reply {
        None => {
            io.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await
        }
        Some(Reply::Body {
            status,
            headers,
            body,
        }) => {
            let mut out = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let mut all = out.into_bytes();
            all.extend_from_slice(&body);
            io.write_all(&all).await
        }
        Some(Reply::Zeros {
            len,
            content_type,
            length,
        }) => {
            let length = if length {
                format!("Content-Length: {len}\r\n")
            } else {
                String::new()
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\n{length}Content-Type: {content_type}\r\nConnection: close\r\n\r\n"
            );
            let mut result = io.write_all(head.as_bytes()).await;
            let chunk = vec![0u8; 64 * 1024];
            let mut left = len;
            while left > 0 && result.is_ok() {
                let n = left.min(chunk.len() as u64) as usize;
                result = io.write_all(&chunk[..n]).await;
                left -= n as u64;
            }
            result
        }
    };
    let _ = result;
    let _ = io.shutdown().await;
}

/// A TLS acceptor for `127.0.0.1` whose certificate a fresh CA signed, and that CA as PEM (for
/// berthd's `ca_file`).
pub fn tls_with_ca() -> (tokio_rustls::TlsAcceptor, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        leaf_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .expect("server config");
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ca_cert.pem(),
    )
}

/// Peak resident memory of process `pid` in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmHWM:")
}

/// A `/proc/<pid>/status` field's number.
pub fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} missing in /proc/{pid}/status"))
}
