//! berthd's serving loop: prepare directories, bind the CRI socket safely, serve both CRI services
//! until SIGTERM/SIGINT, then drain.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tracing::field::Empty;

use crate::config::Config;
use crate::cri::{Context, Cri};
use crate::runtime::{Runtime, RuntimeSettings};
use crate::store::Store;

/// How long calls in flight may take to finish after SIGTERM/SIGINT.
const DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Caps glibc's malloc arenas for the daemon (`sys::malloc::DAEMON_ARENAS`) and fixes its mmap
/// and trim thresholds (`sys::malloc::fix_thresholds`), unless the operator set them in the
/// environment (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`,
/// `GLIBC_TUNABLES`), which glibc honours itself. Call first thing in `main`, before any thread
/// starts.
pub fn tune_malloc() {
    use crate::sys::malloc;
    let set = |name: &str| std::env::var_os(name).is_some();
    if !set("MALLOC_ARENA_MAX") {
        malloc::limit_arenas(malloc::DAEMON_ARENAS);
    }
    if !set("MALLOC_MMAP_THRESHOLD_") && !set("MALLOC_TRIM_THRESHOLD_") && !set("GLIBC_TUNABLES") {
        malloc::fix_thresholds(malloc::DAEMON_MMAP_THRESHOLD, malloc::DAEMON_TRIM_THRESHOLD);
    }
}

/// Runs berthd with a loaded, validated config until a shutdown signal arrives.
pub async fn run(config: Config) -> anyhow::Result<()> {
    for dir in [&config.root_dir, &config.state_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    if config.cgroup.driver != crate::cgroup::Driver::Cgroupfs {
        let hierarchy = crate::cgroup::Hierarchy::detect().context("cgroup.driver")?;
        crate::cgroup::check_driver(config.cgroup.driver, &hierarchy)
            .context("cgroup.driver: systemd")?;
    }
    let db = Arc::new(Store::open(&config.root_dir.join("meta.redb"))?);
    crate::runtime::dirs::harden(&config.root_dir, &config.state_dir)
        .context("set the modes of berth's directories")?;
    share_pin_dir(&config.state_dir.join("pods"))?;
    let images = Arc::new(crate::image::open(&config, db.clone()).context("open the image store")?);
    let shim = shim_binary()?;
    crate::runtime::userns_probe::probe(&shim, &config.root_dir, &config.state_dir);
    let nri = config.nri.enable.then(|| {
        crate::nri::Adaptation::new(crate::nri::plugin::Timeouts {
            registration: config.nri.registration_timeout,
            request: config.nri.request_timeout,
        })
    });
    let hooks: Arc<dyn crate::runtime::nri_seam::NriHooks> = match &nri {
        Some(adaptation) => adaptation.clone(),
        None => Arc::new(crate::runtime::nri_seam::NoNri),
    };
    let runtime = Runtime::new(
        RuntimeSettings {
            root_dir: config.root_dir.clone(),
            state_dir: config.state_dir.clone(),
            handlers: crate::runtime::handlers::check(
                &config
                    .runtime
                    .handlers
                    .iter()
                    .map(|h| (h.name.clone(), h.path.clone()))
                    .collect::<Vec<_>>(),
                &config.state_dir,
                config.cgroup.driver,
            ),
            cdi: Arc::new(crate::devices::Registry::new(config.cdi.spec_dirs.clone())),
            cgroup_driver: config.cgroup.driver,
            without_host_devices: config.runtime.without_host_devices(),
        },
        db.clone(),
        images.clone(),
        Arc::new(crate::shimclient::Launcher::new(shim.clone())),
        Arc::new(crate::network::cni::Cni::new(
            crate::network::cni::CniSettings {
                conf_dir: config.network.conf_dir.clone(),
                bin_dirs: config.network.bin_dirs.clone(),
                cache_dir: config.root_dir.join("network"),
            },
        )),
        hooks,
    );
    {
        let runtime = runtime.clone();
        let build_cache = config.root_dir.join("build").join("cache");
        images.set_snapshot_users(Box::new(move || {
            let mut keep = runtime.snapshots_in_use().unwrap_or_default();
            keep.extend(crate::build::cache::roots(
                &build_cache,
                crate::build::cache::MAX_BYTES,
            ));
            keep
        }));
    }
    runtime
        .recover()
        .await
        .context("recover pods after restart")?;
    if let Some(adaptation) = &nri {
        serve_nri(adaptation, &config.nri, &runtime)?;
    }
    images
        .sweep_leftovers()
        .await
        .context("sweep the image store")?;
    let admin = crate::admin::Admin::new(images.clone());
    let transfer = crate::admin::Transfer::new(images.clone(), config.image.max_import_bytes);
    let builder = Arc::new(crate::build::Builder {
        images: images.clone(),
        shim: shim.clone(),
        dir: config.root_dir.join("build"),
        limits: config.build.clone(),
        driver: config.cgroup.driver,
        disk_reserve: crate::image::unpack::DiskReserve::parse(&config.image.disk_reserve)
            .map_err(|e| anyhow::anyhow!("image.disk_reserve: {e}"))?,
    });
    builder.sweep();
    let admin_images = crate::admin::Images::new(images.clone(), builder);
    // Before the CRI socket: a bad streaming address or TLS file fails the start cleanly.
    let streaming = crate::streaming::Server::start(&config.streaming, runtime.clone())
        .await
        .context("start the streaming server")?;
    if !config.metrics.address.is_empty() {
        let address = config.metrics.address.parse().context("metrics.address")?;
        let bound = crate::telemetry::serve::start(address, node_snapshotter(runtime.clone()))
            .await
            .with_context(|| format!("serve metrics on {address}"))?;
        tracing::info!(address = %bound, "serving Prometheus metrics on /metrics");
    }
    // The handlers exist before the socket does: a client that sees the socket may send SIGTERM
    // at once (a service manager stopping a daemon it just started), and the default action
    // would end berthd without draining or removing the socket.
    let shutdown = shutdown_signal()?;
    let listener = bind_socket(&config.grpc.socket)?;
    let socket = config.grpc.socket.clone();
    let cri = Cri::new(Context {
        config,
        images,
        runtime,
        streaming,
    });
    tracing::info!(socket = %socket.display(), version = env!("CARGO_PKG_VERSION"), "berthd serving CRI v1");

    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let serve = tonic::transport::Server::builder()
        .trace_fn(|req| {
            let path = req.uri().path();
            let span = tracing::info_span!(
                "rpc",
                method = path.rsplit('/').next().unwrap_or(""),
                pod_id = Empty,
                container_id = Empty,
                image = Empty,
                otel.name = path.trim_start_matches('/'),
                otel.kind = "server",
            );
            crate::telemetry::otel::continue_trace(&span, req.headers());
            span
        })
        .layer(crate::telemetry::grpc::RpcMetricsLayer)
        .add_service(cri.runtime_server())
        .add_service(cri.image_server())
        .add_service(crate::admin::proto::admin_server::AdminServer::new(admin))
        .add_service(crate::admin::proto::images_server::ImagesServer::new(
            admin_images,
        ))
        .add_service(crate::admin::proto::transfer_server::TransferServer::new(
            transfer,
        ))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            shutdown.await;
            let _ = signalled_tx.send(());
        });
    // Draining waits for every open call, and a client's GetContainerEvents stream never ends
    // on its own: after the signal, calls get DRAIN_GRACE to finish, then berthd stops anyway.
    tokio::pin!(serve);
    let result = tokio::select! {
        result = &mut serve => result,
        () = async {
            let _ = signalled_rx.await;
            tokio::time::sleep(DRAIN_GRACE).await;
        } => {
            tracing::warn!(grace = ?DRAIN_GRACE, "calls still open after the drain grace; closing them");
            Ok(())
        }
    };
    let _ = std::fs::remove_file(&socket);
    result.context("serve CRI")?;
    tracing::info!("berthd stopped");
    Ok(())
}

/// Counts pods and containers by state, and live shims, for each metrics scrape.
fn node_snapshotter(runtime: Arc<Runtime>) -> crate::telemetry::serve::Snapshotter {
    use crate::runtime::records::{ContainerState, SandboxState};
    Arc::new(move || {
        let sandboxes = runtime.list_sandboxes().unwrap_or_default();
        let containers = runtime.list_containers().unwrap_or_default();
        let pods = |state| sandboxes.iter().filter(|s| s.state == state).count() as i64;
        let ctrs = |state| containers.iter().filter(|c| c.state == state).count() as i64;
        crate::telemetry::NodeSnapshot {
            pods: vec![
                ("ready", pods(SandboxState::Ready)),
                ("notready", pods(SandboxState::NotReady)),
            ],
            containers: vec![
                ("created", ctrs(ContainerState::Created)),
                ("running", ctrs(ContainerState::Running)),
                ("exited", ctrs(ContainerState::Exited)),
            ],
            shims: runtime.shim_count() as i64,
        }
    })
}

/// Binds the CRI socket with mode 0660. A stale socket file is replaced; a socket some live
/// process still answers on, or a path that is not a socket, is left alone and reported.
pub fn bind_socket(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "{}: another process is serving on this socket",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("remove stale socket {}", path.display()))?;
        }
        Ok(_) => bail!(
            "{}: exists and is not a socket; not replacing it",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
    }
    let listener = UnixListener::bind(path).with_context(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

/// Serves the NRI socket (after recovery, so plugins synchronize with the recovered pods).
fn serve_nri(
    adaptation: &Arc<crate::nri::Adaptation>,
    config: &crate::config::NriConfig,
    runtime: &Arc<Runtime>,
) -> anyhow::Result<()> {
    let listener = bind_socket(&config.socket_path).context("nri.socket_path")?;
    // Plugins run as root; nobody else may connect.
    std::fs::set_permissions(&config.socket_path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", config.socket_path.display()))?;
    adaptation.serve(listener, runtime);
    tracing::info!(socket = %config.socket_path.display(), "serving NRI plugins");
    let installed = std::fs::read_dir(&config.plugin_path)
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    if installed > 0 {
        tracing::warn!(
            dir = %config.plugin_path.display(),
            "berth does not start pre-installed NRI plugins; start them so they connect to the socket"
        );
    }
    Ok(())
}

/// berth-shim: next to berthd's own executable (installed or built together), else on PATH.
fn shim_binary() -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe().context("find berthd's own path")?;
    let beside = exe.with_file_name("berth-shim");
    if beside.is_file() {
        return Ok(beside);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("berth-shim"))
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow::anyhow!("berth-shim not found beside {} or on PATH", exe.display()))
}

/// Makes the directory holding the pods' namespace pins a shared mount of its own, so pins
/// bind-mounted inside it stay visible whatever later mounts happen around it (as `ip netns`
/// does for /run/netns).
fn share_pin_dir(dir: &Path) -> anyhow::Result<()> {
    use nix::mount::{MsFlags, mount};
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let target = dir.display().to_string();
    let mounted = mountinfo
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(target.as_str()));
    if !mounted {
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .with_context(|| format!("bind {} on itself", dir.display()))?;
    }
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .with_context(|| format!("make {} shared", dir.display()))?;
    Ok(())
}

/// Installs the SIGTERM and SIGINT handlers now; the future ends at the first of the two.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("install the SIGINT handler")?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_socket_is_replaced_but_live_one_and_regular_file_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/berth.sock");
        let live = bind_socket(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let err = bind_socket(&path).unwrap_err().to_string();
        assert!(err.contains("another process"), "{err}");
        drop(live); // the file stays behind, stale
        assert!(path.exists());
        bind_socket(&path).expect("stale socket replaced");

        let file = dir.path().join("plain");
        std::fs::write(&file, b"data").unwrap();
        let err = bind_socket(&file).unwrap_err().to_string();
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"data");
    }
}
