//! berth: the operator CLI. Talks to berthd over its CRI socket; the commands live in
//! `berth::cli`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = berth::cli::args::Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a current-thread runtime");
    match runtime.block_on(berth::cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if berth::cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}
