//! The daemon's one configuration file: embedded defaults, unknown keys rejected, values checked.
//!
//! Every key is documented in `docs/config.md`; `berthd --print-default-config` prints the defaults.
//! Loading never touches the socket: an invalid file makes berthd exit before anything is bound.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The longest path a unix socket can be bound at (sun_path is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Where berthd looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/berth/config.yaml";

/// Errors while loading the configuration. Each names the file and, where known, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid YAML for berth's schema (unknown key, wrong type, ...).
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A key parsed but its value is not acceptable.
    #[error("config {path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// The whole configuration of berthd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Persistent data: image content, snapshots, the metadata database.
    pub root_dir: PathBuf,
    /// Runtime state that dies with the machine: sockets, pinned namespaces, shim state.
    pub state_dir: PathBuf,
    pub grpc: GrpcConfig,
    pub log: LogConfig,
    pub cgroup: CgroupConfig,
    pub runtime: RuntimeConfig,
    pub image: ImageConfig,
    pub build: BuildConfig,
    pub network: NetworkConfig,
    pub streaming: StreamingConfig,
    pub metrics: MetricsConfig,
    pub tracing: TracingConfig,
    pub cdi: CdiConfig,
    pub nri: NriConfig,
    /// Per-registry settings keyed by host (`host[:port]`, `docker.io` for Docker Hub).
    pub registries: BTreeMap<String, RegistryConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root_dir: PathBuf::from("/var/lib/berth"),
            state_dir: PathBuf::from("/run/berth"),
            grpc: GrpcConfig::default(),
            log: LogConfig::default(),
            cgroup: CgroupConfig::default(),
            runtime: RuntimeConfig::default(),
            image: ImageConfig::default(),
            build: BuildConfig::default(),
            network: NetworkConfig::default(),
            streaming: StreamingConfig::default(),
            metrics: MetricsConfig::default(),
            tracing: TracingConfig::default(),
            cdi: CdiConfig::default(),
            nri: NriConfig::default(),
            registries: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamingConfig {
    /// `host:port` of the Exec/Attach/PortForward server; port 0 picks a free one.
    pub address: String,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<StreamingTls>,
    /// Connections open at once (upgraded sessions included); more are closed on accept.
    pub max_connections: usize,
    /// How long a client may take for its TLS handshake and for sending each request header.
    #[serde(with = "humantime_serde_compat")]
    pub handshake_timeout: Duration,
    /// An upgraded Exec/Attach/PortForward session with no traffic either way for this long is
    /// closed (kubelet's `streaming-connection-idle-timeout`, containerd's `stream_idle_timeout`).
    #[serde(with = "humantime_serde_compat")]
    pub idle_timeout: Duration,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            address: "127.0.0.1:0".into(),
            tls: None,
            max_connections: 1024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(4 * 60 * 60),
        }
    }
}

/// Devices for containers through CDI (docs/devices.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CdiConfig {
    /// Where CDI spec files are read, lowest priority first; empty turns CDI off.
    pub spec_dirs: Vec<PathBuf>,
}

impl Default for CdiConfig {
    fn default() -> Self {
        CdiConfig {
            spec_dirs: crate::devices::registry::DEFAULT_DIRS
                .iter()
                .map(PathBuf::from)
                .collect(),
        }
    }
}

/// berth as an NRI runtime (docs/nri.md). Off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NriConfig {
    pub enable: bool,
    /// The socket external plugins connect to.
    pub socket_path: PathBuf,
    /// Where pre-installed plugins (`NN-name` executables) live. berth does not start them
    /// (yet): it warns about any it finds there; run them so that they connect to the socket.
    pub plugin_path: PathBuf,
    /// Configuration of pre-installed plugins (unused while berth starts none).
    pub plugin_config_path: PathBuf,
    /// How long a plugin may take to register after connecting.
    #[serde(with = "humantime_serde_compat")]
    pub registration_timeout: Duration,
    /// How long a plugin may take to answer one request.
    #[serde(with = "humantime_serde_compat")]
    pub request_timeout: Duration,
}

impl Default for NriConfig {
    fn default() -> Self {
        NriConfig {
            enable: false,
            socket_path: PathBuf::from("/var/run/nri/nri.sock"),
            plugin_path: PathBuf::from("/opt/nri/plugins"),
            plugin_config_path: PathBuf::from("/etc/nri/conf.d"),
            registration_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `ip:port` of the Prometheus endpoint (`GET /metrics`); empty (the default) serves none.
    pub address: String,
    /// Allow an address other than loopback: the endpoint has no authentication.
    pub allow_remote: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// OTLP/gRPC collector to send traces to (`http://127.0.0.1:4317`); empty (the default)
    /// exports none.
    pub otlp_endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamingTls {
    /// PEM certificate chain, the server's first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// The CRI unix socket kubelet and crictl connect to.
    pub socket: PathBuf,
    /// Largest gRPC message accepted or sent, in bytes.
    pub max_message_bytes: usize,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            socket: PathBuf::from("/run/berth/berth.sock"),
            max_message_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `berth=debug,h2=warn`, ...
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Human,
        }
    }
}

/// `cgroupfs` or `systemd` (see `cgroup::Driver`).
pub use crate::cgroup::Driver as CgroupDriver;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CgroupConfig {
    /// The driver kubelet must be configured with too (`RuntimeConfig` reports it).
    pub driver: CgroupDriver,
}

impl Default for CgroupConfig {
    fn default() -> Self {
        CgroupConfig {
            driver: CgroupDriver::Cgroupfs,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Privileged containers of the built-in executor do not get the host's devices (as
    /// containerd's and CRI-O's `privileged_without_host_devices`).
    pub privileged_without_host_devices: bool,
    /// External OCI runtimes offered as RuntimeClass handlers beside the built-in executor.
    pub handlers: Vec<HandlerConfig>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            privileged_without_host_devices: false,
            handlers: vec![HandlerConfig {
                name: "runc".into(),
                path: PathBuf::from("/usr/sbin/runc"),
                privileged_without_host_devices: false,
            }],
        }
    }
}

impl RuntimeConfig {
    /// The handlers (`""` for the built-in executor) whose privileged containers do not get
    /// the host's devices.
    pub fn without_host_devices(&self) -> Vec<String> {
        let built_in = self
            .privileged_without_host_devices
            .then(|| crate::DEFAULT_HANDLER.to_string());
        let external = self
            .handlers
            .iter()
            .filter(|h| h.privileged_without_host_devices);
        built_in
            .into_iter()
            .chain(external.map(|h| h.name.clone()))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerConfig {
    /// The RuntimeClass handler name kubelet sends.
    pub name: String,
    /// The OCI runtime binary (`runc`, `crun`).
    pub path: PathBuf,
    /// Its privileged containers do not get the host's devices.
    #[serde(default)]
    pub privileged_without_host_devices: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageConfig {
    /// Platform pulled from multi-platform images: `os/arch[/variant]`; empty means this node's.
    pub platform: String,
    /// Layers downloaded and unpacked at once, per pull.
    pub max_concurrent_downloads: usize,
    /// A download that receives no byte for this long fails (and is retried).
    #[serde(with = "humantime_serde_compat")]
    pub no_progress_timeout: Duration,
    /// Longest a new registry connection may take: name lookup, TCP connect and TLS handshake.
    /// Loopback registries get at most `LOOPBACK_CONNECT_TIMEOUT` (image/registry/endpoint.rs).
    #[serde(with = "humantime_serde_compat")]
    pub connect_timeout: Duration,
    /// Attempts per blob or manifest request before a pull fails.
    pub max_attempts: u32,
    /// Largest uncompressed size of one layer, in bytes (decompression-bomb guard).
    pub max_layer_bytes: u64,
    /// Largest archive `berth import` uploads, in bytes (the upload is spooled to disk first).
    pub max_import_bytes: u64,
    /// Delete a layer's compressed blob once it is unpacked (halves disk use; re-push needs a pull).
    pub discard_compressed_layers: bool,
    /// How long the verified layers of a failed or cancelled pull stay for a retry to reuse;
    /// then they are collected (at startup too).
    #[serde(with = "humantime_serde_compat")]
    pub failed_pull_grace: Duration,
    /// Free space a pull leaves on the data filesystem: `N%` of its size, or a number of bytes.
    pub disk_reserve: String,
    /// A blob connection delivering fewer bytes per second than this over `slow_download_window`
    /// is dropped and resumed with a Range request; 0 turns the check off.
    pub min_download_rate: u64,
    #[serde(with = "humantime_serde_compat")]
    pub slow_download_window: Duration,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            platform: String::new(),
            max_concurrent_downloads: 3,
            no_progress_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_attempts: 5,
            max_layer_bytes: 32 * 1024 * 1024 * 1024,
            max_import_bytes: 64 * 1024 * 1024 * 1024,
            discard_compressed_layers: false,
            failed_pull_grace: Duration::from_secs(600),
            disk_reserve: "15%".into(),
            min_download_rate: 1024,
            slow_download_window: Duration::from_secs(10),
        }
    }
}

/// Limits of `berth build`'s RUN steps (docs/building.md). Each RUN runs in a cgroup of its
/// own under berth's cgroup parent, with these limits; 0 leaves one unlimited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildConfig {
    /// Memory a RUN step may use, in bytes.
    pub memory: u64,
    /// CPUs a RUN step may use (CFS quota), fractions allowed.
    pub cpus: f64,
    /// Processes and threads a RUN step may have at once.
    pub pids: i64,
    /// Output of one RUN step forwarded to the client, in bytes; the rest is dropped with a
    /// marker line saying how much.
    pub max_output: u64,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig {
            memory: 4 * 1024 * 1024 * 1024,
            cpus: 2.0,
            pids: 4096,
            max_output: 2 * 1024 * 1024,
        }
    }
}

/// Pod networking through CNI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Where network configs are read (the first valid file in name order is used).
    pub conf_dir: PathBuf,
    /// Where plugin binaries are looked for, in order (also `CNI_PATH`).
    pub bin_dirs: Vec<PathBuf>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// Speak plain HTTP to this registry (and accept any certificate over HTTPS).
    pub insecure: bool,
    /// Extra PEM CA bundle trusted for this registry, beside the system roots.
    pub ca_file: Option<PathBuf>,
    /// Hosts tried in order before this one; the registry itself is the last fallback.
    pub mirrors: Vec<String>,
    /// Credentials used when the pull request carries none.
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Durations are written as humantime strings (`30s`, `2m`).
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

impl Config {
    /// Loads `path`. A missing file at the default path means "all defaults"; a missing file
    /// that was asked for explicitly is an error.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Config::parse(&text, path)
    }

    /// Parses and validates YAML text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
        };
        config.validate(path)?;
        Ok(config)
    }

    /// The defaults as YAML, for `--print-default-config`.
    pub fn default_yaml() -> String {
        serde_saphyr::to_string(&Config::default()).expect("the default config serialises")
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                key,
                message: message.to_string(),
            })
        };
        for (key, dir) in [
            ("root_dir", &self.root_dir),
            ("state_dir", &self.state_dir),
            ("grpc.socket", &self.grpc.socket),
            ("network.conf_dir", &self.network.conf_dir),
        ] {
            if !dir.is_absolute() {
                return invalid(key, &format!("{} is not an absolute path", dir.display()));
            }
        }
        for dir in &self.cdi.spec_dirs {
            if !dir.is_absolute() {
                let message = format!("{} is not an absolute path", dir.display());
                return invalid("cdi.spec_dirs", &message);
            }
        }
        for (key, dir) in [
            ("nri.socket_path", &self.nri.socket_path),
            ("nri.plugin_path", &self.nri.plugin_path),
            ("nri.plugin_config_path", &self.nri.plugin_config_path),
        ] {
            if !dir.is_absolute() {
                return invalid(key, &format!("{} is not an absolute path", dir.display()));
            }
        }
        if self.nri.registration_timeout.is_zero() || self.nri.request_timeout.is_zero() {
            return invalid("nri", "timeouts must be longer than zero");
        }
        // A pod's shim listens on <state_dir>/pods/<64-hex id>/shim.sock, and a unix socket path
        // holds at most 107 bytes.
        let longest_pod_socket =
            self.state_dir.as_os_str().len() + "/pods/".len() + 64 + "/shim.sock".len();
        if longest_pod_socket > MAX_SOCKET_PATH {
            return invalid(
                "state_dir",
                &format!(
                    "{} is too long: pod sockets under it would exceed {MAX_SOCKET_PATH} bytes (keep it under {} bytes)",
                    self.state_dir.display(),
                    MAX_SOCKET_PATH - (longest_pod_socket - self.state_dir.as_os_str().len()) + 1
                ),
            );
        }
        if self
            .streaming
            .address
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return invalid(
                "streaming.address",
                &format!("{:?} is not an ip:port address", self.streaming.address),
            );
        }
        let otlp = &self.tracing.otlp_endpoint;
        if !otlp.is_empty()
            && !(otlp.parse::<http::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            }))
        {
            return invalid(
                "tracing.otlp_endpoint",
                &format!("{otlp:?} is not an http:// or https:// URL"),
            );
        }
        if !self.metrics.address.is_empty() {
            match self.metrics.address.parse::<std::net::SocketAddr>() {
                Err(_) => {
                    return invalid(
                        "metrics.address",
                        &format!("{:?} is not an ip:port address", self.metrics.address),
                    );
                }
                Ok(addr) if !addr.ip().is_loopback() && !self.metrics.allow_remote => {
                    return invalid(
                        "metrics.address",
                        &format!(
                            "{addr} is not a loopback address; the endpoint has no authentication \
                             (set metrics.allow_remote: true to serve it there anyway)"
                        ),
                    );
                }
                Ok(_) => {}
            }
        }
        if let Some(tls) = &self.streaming.tls {
            for (key, file) in [
                ("streaming.tls.cert_file", &tls.cert_file),
                ("streaming.tls.key_file", &tls.key_file),
            ] {
                if !file.is_file() {
                    return invalid(key, &format!("{} is not a file", file.display()));
                }
            }
        }
        if self.grpc.max_message_bytes < 4 * 1024 * 1024 {
            return invalid("grpc.max_message_bytes", "must be at least 4194304 (4 MiB)");
        }
        if let Err(e) = self.log.level.parse::<tracing_subscriber::EnvFilter>() {
            return invalid("log.level", &format!("{:?}: {e}", self.log.level));
        }
        if self.streaming.max_connections == 0 {
            return invalid("streaming.max_connections", "must be at least 1");
        }
        if self.streaming.handshake_timeout.is_zero() {
            return invalid("streaming.handshake_timeout", "must be longer than zero");
        }
        if self.streaming.idle_timeout.is_zero() {
            return invalid(
                "streaming.idle_timeout",
                "must be longer than zero (a session cannot be kept open forever)",
            );
        }
        if self.image.max_concurrent_downloads == 0 {
            return invalid("image.max_concurrent_downloads", "must be at least 1");
        }
        if self.image.max_attempts == 0 {
            return invalid("image.max_attempts", "must be at least 1");
        }
        if self.image.no_progress_timeout.is_zero() {
            return invalid("image.no_progress_timeout", "must be longer than zero");
        }
        if self.image.connect_timeout.is_zero() {
            return invalid("image.connect_timeout", "must be longer than zero");
        }
        if let Err(e) = crate::image::unpack::DiskReserve::parse(&self.image.disk_reserve) {
            return invalid("image.disk_reserve", &e);
        }
        if self.image.slow_download_window.is_zero() {
            return invalid("image.slow_download_window", "must be longer than zero");
        }
        if self.build.memory != 0 && self.build.memory < 16 * 1024 * 1024 {
            return invalid(
                "build.memory",
                "must be 0 (unlimited) or at least 16777216 (16 MiB)",
            );
        }
        if !self.build.cpus.is_finite() || self.build.cpus < 0.0 {
            return invalid(
                "build.cpus",
                "must be 0 (unlimited) or a positive number of CPUs",
            );
        }
        if self.build.pids < 0 {
            return invalid("build.pids", "must be 0 (unlimited) or a positive number");
        }
        if self.build.max_output < 4096 {
            return invalid("build.max_output", "must be at least 4096 bytes");
        }
        if !self.image.platform.is_empty() && self.image.platform.split('/').count() < 2 {
            return invalid(
                "image.platform",
                "must look like os/arch or os/arch/variant",
            );
        }
        if self.network.bin_dirs.is_empty() {
            return invalid("network.bin_dirs", "must name at least one directory");
        }
        if let Some(dir) = self.network.bin_dirs.iter().find(|d| !d.is_absolute()) {
            return invalid(
                "network.bin_dirs",
                &format!("{} is not an absolute path", dir.display()),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for handler in &self.runtime.handlers {
            if handler.name.is_empty() || handler.name == crate::DEFAULT_HANDLER {
                return invalid(
                    "runtime.handlers.name",
                    &format!("{:?} is empty or names the built-in handler", handler.name),
                );
            }
            if !names.insert(handler.name.as_str()) {
                return invalid(
                    "runtime.handlers.name",
                    &format!("{:?} appears twice", handler.name),
                );
            }
            // A RuntimeClass handler is a DNS label; berth also names a directory after it.
            let label = handler.name.len() <= 63
                && handler
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !handler.name.starts_with('-')
                && !handler.name.ends_with('-');
            if !label {
                return invalid(
                    "runtime.handlers.name",
                    &format!("{:?} is not a DNS label (a-z, 0-9, -)", handler.name),
                );
            }
            if !handler.path.is_absolute() {
                return invalid(
                    "runtime.handlers.path",
                    &format!("{}: must be an absolute path", handler.path.display()),
                );
            }
        }
        for (host, registry) in &self.registries {
            if host.is_empty() || host.contains('/') {
                return invalid("registries", &format!("{host:?} is not a registry host"));
            }
            if registry.username.is_some() != registry.password.is_some() {
                return invalid(
                    "registries.username",
                    &format!("{host}: username and password go together"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.yaml"))
    }

    #[test]
    fn empty_file_means_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn printed_defaults_parse_back_to_the_defaults() {
        assert_eq!(parse(&Config::default_yaml()).unwrap(), Config::default());
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let c = parse("log:\n  format: json\nimage:\n  no_progress_timeout: 5s\n").unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level, "info");
        assert_eq!(c.image.no_progress_timeout, Duration::from_secs(5));
        assert_eq!(c.root_dir, PathBuf::from("/var/lib/berth"));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("grpc:\n  sockett: /x\n").unwrap_err().to_string();
        assert!(err.contains("sockett"), "{err}");
        let err = parse("bogus: 1\n").unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn metrics_are_off_by_default_and_remote_only_when_allowed() {
        assert!(Config::default().metrics.address.is_empty());
        assert!(Config::default().tracing.otlp_endpoint.is_empty());
        let c = parse("tracing:\n  otlp_endpoint: http://127.0.0.1:4317\n").unwrap();
        assert_eq!(c.tracing.otlp_endpoint, "http://127.0.0.1:4317");
        let c = parse("metrics:\n  address: 127.0.0.1:9338\n").unwrap();
        assert_eq!(c.metrics.address, "127.0.0.1:9338");
        parse("metrics:\n  address: 0.0.0.0:9338\n  allow_remote: true\n").unwrap();
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("root_dir: relative/path\n", "root_dir"),
            (&format!("state_dir: /{}\n", "s".repeat(40)), "state_dir"),
            (
                "image:\n  max_concurrent_downloads: 0\n",
                "image.max_concurrent_downloads",
            ),
            (
                "image:\n  no_progress_timeout: soon\n",
                "no_progress_timeout",
            ),
            ("image:\n  connect_timeout: 0s\n", "image.connect_timeout"),
            ("image:\n  disk_reserve: 101%\n", "image.disk_reserve"),
            ("image:\n  disk_reserve: lots\n", "image.disk_reserve"),
            ("build:\n  memory: 1000\n", "build.memory"),
            ("build:\n  cpus: -1\n", "build.cpus"),
            ("build:\n  pids: -1\n", "build.pids"),
            ("build:\n  max_output: 10\n", "build.max_output"),
            (
                "image:\n  slow_download_window: 0s\n",
                "image.slow_download_window",
            ),
            (
                "streaming:\n  max_connections: 0\n",
                "streaming.max_connections",
            ),
            (
                "streaming:\n  handshake_timeout: 0s\n",
                "streaming.handshake_timeout",
            ),
            ("streaming:\n  idle_timeout: 0s\n", "streaming.idle_timeout"),
            ("log:\n  format: xml\n", "xml"),
            ("log:\n  level: \"info,,=[\"\n", "log.level"),
            (
                "runtime:\n  handlers:\n  - name: berth\n    path: /x\n",
                "runtime.handlers.name",
            ),
            (
                "runtime:\n  handlers:\n  - name: ../up\n    path: /x\n",
                "runtime.handlers.name",
            ),
            (
                "runtime:\n  handlers:\n  - name: runc\n    path: runc\n",
                "runtime.handlers.path",
            ),
            (
                "registries:\n  r.io:\n    username: u\n",
                "registries.username",
            ),
            ("network:\n  conf_dir: net.d\n", "network.conf_dir"),
            ("streaming:\n  address: localhost\n", "streaming.address"),
            (
                "streaming:\n  tls:\n    cert_file: /nonexistent/c.pem\n    key_file: /etc/hostname\n",
                "streaming.tls.cert_file",
            ),
            ("network:\n  bin_dirs: []\n", "network.bin_dirs"),
            ("network:\n  bin_dirs: [cni]\n", "network.bin_dirs"),
            ("metrics:\n  address: localhost:9\n", "metrics.address"),
            (
                "tracing:\n  otlp_endpoint: 127.0.0.1:4317\n",
                "tracing.otlp_endpoint",
            ),
            ("tracing:\n  otlp_endpont: x\n", "otlp_endpont"),
            (
                "metrics:\n  address: 0.0.0.0:9338\n",
                "metrics.allow_remote",
            ),
            ("cdi:\n  spec_dirs: [etc/cdi]\n", "cdi.spec_dirs"),
            ("nri:\n  socket_path: nri.sock\n", "nri.socket_path"),
            ("nri:\n  request_timeout: 0s\n", "timeouts"),
        ];
        for (text, key) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?} gave {err}");
        }
    }

    #[test]
    fn missing_default_file_is_defaults_but_missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.yaml");
        assert_eq!(Config::load(&path, false).unwrap(), Config::default());
        assert!(Config::load(&path, true).is_err());
    }
}
