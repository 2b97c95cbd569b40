//! The container process's stdio as received from the caller, installed on descriptors 0-2.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, setsid};

use super::error::{Context, StepError};
use super::protocol::StdioShape;
use crate::sys::tty::set_controlling_terminal;

/// Descriptors for 0, 1 and 2, and whether they are a terminal.
#[derive(Debug)]
pub(crate) struct ChildStdio {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    tty: bool,
}

impl ChildStdio {
    /// Maps the received descriptors by `shape`; a missing stdin becomes `/dev/null`.
    pub fn new(shape: StdioShape, fds: Vec<OwnedFd>) -> Result<ChildStdio, StepError> {
        let count = |want: usize| {
            if fds.len() == want {
                Ok(())
            } else {
                let msg = format!("expected {want} descriptors, got {}", fds.len());
                Err(StepError::new("receive stdio", msg))
            }
        };
        let mut it = fds.iter();
        let dup = |fd: Option<&OwnedFd>| -> Result<OwnedFd, StepError> {
            fd.ok_or_else(|| StepError::new("receive stdio", "descriptor missing"))?
                .try_clone()
                .ctx(|| "duplicate stdio descriptor")
        };
        match shape {
            StdioShape::Tty => {
                count(1)?;
                let tty = dup(it.next())?;
                Ok(ChildStdio {
                    stdin: tty.try_clone().ctx(|| "duplicate tty")?,
                    stdout: tty.try_clone().ctx(|| "duplicate tty")?,
                    stderr: tty,
                    tty: true,
                })
            }
            StdioShape::Pipes { stdin } => {
                count(if stdin { 3 } else { 2 })?;
                let stdin = match stdin {
                    true => dup(it.next())?,
                    false => File::open("/dev/null").ctx(|| "open /dev/null")?.into(),
                };
                Ok(ChildStdio {
                    stdin,
                    stdout: dup(it.next())?,
                    stderr: dup(it.next())?,
                    tty: false,
                })
            }
        }
    }

    /// Whether descriptor 0 is a terminal (the process gets a `/dev/console`).
    pub fn is_tty(&self) -> bool {
        self.tty
    }

    /// Starts a new session (made the terminal's session when it is a tty) and installs the
    /// descriptors as 0, 1 and 2.
    pub fn install(self) -> Result<(), StepError> {
        setsid().ctx(|| "start a new session")?;
        if self.tty {
            set_controlling_terminal(self.stdin.as_fd()).ctx(|| "set the controlling terminal")?;
        }
        dup2_stdin(&self.stdin).ctx(|| "install stdin")?;
        dup2_stdout(&self.stdout).ctx(|| "install stdout")?;
        dup2_stderr(&self.stderr).ctx(|| "install stderr")?;
        Ok(())
    }
}
