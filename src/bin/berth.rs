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
    let result = runtime.block_on(berth::cli::run(args));
    // A read of stdin (exec -i) may still be blocked: do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if berth::cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(ref e) if let Some(exit) = e.downcast_ref::<berth::cli::attach::Exit>() => {
            ExitCode::from(u8::try_from(exit.0).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}
