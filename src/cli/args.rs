//! The `berth` command line: every subcommand and flag, parsed by clap.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Where `berth` looks for berthd when neither `--socket` nor (for `doctor`) a config names one.
pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";

#[derive(Parser)]
#[command(name = "berth", version, about = "Operate a berth node runtime")]
pub struct Args {
    /// berthd's CRI socket [default: /run/berth/berth.sock; for doctor, grpc.socket of the config].
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// Output format: human-readable tables or JSON with stable keys.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

/// The tarball layout `berth export` writes.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchiveFormat {
    /// An OCI image layout (oci-layout, index.json, blobs/).
    Oci,
    /// The OCI layout plus docker save's manifest.json, loadable by `docker load`.
    Docker,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show the daemon's name and version.
    Version,
    /// Show the daemon's readiness conditions and runtime handlers.
    Info,
    /// Pull an image, with a progress bar per layer.
    Pull { image: String },
    /// List images.
    Images,
    /// Import the images of an OCI image layout or docker-archive tarball (`-` for stdin).
    Import { file: PathBuf },
    /// Write images to a tarball (`-` for stdout), like `ctr images export`.
    Export {
        /// Where to write the tarball.
        file: PathBuf,
        /// Images by name, id or id prefix.
        #[arg(required = true)]
        images: Vec<String>,
        /// The tarball's layout.
        #[arg(long, value_enum, default_value_t = ArchiveFormat::Oci)]
        format: ArchiveFormat,
    },
    /// Remove images (all their tags) by name or id.
    Rmi {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show an image's build history, newest step first.
    History { image: String },
    /// Show an image's config, manifest and layers as JSON.
    Inspect { image: String },
    /// List containers (running ones unless -a) with their pod.
    Ps {
        /// Also list created and exited containers.
        #[arg(short, long)]
        all: bool,
        /// Only containers of this pod (an id or a unique id prefix).
        #[arg(long)]
        pod: Option<String>,
    },
    /// List pod sandboxes.
    Pods,
    /// Print a container's log (the CRI log file).
    Logs {
        /// Container id or unique id prefix.
        container: String,
        /// Keep printing new lines until the container exits.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
    },
    /// Stream container lifecycle events, one line per event.
    Events,
    /// Show CPU and memory use of running containers.
    Stats {
        /// Refresh every second until interrupted.
        #[arg(short, long)]
        watch: bool,
    },
    /// Check this node's prerequisites for berth; exits non-zero if any check fails.
    Doctor {
        /// berth's config file [default: /etc/berth/config.yaml, all defaults if missing].
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a shell completion script.
    Completion { shell: clap_complete::Shell },
}
