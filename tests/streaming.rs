//! Exec, Attach and PortForward through berthd's streaming server, driven by the real crictl over
//! `--transport spdy` and `--transport websocket`, plus the RPCs' checks and the URLs' rules.
//! Root; busybox from the local test registry.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::cri::api;
use common::pods::*;

const TRANSPORTS: [&str; 2] = ["spdy", "websocket"];

fn crictl(socket: &std::path::Path) -> Command {
    let mut cmd = Command::new("/root/go/bin/crictl");
    let endpoint = format!("unix://{}", socket.display());
    cmd.args([
        "--runtime-endpoint",
        &endpoint,
        "--image-endpoint",
        &endpoint,
    ]);
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `cmd` with `input` on stdin; returns (exit code, stdout, stderr without crictl's config warning).
fn run(mut cmd: Command, input: Option<&[u8]>) -> (i32, String, String) {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run crictl");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("level=warning"))
        .collect::<Vec<_>>()
        .join("\n");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

#[tokio::test]
async fn crictl_exec_over_spdy_and_websocket() {
    let mut f = fixture("exec", "library/busybox:latest").await;
    let ctr = start_container(
        &mut f.cri,
        &f.pod,
        container_config("app", &f.image, &["sleep", "1000"]),
    )
    .await;
    let sock = &f.daemon.socket;
    for t in TRANSPORTS {
        let mut cmd = crictl(sock);
        cmd.args(["exec", "-r", t, &ctr, "sh", "-c", "echo out; echo err >&2"]);
        let (code, out, err) = run(cmd, None);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "out\n", "err"),
            "{t}"
        );

        // crictl exits 1 on any streamed failure; the exit code came through the v4 status.
        let mut cmd = crictl(sock);
        cmd.args(["exec", "-r", t, &ctr, "sh", "-c", "exit 3"]);
        let (code, _, err) = run(cmd, None);
        assert_eq!(code, 1, "{t}");
        assert!(
            err.contains("command terminated with exit code 3"),
            "{t}: {err}"
        );

        let mut cmd = crictl(sock);
        let script = "while read l; do echo \"<$l>\"; done; echo eof";
        cmd.args(["exec", "-r", t, "-i", &ctr, "sh", "-c", script]);
        let (code, out, _) = run(cmd, Some(b"a\nb\n"));
        assert_eq!((code, out.as_str()), (0, "<a>\n<b>\neof\n"), "{t}");

        let mut cmd = crictl(sock);
        let big = "head -c 3000000 /dev/zero | tr '\\0' x";
        cmd.args(["exec", "-r", t, &ctr, "sh", "-c", big]);
        let (code, out, _) = run(cmd, None);
        assert_eq!((code, out.len()), (0, 3_000_000), "{t}");
        assert!(out.bytes().all(|b| b == b'x'), "{t}");

        // A terminal, driven by script(1): crictl sends the size of its own terminal.
        let inner = format!(
            "stty cols 123 rows 45; /root/go/bin/crictl --runtime-endpoint unix://{} exec -r {t} -it {ctr} sh -c '[ -t 0 ] && [ -t 1 ] && echo on-a-terminal; tty; stty size'",
            sock.display()
        );
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &inner, "/dev/null"]).stdin(Stdio::null());
        let (code, out, _) = run(cmd, None);
        // script(1) sends a NUL at its stdin's end, which the terminal echoes as ^@.
        let out = out.replace(['\r', '\0'], "").replace("^@", "");
        assert_eq!(code, 0, "{t}: {out}");
        assert!(out.lines().any(|l| l == "on-a-terminal"), "{t}: {out}");
        assert!(out.lines().any(|l| l == "45 123"), "{t}: {out}");
        // A terminal of the container's own devpts, which the process can name.
        assert!(
            out.lines().any(|l| l.starts_with("/dev/pts/")),
            "{t}: {out}"
        );
    }
    // A client that goes away takes its silent process with it.
    for t in TRANSPORTS {
        let mut cmd = crictl(sock);
        cmd.args(["exec", "-r", t, &ctr, "sleep", "777"]);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let running = |sock| {
            let mut ps = crictl(sock);
            ps.args(["exec", "-s", &ctr, "ps", "-o", "args"]);
            run(ps, None).1.lines().any(|l| l.trim() == "sleep 777")
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !running(sock) {
            assert!(Instant::now() < deadline, "{t}: the exec'd sleep never ran");
            std::thread::sleep(Duration::from_millis(100));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(sock) {
            assert!(
                Instant::now() < deadline,
                "{t}: the exec'd sleep outlived its client"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The same through ExecSync (crictl exec -s), for comparison: crictl reports it alike.
    let mut cmd = crictl(sock);
    cmd.args(["exec", "-s", &ctr, "sh", "-c", "exit 3"]);
    let (code, _, err) = run(cmd, None);
    assert_eq!(code, 1);
    assert!(err.contains("exited with 3"), "{err}");
}

#[tokio::test]
async fn crictl_attach_over_spdy_and_websocket() {
    let mut f = fixture("attach", "library/busybox:latest").await;
    let mut config = container_config(
        "cat",
        &f.image,
        &["sh", "-c", "while read l; do echo \"got:$l\"; done"],
    );
    config.stdin = true;
    let ctr = start_container(&mut f.cri, &f.pod, config).await;
    for t in TRANSPORTS {
        let mut cmd = crictl(&f.daemon.socket);
        cmd.args(["attach", "-r", t, "-i", &ctr]);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        // Attach sees output from the moment it joins: write until the echo comes back.
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 256];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains("got:ping\n") {
                    break;
                }
            }
            String::from_utf8_lossy(&seen).into_owned()
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        while !reader.is_finished() && Instant::now() < deadline {
            stdin.write_all(b"ping\n").unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let seen = reader.join().unwrap();
        assert!(seen.contains("got:ping\n"), "{t}: attach read {seen:?}");
    }
}

/// One HTTP GET over a plain TCP connection; returns the body.
fn http_get(port: u16) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    Ok(resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

#[tokio::test]
async fn crictl_port_forward_over_spdy_and_websocket() {
    let mut f = fixture("pf", "library/busybox:latest").await;
    let web = "mkdir -p /www && echo hello-from-pod > /www/index.html && httpd -f -p 8080 -h /www";
    start_container(
        &mut f.cri,
        &f.pod,
        container_config("web", &f.image, &["sh", "-c", web]),
    )
    .await;
    for t in TRANSPORTS {
        let port = free_port();
        let mut cmd = crictl(&f.daemon.socket);
        cmd.args(["port-forward", "-r", t, &f.pod.id, &format!("{port}:8080")]);
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let first = loop {
            match http_get(port) {
                Ok(body) if !body.is_empty() => break body,
                _ if Instant::now() > deadline => break String::new(),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        assert_eq!(first, "hello-from-pod\n", "{t}");
        let parallel: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(move || http_get(port)))
            .collect();
        for p in parallel {
            assert_eq!(p.join().unwrap().unwrap(), "hello-from-pod\n", "{t}");
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "{t}: crictl port-forward exited"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn the_rpcs_check_requests_and_urls_are_single_use() {
    let mut f = fixture("rpcs", "library/busybox:latest").await;
    let ctr = start_container(
        &mut f.cri,
        &f.pod,
        container_config("app", &f.image, &["sleep", "1000"]),
    )
    .await;
    let exec = |id: &str, tty: bool, stdin: bool, stdout: bool, stderr: bool| api::ExecRequest {
        container_id: id.into(),
        cmd: vec!["true".into()],
        tty,
        stdin,
        stdout,
        stderr,
    };
    let code = |r: Result<tonic::Response<api::ExecResponse>, tonic::Status>| r.unwrap_err().code();
    let rt = &mut f.cri.runtime;
    assert_eq!(
        code(rt.exec(exec("nope", false, false, true, true)).await),
        tonic::Code::NotFound
    );
    assert_eq!(
        code(rt.exec(exec(&ctr, true, false, true, true)).await),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        code(rt.exec(exec(&ctr, false, false, false, false)).await),
        tonic::Code::InvalidArgument
    );
    let pf = api::PortForwardRequest {
        pod_sandbox_id: "nope".into(),
        port: vec![80],
    };
    assert_eq!(
        rt.port_forward(pf).await.unwrap_err().code(),
        tonic::Code::NotFound
    );

    let url = rt
        .exec(exec(&ctr, false, false, true, false))
        .await
        .unwrap()
        .into_inner()
        .url;
    let rest = url.strip_prefix("http://127.0.0.1:").expect(&url);
    let (port, path) = rest.split_once('/').unwrap();
    let token = path.strip_prefix("exec/").expect(&url);
    assert!(token.len() >= 16, "{url}");
    // A protocol it does not speak: 403 with the accepted list. That used the token up.
    let head = raw(
        port,
        path,
        "Upgrade: SPDY/3.1\r\nConnection: Upgrade\r\nX-Stream-Protocol-Version: v9.channel.k8s.io\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("x-accepted-stream-protocol-versions: v4.channel.k8s.io"),
        "{head}"
    );
    let head = raw(
        port,
        path,
        "Upgrade: SPDY/3.1\r\nConnection: Upgrade\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // Exited container: FailedPrecondition.
    rt.stop_container(api::StopContainerRequest {
        container_id: ctr.clone(),
        timeout: 0,
    })
    .await
    .unwrap();
    assert_eq!(
        code(rt.exec(exec(&ctr, false, false, true, false)).await),
        tonic::Code::FailedPrecondition
    );
}

/// Sends a GET with `headers` and returns the response head.
fn raw(port: &str, path: &str, headers: &str) -> String {
    let mut s = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST /{path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n{headers}\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn the_streaming_server_speaks_tls_when_configured() {
    let certs = tempfile::tempdir().unwrap();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert_file, key_file) = (certs.path().join("c.pem"), certs.path().join("k.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, signing_key.serialize_pem()).unwrap();
    let r = common::registry::registries();
    let daemon = common::Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\nstreaming:\n  tls:\n    cert_file: {}\n    key_file: {}\n",
        r.plain,
        cert_file.display(),
        key_file.display()
    ));
    let mut cri = daemon.client().await;
    let image = format!("{}/library/busybox:latest", r.plain);
    pull(&mut cri, &image).await;
    let pod = run_pod(&mut cri, pod_config("tls", &daemon.dir.path().join("logs"))).await;
    let ctr = start_container(
        &mut cri,
        &pod,
        container_config("app", &image, &["sleep", "1000"]),
    )
    .await;
    let req = api::ExecRequest {
        container_id: ctr.clone(),
        cmd: vec!["true".into()],
        stdout: true,
        ..Default::default()
    };
    let url = cri.runtime.exec(req).await.unwrap().into_inner().url;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    // crictl does not verify the streaming server's certificate unless given a CA.
    for t in TRANSPORTS {
        let mut cmd = crictl(&daemon.socket);
        cmd.args(["exec", "-r", t, &ctr, "echo", "over-tls"]);
        let (code, out, err) = run(cmd, None);
        assert_eq!((code, out.as_str()), (0, "over-tls\n"), "{t}: {err}");
    }
}
