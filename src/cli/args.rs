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
        /// The network of RUN steps: `none` (only loopback) or `host` (the node's network).
        #[arg(long, default_value = "none", value_parser = ["none", "host"])]
        network: String,
    },
    /// Give a stored image another name.
    Tag { source: String, target: String },
    /// Manage the build cache.
    Builder {
        #[command(subcommand)]
        command: BuilderCommand,
    },
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
    /// Run a command in a running container through the streaming server; exits with its code.
    Exec {
        /// Keep stdin open and send it to the command.
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a terminal (puts this one in raw mode when it is one).
        #[arg(short, long)]
        tty: bool,
        /// Container id or unique id prefix.
        container: String,
        /// The command and its arguments.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Attach to a running container's stdio; -t must match the container's own tty setting.
    Attach {
        /// Send stdin to the container.
        #[arg(short, long)]
        interactive: bool,
        /// The container has a terminal (puts this one in raw mode when it is one).
        #[arg(short, long)]
        tty: bool,
        /// Container id or unique id prefix.
        container: String,
    },
    /// Stream container lifecycle events, one line per event.
    Events,
    /// Show CPU, memory, PIDs and network I/O per pod (containers beneath), refreshed in place.
    Stats {
        /// Print one table and exit (-o json always prints once).
        #[arg(long)]
        no_stream: bool,
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

#[derive(Subcommand)]
pub enum BuilderCommand {
    /// Drop the whole build cache: the next build runs every step; layers no image uses are freed.
    Prune,
}
