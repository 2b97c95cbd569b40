//! berthd: the CRI daemon. Parses flags, loads the config (failing before any socket is bound),
//! then serves.

use std::path::PathBuf;
use std::process::ExitCode;

use berth::config::{Config, DEFAULT_CONFIG_PATH};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "berthd",
    version,
    about = "berth: a Kubernetes CRI container runtime daemon"
)]
struct Args {
    /// Configuration file (YAML). Defaults apply to every key it does not set.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print the default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
}

fn main() -> ExitCode {
    // Before any thread exists, so no thread gets an arena beyond the cap.
    berth::server::tune_malloc();
    let args = Args::parse();
    if args.print_default_config {
        print!("{}", Config::default_yaml());
        return ExitCode::SUCCESS;
    }
    let (path, explicit) = match &args.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let config = match Config::load(&path, explicit) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("berthd: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("berthd: start async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The trace exporter sends its batches from a task of this runtime.
    let _entered = runtime.enter();
    let traces = match berth::logging::init(&config.log, &config.tracing.otlp_endpoint) {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("berthd: tracing.otlp_endpoint: {e:#}");
            return ExitCode::from(2);
        }
    };
    let code = match runtime.block_on(berth::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berthd: {e:#}");
            ExitCode::FAILURE
        }
    };
    if let Some(traces) = traces
        && let Err(e) = traces.shutdown()
    {
        eprintln!("berthd: flushing traces: {e}");
    }
    code
}
