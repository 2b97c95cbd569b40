//! A timing client for `e2e/bench/pods.sh`: drives any CRI runtime service on a unix socket
//! (berthd's or containerd's) with one gRPC connection and measures each RPC from the client's
//! side, without crictl's process start-up in the numbers.
//!
//! ```text
//! bench_client --socket S pods --image IMG [--count N] [--keep] [--prefix P] [--cgroup-parent C] [--log-dir D]
//! bench_client --socket S exec --image IMG [--runs N] [--warmup W]
//! bench_client --socket S clean [--prefix P]
//! bench_client --socket S pull IMAGE
//! ```
//!
//! `pods` starts N host-network pods (with `--pod-network`, pods on the runtime's CNI network)
//! one after the other, each with one `sleep 3600` container,
//! and prints one JSON line per pod with the milliseconds RunPodSandbox, CreateContainer and
//! StartContainer took; without `--keep` each pod is stopped and removed (also timed) before the
//! next one starts. `exec` starts one such pod and prints the milliseconds of each ExecSync
//! `echo hi` after the warm-up calls, one per line. `clean` stops and removes every pod whose name
//! starts with the prefix. `pull` (for `e2e/bench/pull.sh`) pulls one image and prints the
//! milliseconds the PullImage call took, its reply's image id after a space. Namespaces are what kubelet asks for a `hostNetwork: true` pod:
//! network NODE, pid CONTAINER, ipc POD.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use berth::cri::api;
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    /// The CRI socket (berthd's or containerd's).
    #[arg(long)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start pods one by one and time each phase.
    Pods {
        #[command(flatten)]
        pod: PodArgs,
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Leave the pods running (and print their ids) instead of removing each one.
        #[arg(long)]
        keep: bool,
    },
    /// Time ExecSync `echo hi` in a running container.
    Exec {
        #[command(flatten)]
        pod: PodArgs,
        #[arg(long, default_value_t = 100)]
        runs: usize,
        #[arg(long, default_value_t = 5)]
        warmup: usize,
    },
    /// Time one PullImage.
    Pull { image: String },
    /// Stop and remove every pod whose name starts with the prefix.
    Clean {
        #[arg(long, default_value = "bench")]
        prefix: String,
    },
}

#[derive(clap::Args, Clone)]
struct PodArgs {
    /// The container image (already pulled).
    #[arg(long)]
    image: String,
    /// Pod names are `<prefix>-<n>`; a pod's uid is its name.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Each pod's cgroup parent is `<cgroup-parent>/<pod name>` (kubelet's pod cgroup).
    #[arg(long, default_value = "")]
    cgroup_parent: String,
    /// Pod log directories are `<log-dir>/<pod name>`; none when empty.
    #[arg(long, default_value = "")]
    log_dir: String,
    /// Give pods their own network namespace (the runtime's CNI network) instead of the host's.
    #[arg(long)]
    pod_network: bool,
}

type Runtime = api::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>;
type Images = api::image_service_client::ImageServiceClient<tonic::transport::Channel>;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_client: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let client = berth::client::connect(&cli.socket)
        .await
        .with_context(|| format!("connect to {}", cli.socket.display()))?;
    let mut rt = client.runtime;
    rt.version(api::VersionRequest::default())
        .await
        .context("Version")?;
    match cli.command {
        Command::Pods { pod, count, keep } => pods(&mut rt, &pod, count, keep).await,
        Command::Exec { pod, runs, warmup } => exec(&mut rt, &pod, runs, warmup).await,
        Command::Clean { prefix } => clean(&mut rt, &prefix).await,
        Command::Pull { image } => pull(client.image, image).await,
    }
}

/// One PullImage on the connection already made (the Version call above opened it).
async fn pull(mut images: Images, image: String) -> Result<()> {
    let request = api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: image.clone(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = Instant::now();
    let reply = images
        .pull_image(request)
        .await
        .with_context(|| format!("PullImage {image}"))?;
    println!("{:.3} {}", ms(t), reply.into_inner().image_ref);
    Ok(())
}

/// Milliseconds since `t`, to the microsecond.
fn ms(t: Instant) -> f64 {
    (t.elapsed().as_micros() as f64) / 1000.0
}

/// A name not used by an earlier run: the prefix plus the wall clock in microseconds.
fn unique_name(prefix: &str, n: usize) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{prefix}-{}-{n}", now.as_micros())
}

fn namespaces(args: &PodArgs) -> api::NamespaceOption {
    api::NamespaceOption {
        network: if args.pod_network {
            api::NamespaceMode::Pod as i32
        } else {
            api::NamespaceMode::Node as i32
        },
        pid: api::NamespaceMode::Container as i32,
        ipc: api::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn pod_config(args: &PodArgs, name: &str) -> api::PodSandboxConfig {
    let cgroup_parent = if args.cgroup_parent.is_empty() {
        String::new()
    } else {
        format!("{}/{name}", args.cgroup_parent.trim_end_matches('/'))
    };
    let log_directory = if args.log_dir.is_empty() {
        String::new()
    } else {
        format!("{}/{name}", args.log_dir.trim_end_matches('/'))
    };
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.to_string(),
            uid: name.to_string(),
            namespace: "bench".into(),
            attempt: 0,
        }),
        log_directory,
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent,
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces(args)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(args: &PodArgs) -> api::ContainerConfig {
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "sleep".into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: args.image.clone(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "3600".into()],
        log_path: if args.log_dir.is_empty() {
            String::new()
        } else {
            "sleep/0.log".into()
        },
        linux: Some(api::LinuxContainerConfig {
            security_context: Some(api::LinuxContainerSecurityContext {
                namespace_options: Some(namespaces(args)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One started pod and how long each step took, in ms.
struct Started {
    pod_id: String,
    container_id: String,
    runp: f64,
    create: f64,
    start: f64,
}

async fn start_pod(rt: &mut Runtime, args: &PodArgs, name: &str) -> Result<Started> {
    let config = pod_config(args, name);
    let t = Instant::now();
    let pod_id = rt
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .with_context(|| format!("RunPodSandbox {name}"))?
        .into_inner()
        .pod_sandbox_id;
    let runp = ms(t);
    let t = Instant::now();
    let container_id = rt
        .create_container(api::CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(container_config(args)),
            sandbox_config: Some(config),
        })
        .await
        .with_context(|| format!("CreateContainer in {name}"))?
        .into_inner()
        .container_id;
    let create = ms(t);
    let t = Instant::now();
    rt.start_container(api::StartContainerRequest {
        container_id: container_id.clone(),
    })
    .await
    .with_context(|| format!("StartContainer {container_id}"))?;
    let start = ms(t);
    let status = rt
        .container_status(api::ContainerStatusRequest {
            container_id: container_id.clone(),
            verbose: false,
        })
        .await
        .with_context(|| format!("ContainerStatus {container_id}"))?
        .into_inner()
        .status
        .context("ContainerStatus without a status")?;
    ensure!(
        status.state == api::ContainerState::ContainerRunning as i32,
        "container {container_id} of {name} is not running after StartContainer: {status:?}"
    );
    Ok(Started {
        pod_id,
        container_id,
        runp,
        create,
        start,
    })
}

/// StopPodSandbox then RemovePodSandbox; returns the ms of each.
async fn remove_pod(rt: &mut Runtime, pod_id: &str) -> Result<(f64, f64)> {
    let t = Instant::now();
    rt.stop_pod_sandbox(api::StopPodSandboxRequest {
        pod_sandbox_id: pod_id.to_string(),
    })
    .await
    .with_context(|| format!("StopPodSandbox {pod_id}"))?;
    let stop = ms(t);
    let t = Instant::now();
    rt.remove_pod_sandbox(api::RemovePodSandboxRequest {
        pod_sandbox_id: pod_id.to_string(),
    })
    .await
    .with_context(|| format!("RemovePodSandbox {pod_id}"))?;
    Ok((stop, ms(t)))
}

async fn pods(rt: &mut Runtime, args: &PodArgs, count: usize, keep: bool) -> Result<()> {
    for n in 0..count {
        let name = unique_name(&args.prefix, n);
        let s = start_pod(rt, args, &name).await?;
        let mut line = serde_json::json!({
            "pod": name,
            "pod_id": s.pod_id,
            "container_id": s.container_id,
            "runp_ms": s.runp,
            "create_ms": s.create,
            "start_ms": s.start,
            "create_start_ms": s.create + s.start,
            "total_ms": s.runp + s.create + s.start,
        });
        if !keep {
            let (stop, remove) = remove_pod(rt, &s.pod_id).await?;
            line["stopp_ms"] = stop.into();
            line["rmp_ms"] = remove.into();
        }
        println!("{line}");
    }
    Ok(())
}

async fn exec(rt: &mut Runtime, args: &PodArgs, runs: usize, warmup: usize) -> Result<()> {
    let name = unique_name(&args.prefix, 0);
    let s = start_pod(rt, args, &name).await?;
    let result = exec_loop(rt, &s.container_id, runs, warmup).await;
    let removed = remove_pod(rt, &s.pod_id).await;
    result?;
    removed?;
    Ok(())
}

async fn exec_loop(rt: &mut Runtime, container_id: &str, runs: usize, warmup: usize) -> Result<()> {
    for i in 0..warmup + runs {
        let t = Instant::now();
        let reply = rt
            .exec_sync(api::ExecSyncRequest {
                container_id: container_id.to_string(),
                cmd: vec!["echo".into(), "hi".into()],
                timeout: 10,
            })
            .await
            .with_context(|| format!("ExecSync in {container_id}"))?
            .into_inner();
        let took = ms(t);
        if reply.exit_code != 0 || reply.stdout != b"hi\n" {
            bail!(
                "ExecSync echo hi: exit {}, stdout {:?}, stderr {:?}",
                reply.exit_code,
                String::from_utf8_lossy(&reply.stdout),
                String::from_utf8_lossy(&reply.stderr)
            );
        }
        if i >= warmup {
            println!("{took:.3}");
        }
    }
    Ok(())
}

async fn clean(rt: &mut Runtime, prefix: &str) -> Result<()> {
    let pods = rt
        .list_pod_sandbox(api::ListPodSandboxRequest::default())
        .await
        .context("ListPodSandbox")?
        .into_inner()
        .items;
    let mut failed = Vec::new();
    for pod in pods {
        let name = pod.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or("");
        if !name.starts_with(prefix) {
            continue;
        }
        // A stop that fails once (a container slow to die) usually succeeds when retried.
        let mut last = None;
        for _ in 0..3 {
            match remove_pod(rt, &pod.id).await {
                Ok(_) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Some(e) = last {
            failed.push(format!("{e:#}"));
        }
    }
    ensure!(failed.is_empty(), "{}", failed.join("; "));
    Ok(())
}
