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

#[derive(Subcommand)]
pub enum Command {
    /// Show the daemon's name and version.
    Version,
    /// Show the daemon's readiness conditions and runtime handlers.
    Info,
    /// Pull an image, with a progress bar per layer.
    Pull { image: String },
    /// Push a stored image to a registry: only the blobs it lacks, then the manifest.
    Push {
        /// A stored image (name or id).
        image: String,
        /// Where to push it (a reference with a tag) [default: IMAGE itself].
        dest: Option<String>,
        /// Username for the registry; the password comes from $BERTH_REGISTRY_PASSWORD. Without
        /// it, the registry's `registries` config entry decides.
        #[arg(long)]
        username: Option<String>,
    },
    /// Build an image from a Dockerfile (in berthd, into its image store).
    Build {
        /// The build context directory.
        context: PathBuf,
        /// The Dockerfile [default: CONTEXT/Dockerfile].
        #[arg(short, long)]
        file: Option<PathBuf>,
        /// Name the image (repeatable).
        #[arg(short, long = "tag")]
        tags: Vec<String>,
        /// Build this stage (and what it needs) instead of the last one.
        #[arg(long)]
        target: Option<String>,
        /// A build arg, NAME=VALUE (or NAME: from the environment); repeatable.
        #[arg(long = "build-arg")]
        build_args: Vec<String>,
        /// Run every step, ignoring the layer cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Give a stored image another name.
    Tag { source: String, target: String },
    /// List images.
    Images,
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
