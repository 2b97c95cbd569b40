//! `berth completion SHELL`: the shell completion script for bash, zsh, fish, elvish or PowerShell.

use clap::CommandFactory as _;

use super::args::Args;

pub fn print(shell: clap_complete::Shell) {
    let mut command = Args::command();
    clap_complete::generate(shell, &mut command, "berth", &mut std::io::stdout());
}
