//! The streaming server against clients that hold its resources: a request header sent by
//! halves, a TLS handshake never finished, more idle connections than the cap, many
//! port-forward connections to a port that never answers, and upgraded sessions that go
//! silent (`streaming.idle_timeout`) or announce a huge WebSocket frame. Root (pods) for the
//! last four.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::cri::api;
use common::Daemon;
use common::fake_registry::status_field;
use common::pods::{pod_config_with_namespaces, run_pod};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// berthd with its streaming server on a known port.
fn daemon(streaming_extra: &str) -> (Daemon, u16) {
    let port = free_port();
    let d = Daemon::start(&format!(
        "streaming:\n  address: \"127.0.0.1:{port}\"\n{streaming_extra}"
    ));
    (d, port)
}

/// Waits up to `limit` for the server to close `s`; returns how long that took, or None.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            // A 408 or other answer before the close is fine; keep reading to the close.
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(started.elapsed()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[tokio::test]
async fn slow_request_headers_are_cut_off() {
    let (_d, port) = daemon("");
    let mut half = TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"GET /exec/abc HTTP/1.1\r\nHost: a")
        .unwrap();
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for (what, s) in [("half a header", &mut half), ("nothing", &mut silent)] {
        let took = closed_within(s, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{what}: connection still open after 20s"));
        assert!(
            took < Duration::from_secs(13),
            "{what}: closed after {took:?}"
        );
    }
}

#[tokio::test]
async fn unfinished_tls_handshakes_are_cut_off() {
    let certs = tempfile::tempdir().unwrap();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert_file, key_file) = (certs.path().join("c.pem"), certs.path().join("k.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, signing_key.serialize_pem()).unwrap();
    let (_d, port) = daemon(&format!(
        "  tls:\n    cert_file: {}\n    key_file: {}\n",
        cert_file.display(),
        key_file.display()
    ));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // The first bytes of a ClientHello record, and then nothing.
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let took =
        closed_within(&mut s, Duration::from_secs(20)).expect("handshake still open after 20s");
    assert!(took < Duration::from_secs(13), "closed after {took:?}");
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed() {
    let (_d, port) = daemon("  max_connections: 4\n");
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let took = closed_within(&mut extra, Duration::from_secs(3));
    assert!(took.is_some(), "a fifth connection was kept open");
    // One of the four leaves: a new connection is served again.
    drop(held.pop());
    std::thread::sleep(Duration::from_millis(300));
    let mut next = TcpStream::connect(("127.0.0.1", port)).unwrap();
    next.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    next.write_all(b"GET /exec/nope HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = next.read(&mut buf).expect("served");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

/// A loopback listener that never accepts, with its one-connection queue already full: a
/// connect to it waits (its SYN is dropped) until the connector gives up.
fn stuck_listener() -> (std::net::TcpListener, TcpStream, u16) {
    use nix::sys::socket::{Backlog, listen};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Listening again only changes the queue's length.
    listen(&listener.as_fd(), Backlog::new(0).unwrap()).unwrap();
    let port = listener.local_addr().unwrap().port();
    let filler = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let probe = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    );
    assert!(probe.is_err(), "the listener's queue is not full");
    (listener, filler, port)
}

#[tokio::test]
async fn port_forward_connections_do_not_each_take_a_thread() {
    let d = Daemon::start("");
    let mut cri = d.client().await;
    let host_network = api::NamespaceOption {
        network: api::NamespaceMode::Node as i32,
        ..Default::default()
    };
    let logs = d.dir.path().join("logs");
    let pod = run_pod(
        &mut cri,
        pod_config_with_namespaces("pfthreads", &logs, host_network),
    )
    .await;
    let (_listener, _filler, stuck) = stuck_listener();
    let local = free_port();
    let endpoint = format!("unix://{}", d.socket.display());
    let mut crictl = Command::new("/root/go/bin/crictl")
        .args([
            "--runtime-endpoint",
            &endpoint,
            "--image-endpoint",
            &endpoint,
        ])
        .args(["port-forward", &pod.id, &format!("{local}:{stuck}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run crictl");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut clients = vec![];
    while clients.is_empty() {
        match TcpStream::connect(("127.0.0.1", local)) {
            Ok(s) => clients.push(s),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("crictl port-forward did not listen: {e}"),
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let before = status_field(d.pid(), "Threads:");
    for _ in 0..64 {
        clients.push(TcpStream::connect(("127.0.0.1", local)).unwrap());
    }
    // Every one of them is now waiting on a connect that will not finish for seconds.
    std::thread::sleep(Duration::from_secs(2));
    let during = status_field(d.pid(), "Threads:");
    let _ = crictl.kill();
    let _ = crictl.wait();
    assert!(
        during < before + 8,
        "berthd went from {before} to {during} threads for 64 port-forward connections"
    );
    let mut cri = d.client().await;
    cri.runtime
        .version(api::VersionRequest::default())
        .await
        .expect("berthd still answers");
}

/// Each thread of `pid`: (name, network namespace link).
fn thread_netns(pid: u32) -> Vec<(String, String)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .map(|t| {
            let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            let ns = std::fs::read_link(t.path().join("ns/net")).unwrap_or_default();
            (name.trim().to_string(), ns.display().to_string())
        })
        .collect()
}

#[tokio::test]
async fn the_pod_namespace_socket_thread_returns_to_berthds_namespace() {
    let d = Daemon::start("");
    let mut cri = d.client().await;
    let logs = d.dir.path().join("logs");
    let pod = run_pod(
        &mut cri,
        pod_config_with_namespaces("pfnetns", &logs, api::NamespaceOption::default()),
    )
    .await;
    let local = free_port();
    let endpoint = format!("unix://{}", d.socket.display());
    let mut crictl = Command::new("/root/go/bin/crictl")
        .args([
            "--runtime-endpoint",
            &endpoint,
            "--image-endpoint",
            &endpoint,
        ])
        .args(["port-forward", &pod.id, &format!("{local}:1")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run crictl");
    let deadline = Instant::now() + Duration::from_secs(15);
    let made = loop {
        // Nothing listens on port 1 in the pod: the connection is refused there, but its socket
        // was made in the pod's namespace by berthd's socket thread.
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", local)) {
            let _ = closed_within(&mut s, Duration::from_secs(5));
        }
        let threads = thread_netns(d.pid());
        if threads.iter().any(|(name, _)| name == "berth-netns-soc") {
            break threads;
        }
        assert!(Instant::now() < deadline, "no socket thread: {threads:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = crictl.kill();
    let _ = crictl.wait();
    let own = std::fs::read_link(format!("/proc/{}/ns/net", d.pid())).unwrap();
    for (name, ns) in made {
        assert_eq!(
            ns,
            own.display().to_string(),
            "thread {name} stayed in another namespace"
        );
    }
}

/// A host-network pod (no image needed) and a PortForward URL into it: (host:port, path).
async fn port_forward_url(d: &Daemon, name: &str) -> (String, String) {
    let mut cri = d.client().await;
    let host_network = api::NamespaceOption {
        network: api::NamespaceMode::Node as i32,
        ..Default::default()
    };
    let logs = d.dir.path().join("logs");
    let pod = run_pod(
        &mut cri,
        pod_config_with_namespaces(name, &logs, host_network),
    )
    .await;
    let req = api::PortForwardRequest {
        pod_sandbox_id: pod.id.clone(),
        port: vec![],
    };
    let url = cri
        .runtime
        .port_forward(req)
        .await
        .unwrap()
        .into_inner()
        .url;
    let rest = url.strip_prefix("http://").expect("a plain HTTP URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    (authority.to_string(), path.to_string())
}

/// Opens `path` and upgrades it (`upgrade_headers` name the protocol); returns the connection
/// after the server's `101 Switching Protocols`.
fn upgrade(authority: &str, path: &str, upgrade_headers: &str) -> TcpStream {
    let mut s = TcpStream::connect(authority).unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n{upgrade_headers}\r\n"
    );
    s.write_all(request.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).expect("the upgrade answer"), 1, "closed");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

const SPDY: &str = "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n";
const WEBSOCKET: &str = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io\r\n";

/// A SPDY/3 PING control frame with (odd, client) id `id`.
fn spdy_ping(id: u32) -> Vec<u8> {
    let mut frame = vec![0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04];
    frame.extend_from_slice(&id.to_be_bytes());
    frame
}

#[tokio::test]
async fn silent_upgraded_sessions_are_closed_after_the_idle_timeout() {
    let (d, _) = daemon("  idle_timeout: 2s\n");
    for (what, headers) in [("SPDY", SPDY), ("WebSocket", WEBSOCKET)] {
        let (authority, path) = port_forward_url(&d, &format!("idle{}", what.len())).await;
        let mut s = upgrade(&authority, &path, headers);
        let took = closed_within(&mut s, Duration::from_secs(15))
            .unwrap_or_else(|| panic!("{what}: a silent session is still open after 15s"));
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(8),
            "{what}: closed after {took:?}"
        );
    }
}

#[tokio::test]
async fn active_upgraded_sessions_stay_open_past_the_idle_timeout() {
    let (d, _) = daemon("  idle_timeout: 2s\n");
    let (authority, path) = port_forward_url(&d, "active").await;
    let mut s = upgrade(&authority, &path, SPDY);
    // 6 s (three idle timeouts) of pings every 500 ms; each is answered.
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    for i in 0..12u32 {
        std::thread::sleep(Duration::from_millis(500));
        let id = 2 * i + 1;
        s.write_all(&spdy_ping(id))
            .unwrap_or_else(|e| panic!("ping {i}: {e}"));
        let mut answer = [0u8; 12];
        s.read_exact(&mut answer)
            .unwrap_or_else(|e| panic!("ping {i} after {} ms: {e}", 500 * (i + 1)));
        assert_eq!(answer.to_vec(), spdy_ping(id), "ping {i}");
    }
    // Then silence: it is closed one idle timeout later.
    let took = closed_within(&mut s, Duration::from_secs(15)).expect("open 15s after going silent");
    assert!(took < Duration::from_secs(8), "closed after {took:?}");
}

/// A WebSocket message may be at most 2 MiB (two of berth's largest SPDY frames): a client
/// announcing a 4 MiB frame is disconnected at its header, before berthd buffers it.
#[tokio::test]
async fn oversized_websocket_frames_are_refused() {
    let (d, _) = daemon("");
    let (authority, path) = port_forward_url(&d, "bigframe").await;
    let mut s = upgrade(&authority, &path, WEBSOCKET);
    // FIN + binary, masked, 64-bit length of 4 MiB, a zero mask key, then 3 MiB of it.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(4u64 << 20).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    s.write_all(&header).unwrap();
    let _ = s.write_all(&vec![0u8; 3 << 20]);
    let took = closed_within(&mut s, Duration::from_secs(5));
    assert!(took.is_some(), "a 4 MiB WebSocket frame is being buffered");
}
