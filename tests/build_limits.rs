//! What a RUN step of `berth build` can do to the node, tried for real: a fork bomb and a
//! memory hog meet the step's own cgroup limits (`build.*`), and the cgroup is gone afterwards;
//! a step printing without end is clipped at `build.max_output`; a step's processes die with a
//! cancelled build and with a killed berthd; a step reaches neither the host's network (unless
//! the build asks for it) nor more than the container defaults (capabilities, no new
//! privileges, seccomp); a step filling the disk stops at `image.disk_reserve`. Needs root,
//! berthd and the local registry (`hack/registry.sh start`, `hack/testimages/build.sh`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use berth::client::proto::{BuildOutput, BuildRequest};
use common::Daemon;
use common::registry::registries;

/// A daemon that pulls from the local registry, with `extra` config; and the busybox image.
fn daemon_with(extra: &str) -> (Daemon, String) {
    let r = registries();
    let d = Daemon::start(&format!(
        "registries:\n  \"{}\":\n    insecure: true\n{extra}",
        r.plain
    ));
    (d, format!("{}/library/busybox:latest", r.plain))
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    ctx
}

async fn start(
    d: &Daemon,
    ctx: &Path,
    network: &str,
) -> Result<tonic::Streaming<BuildOutput>, tonic::Status> {
    let mut client = d.client().await;
    let request = BuildRequest {
        context: ctx.display().to_string(),
        no_cache: true,
        network: network.into(),
        ..Default::default()
    };
    Ok(client.images.build(request).await?.into_inner())
}

/// Builds to the end: every line received, and the image id or the error.
async fn build(
    d: &Daemon,
    ctx: &Path,
    network: &str,
) -> (Vec<String>, Result<String, tonic::Status>) {
    let mut lines = Vec::new();
    let mut stream = match start(d, ctx, network).await {
        Ok(stream) => stream,
        Err(e) => return (lines, Err(e)),
    };
    loop {
        match stream.message().await {
            Ok(Some(out)) if !out.image_id.is_empty() => return (lines, Ok(out.image_id)),
            Ok(Some(out)) => lines.push(out.line),
            Ok(None) => panic!("build stream ended without a result: {lines:#?}"),
            Err(e) => return (lines, Err(e)),
        }
    }
}

/// Lines a RUN printed (without the `  | ` prefix).
fn printed(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("  | "))
        .map(str::to_string)
        .collect()
}

/// Host pids running `sleep <seconds>`.
fn sleepers(seconds: u32) -> Vec<i32> {
    let want = format!("sleep\0{seconds}\0");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read(entry.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// Waits up to 15 s for every `sleep <seconds>` to be gone; kills what is left (so a failing
/// run leaves nothing) and returns it.
async fn left_running(seconds: u32) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !sleepers(seconds).is_empty() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left = sleepers(seconds);
    for pid in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    left
}

fn unique_seconds() -> u32 {
    100_000 + rand::random::<u32>() % 800_000
}

#[tokio::test]
async fn run_steps_are_held_by_their_own_cgroup_limits_and_the_cgroup_goes() {
    let mib = 1024 * 1024;
    let (d, base) = daemon_with(&format!("build:\n  pids: 32\n  memory: {}\n", 64 * mib));
    // A fork bomb: 100 background processes, counted from inside the step's pid namespace
    // (with shell builtins only: at the limit nothing can fork).
    let ctx = context(&format!(
        "FROM {base}\nRUN cat /proc/self/cgroup; (for i in $(seq 100); do sleep 600 & done) 2>/dev/null; set -- /proc/[0-9]*; echo $#\n"
    ));
    let (lines, result) = build(&d, ctx.path(), "").await;
    result.unwrap_or_else(|e| panic!("{e:?} {lines:#?}"));
    let out = printed(&lines);
    let count: usize = out.last().and_then(|l| l.trim().parse().ok()).unwrap();
    assert!(
        count <= 32,
        "{count} processes with build.pids 32: {out:#?}"
    );
    // The step ran in a cgroup of its own under berth's parent, removed with the step.
    let own: Vec<&str> = out
        .iter()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .filter(|p| p.contains("/build-"))
        .collect();
    assert!(!own.is_empty(), "not in a build cgroup: {out:#?}");
    for path in own {
        for hierarchy in ["pids", "memory", "unified", ""] {
            let dir = Path::new("/sys/fs/cgroup")
                .join(hierarchy)
                .join(path.trim_start_matches('/'));
            assert!(!dir.exists(), "{} is left", dir.display());
        }
    }
    // A memory hog: a 200 MiB buffer with build.memory 64 MiB is OOM-killed.
    let ctx = context(&format!(
        "FROM {base}\nRUN dd if=/dev/zero of=/dev/null bs=200M count=1\n"
    ));
    let (lines, result) = build(&d, ctx.path(), "").await;
    let err = result.expect_err("a 200 MiB buffer under a 64 MiB limit");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("exited with code 137"),
        "{err:?} {lines:#?}"
    );
}

#[tokio::test]
async fn a_run_printing_without_end_is_clipped_at_max_output() {
    let (d, base) = daemon_with("build:\n  max_output: 65536\n");
    // 50 MB on one line, then 200000 short lines.
    let ctx = context(&format!(
        "FROM {base}\nRUN head -c 50000000 /dev/zero | tr '\\0' a; echo; seq 1 200000\n"
    ));
    let (lines, result) = build(&d, ctx.path(), "").await;
    result.unwrap_or_else(|e| panic!("{e:?}"));
    let out = printed(&lines);
    let bytes: usize = out
        .iter()
        .filter(|l| !l.contains("output clipped"))
        .map(String::len)
        .sum();
    assert!(bytes <= 65536, "{bytes} bytes of step output forwarded");
    let marker = lines
        .iter()
        .find(|l| l.contains("output clipped"))
        .expect("a marker line says the output was clipped");
    assert!(marker.contains("build.max_output"), "{marker}");
}

#[tokio::test]
async fn a_cancelled_build_kills_its_run_and_leaves_nothing() {
    let (d, base) = daemon_with("");
    let (a, b) = (unique_seconds(), unique_seconds() + 1);
    let ctx = context(&format!(
        "FROM {base}\nRUN (sleep {a} &); echo step-running; sleep {b}\n"
    ));
    let mut stream = start(&d, ctx.path(), "").await.unwrap();
    while let Some(out) = stream.message().await.unwrap() {
        if out.line == "  | step-running" {
            break;
        }
    }
    // Both sleeps run; then the client goes away.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleepers(b).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!sleepers(a).is_empty() && !sleepers(b).is_empty());
    drop(stream);
    let left = [left_running(a).await, left_running(b).await].concat();
    assert_eq!(left, Vec::<i32>::new(), "step processes outlived the build");
    let deadline = Instant::now() + Duration::from_secs(10);
    let leftovers = || {
        let mut out = common::mounts_under(d.dir.path());
        out.retain(|m| !m.contains("/state/"));
        let build = d.dir.path().join("root/build");
        for e in std::fs::read_dir(build).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with("step-") {
                out.push(e.path().display().to_string());
            }
        }
        out
    };
    while !leftovers().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn a_killed_berthd_takes_its_run_steps_with_it() {
    let (mut d, base) = daemon_with("");
    let a = unique_seconds();
    let ctx = context(&format!(
        "FROM {base}\nRUN cat /proc/self/cgroup; echo step-running; sleep {a}\n"
    ));
    let mut stream = start(&d, ctx.path(), "").await.unwrap();
    let mut cgroup = None;
    while let Some(out) = stream.message().await.unwrap() {
        let own = out.line.split(':').nth(2).filter(|p| p.contains("/build-"));
        if let Some(path) = own {
            cgroup = Some(path.to_string());
        }
        if out.line == "  | step-running" {
            break;
        }
    }
    let cgroup = cgroup.expect("the step's cgroup");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleepers(a).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!sleepers(a).is_empty());
    d.kill9();
    assert_eq!(left_running(a).await, Vec::<i32>::new());
    // The step's cgroup goes too, though berthd is not there to remove it.
    let dir = Path::new("/sys/fs/cgroup/pids").join(cgroup.trim_start_matches('/'));
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!dir.exists(), "{} is left", dir.display());
}

#[tokio::test]
async fn run_steps_get_container_defaults_and_only_loopback_unless_asked() {
    let (d, base) = daemon_with("");
    // A service on the host's loopback that counts connections (and closes each at once).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = reached.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if listener.accept().is_ok() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let reached = move || reached.load(std::sync::atomic::Ordering::SeqCst);
    let ctx = context(&format!(
        "FROM {base}\nRUN grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; nc -w 2 127.0.0.1 {port} </dev/null; echo done\n"
    ));
    let (lines, result) = build(&d, ctx.path(), "").await;
    result.unwrap_or_else(|e| panic!("{e:?} {lines:#?}"));
    let out = printed(&lines).join("\n");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // Docker's and berth's default set: chown dac_override fowner fsetid kill setgid setuid
    // setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap.
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert_eq!(
        reached(),
        0,
        "a RUN step reached a service on the host's loopback"
    );
    // `--network host` asks for the host's network.
    let (lines, result) = build(&d, ctx.path(), "host").await;
    result.unwrap_or_else(|e| panic!("{e:?} {lines:#?}"));
    assert_eq!(
        reached(),
        1,
        "--network host did not reach the host: {lines:#?}"
    );
}

#[tokio::test]
async fn a_run_filling_the_disk_stops_at_the_reserve() {
    // berthd's data on a 256 MiB tmpfs with a 50% reserve; the step writes 200 MB.
    let r = registries();
    let mut root = std::path::PathBuf::new();
    let d = Daemon::start_with(
        |dir| {
            root = dir.join("root");
            common::host::mount_tmpfs(&root, "256m");
        },
        &format!(
            "registries:\n  \"{}\":\n    insecure: true\nimage:\n  disk_reserve: 50%\n",
            r.plain
        ),
    );
    let _unmount = common::host::Tmpfs(root.clone());
    let base = format!("{}/library/busybox:latest", r.plain);
    let ctx = context(&format!(
        "FROM {base}\nRUN head -c 200000000 /dev/zero > /big\n"
    ));
    let (lines, result) = build(&d, ctx.path(), "").await;
    let err = result.expect_err("a step past the disk reserve");
    assert_eq!(
        err.code(),
        tonic::Code::ResourceExhausted,
        "{err:?} {lines:#?}"
    );
    assert!(err.message().contains("image.disk_reserve"), "{err:?}");
    let steps: Vec<_> = std::fs::read_dir(root.join("build"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("step-"))
        .collect();
    assert!(steps.is_empty(), "the step's scratch dir is left");
}

#[tokio::test]
async fn build_errors_carry_the_right_code_and_line() {
    let (d, base) = daemon_with("");
    let cases = [
        // The base image's registry cannot be reached: Unavailable, as the pull says.
        (
            "FROM 127.0.0.1:1/nothing/here:v1\n".to_string(),
            tonic::Code::Unavailable,
            "127.0.0.1:1",
        ),
        (
            format!("FROM {base}\nCOPY missing.txt /x\n"),
            tonic::Code::InvalidArgument,
            "line 2: COPY",
        ),
        (
            format!("FROM {base}\nCOPY --chown=nosuchuser Dockerfile /x\n"),
            tonic::Code::InvalidArgument,
            "line 2: COPY",
        ),
    ];
    for (dockerfile, code, message) in cases {
        let ctx = context(&dockerfile);
        let (_, result) = build(&d, ctx.path(), "").await;
        let err = result.expect_err(&dockerfile);
        assert_eq!(err.code(), code, "{dockerfile}: {err:?}");
        assert!(err.message().contains(message), "{dockerfile}: {err:?}");
    }
}
