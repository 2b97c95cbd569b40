//! berth-shim: the per-pod supervisor. The runtime service issue builds it; until then it only
//! explains itself and refuses to run.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "berth-shim: the per-pod shim is started by berthd for each pod sandbox.\n\
         Pod sandboxes are not implemented yet, so there is nothing for it to supervise."
    );
    ExitCode::from(2)
}
