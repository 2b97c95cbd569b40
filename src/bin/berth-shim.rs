//! berth-shim: the per-pod supervisor. The runtime service issue builds it; until then it only
//! explains itself and refuses to run. Its hidden `init` subcommand is the built-in executor's
//! fork helper (see `berth::exec`) and must be dispatched before anything else starts.

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "init") {
        berth::exec::init_main();
    }
    eprintln!(
        "berth-shim: the per-pod shim is started by berthd for each pod sandbox.\n\
         Pod sandboxes are not implemented yet, so there is nothing for it to supervise."
    );
    ExitCode::from(2)
}
