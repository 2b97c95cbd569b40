//! seccomp: compiles the spec's `linux.seccomp` (libseccomp's model, as runc reads it) into a
//! classic BPF program for the native architecture, and loads it.
//!
//! The program checks the architecture, then compares the syscall number with each syscall the
//! profile names, in profile order; a syscall's rules are tried in order and the first whose
//! argument conditions all hold decides; anything else gets the default action. Conditions on
//! the same argument inside one entry are alternatives (each becomes its own rule), as runc does.
//! Names unknown on this architecture are skipped, as runc does. Syscalls made through another
//! ABI (i386 or x32 on x86_64) fail with `ENOSYS`: berth has no tables for them.

mod bpf;
mod syscalls;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
};

use super::error::{Context, StepError};
use bpf::{Cond, Group, Program};

/// The kernel's `SECCOMP_RET_*` action values.
const RET_KILL_THREAD: u32 = 0x0000_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_TRACE: u32 = 0x7ff0_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// `SECCOMP_FILTER_FLAG_*`.
const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;

/// The native architecture: its `AUDIT_ARCH_*` value and syscall table.
struct Native {
    audit_arch: u32,
    table: &'static [(&'static str, u32)],
    /// Numbers at or above this belong to another ABI on the same audit arch (x32).
    foreign_from: Option<u32>,
}

#[cfg(target_arch = "x86_64")]
const NATIVE: Native = Native {
    audit_arch: 0xc000_003e,
    table: syscalls::X86_64,
    foreign_from: Some(0x4000_0000),
};
#[cfg(target_arch = "aarch64")]
const NATIVE: Native = Native {
    audit_arch: 0xc000_00b7,
    table: syscalls::AARCH64,
    foreign_from: None,
};

/// A compiled filter, ready to load.
#[derive(Debug)]
pub(crate) struct Filter {
    program: Vec<libc::sock_filter>,
    flags: u32,
}

impl Filter {
    /// Installs the filter on the calling thread. Needs no_new_privs or CAP_SYS_ADMIN.
    pub(crate) fn load(&self) -> Result<(), StepError> {
        crate::sys::seccomp::set_filter(&self.program, self.flags)
            .ctx(|| format!("load seccomp filter ({} instructions)", self.program.len()))
    }
}

/// The syscall number of `name` on the native architecture.
pub(crate) fn number(name: &str) -> Option<u32> {
    NATIVE
        .table
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| NATIVE.table[i].1)
}

fn ret_value(action: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, StepError> {
    let data = errno.unwrap_or(libc::EPERM as u32) & 0xffff;
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => RET_KILL_THREAD,
        LinuxSeccompAction::ScmpActKillProcess => RET_KILL_PROCESS,
        LinuxSeccompAction::ScmpActTrap => RET_TRAP,
        LinuxSeccompAction::ScmpActErrno => RET_ERRNO | data,
        LinuxSeccompAction::ScmpActTrace => RET_TRACE | data,
        LinuxSeccompAction::ScmpActLog => RET_LOG,
        LinuxSeccompAction::ScmpActAllow => RET_ALLOW,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(StepError::new(
                "seccomp",
                "SCMP_ACT_NOTIFY (a seccomp agent) is not supported",
            ));
        }
    })
}

/// The rules of one profile entry: all its conditions together, or, when two of them test the
/// same argument, each condition alone.
fn entry_rules(args: &[LinuxSeccompArg]) -> Result<Vec<Vec<Cond>>, StepError> {
    let conds = args
        .iter()
        .map(|a| {
            if a.index() > 5 {
                return Err(StepError::new(
                    "seccomp",
                    format!("argument index {} out of range 0..=5", a.index()),
                ));
            }
            Ok(Cond {
                index: a.index() as u8,
                op: a.op(),
                value: a.value(),
                value_two: a.value_two().unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = [false; 6];
    let repeated = conds
        .iter()
        .any(|c| std::mem::replace(&mut seen[c.index as usize], true));
    Ok(if repeated {
        conds.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![conds]
    })
}

/// Compiles `profile` for the native architecture.
pub(crate) fn compile(profile: &LinuxSeccomp) -> Result<Filter, StepError> {
    if profile.listener_path().is_some() {
        return Err(StepError::new(
            "seccomp",
            "listenerPath (a seccomp agent) is not supported",
        ));
    }
    let default = ret_value(profile.default_action(), profile.default_errno_ret())?;
    // (syscall number, rules in order: conditions, action).
    let mut groups: Vec<Group> = Vec::new();
    for entry in profile.syscalls().iter().flatten() {
        let action = ret_value(entry.action(), entry.errno_ret())?;
        let rules = entry_rules(entry.args().as_deref().unwrap_or_default())?;
        for nr in entry.names().iter().filter_map(|n| number(n)) {
            let at = match groups.iter().position(|(n, _)| *n == nr) {
                Some(at) => at,
                None => {
                    groups.push((nr, Vec::new()));
                    groups.len() - 1
                }
            };
            groups[at]
                .1
                .extend(rules.iter().map(|conds| (conds.clone(), action)));
        }
    }
    let foreign = RET_ERRNO | libc::ENOSYS as u32;
    let program = Program::build(
        NATIVE.audit_arch,
        NATIVE.foreign_from,
        foreign,
        &groups,
        default,
    )
    .map_err(|e| StepError::new("compile seccomp profile", e))?;
    let flags = profile.flags().iter().flatten().fold(0, |acc, f| match f {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => acc | FLAG_TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => acc | FLAG_LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => acc | FLAG_SPEC_ALLOW,
    });
    Ok(Filter { program, flags })
}

#[cfg(test)]
mod tests;
