//! The only module of berth with `unsafe` code: thin, safe wrappers over system calls that neither
//! `nix` nor `std` expose safely. Every `unsafe` block carries a `// SAFETY:` comment. This module
//! imports nothing of berth.

pub mod bpf;
pub mod caps;
pub mod fd;
pub mod fork;
pub mod malloc;
pub mod mount;
pub mod net;
pub mod scm;
pub mod seccomp;
pub mod signal;
pub mod tty;
pub mod userns;
