//! berth: the operator CLI. Talks to berthd over its CRI socket.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use berth::cri::api;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth", version, about = "Operate a berth node runtime")]
struct Args {
    /// berthd's CRI socket.
    #[arg(long, global = true, default_value = "/run/berth/berth.sock")]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the daemon's name and version.
    Version,
    /// Show the daemon's readiness conditions and runtime handlers.
    Info,
    /// Pull an image, with a progress bar per layer.
    Pull { image: String },
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
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a current-thread runtime");
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = berth::client::connect(&args.socket)
        .await
        .with_context(|| format!("connect to {}", args.socket.display()))?;
    match args.command {
        Command::Pull { image } => berth::cli::pull::pull(&client, &image).await?,
        Command::Images => berth::cli::images::images(&client).await?,
        Command::Rmi { images } => berth::cli::images::remove(&client, &images).await?,
        Command::History { image } => berth::cli::images::history(&client, &image).await?,
        Command::Inspect { image } => berth::cli::images::inspect(&client, &image).await?,
        Command::Version => {
            let v = client
                .runtime
                .version(api::VersionRequest::default())
                .await?
                .into_inner();
            println!(
                "{} {} (CRI {})",
                v.runtime_name, v.runtime_version, v.runtime_api_version
            );
        }
        Command::Info => {
            let s = client
                .runtime
                .status(api::StatusRequest { verbose: false })
                .await?
                .into_inner();
            for c in s.status.map(|s| s.conditions).unwrap_or_default() {
                let reason = if c.status {
                    String::new()
                } else {
                    format!(" ({}: {})", c.reason, c.message)
                };
                println!("{:<14} {}{}", c.r#type, c.status, reason);
            }
            for h in s.runtime_handlers {
                let name = if h.name.is_empty() {
                    "(default)"
                } else {
                    &h.name
                };
                println!("handler        {name}");
            }
        }
    }
    Ok(())
}
