//! berth-shim: the per-pod supervisor (`berth-shim serve`, see `berth::shim`). Its hidden
//! subcommands are dispatched first, before anything could start a thread: `init` is the
//! built-in executor's fork helper (`berth::exec`), `pause` the init of a pod-shared PID
//! namespace, `hold` what keeps a container's systemd scope until its exit is read, `build-run`
//! the container of one `berth build` RUN step.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match std::env::args_os().nth(1) {
        Some(a) if a == "init" => berth::exec::init_main(),
        Some(a) if a == "pause" => berth::shim::pause_main(),
        Some(a) if a == "hold" => berth::shim::hold_main(),
        Some(a) if a == "build-run" => return berth::build::runner_main(),
        _ => {}
    }
    match berth::shim::Cli::parse().command {
        berth::shim::Command::Serve(args) => berth::shim::serve_main(args),
    }
}
