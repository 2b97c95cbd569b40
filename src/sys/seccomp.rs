//! Loading a seccomp BPF filter (`seccomp(SECCOMP_SET_MODE_FILTER)`).

use nix::errno::Errno;

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;

/// Installs `program` as a seccomp filter of the calling thread with `flags`
/// (`SECCOMP_FILTER_FLAG_*`). The caller must have set no_new_privs or hold CAP_SYS_ADMIN.
pub fn set_filter(program: &[libc::sock_filter], flags: u32) -> Result<(), Errno> {
    let len = u16::try_from(program.len()).map_err(|_| Errno::EINVAL)?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `program`, which outlives the call and holds `len` instructions;
    // the kernel copies the program and does not write through the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &prog as *const libc::sock_fprog,
        )
    };
    Errno::result(rc).map(drop)
}
