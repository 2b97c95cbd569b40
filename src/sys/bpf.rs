//! The `bpf(2)` calls of the cgroup v2 device policy: load a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program and attach it to a cgroup directory with `BPF_F_ALLOW_MULTI`.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
/// Size of the verifier log asked for when a load fails.
const LOG_SIZE: usize = 1 << 16;

/// The `BPF_PROG_LOAD` part of `union bpf_attr` (fields up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `repr(C)` prefix of `union bpf_attr` for `cmd`, and
    // its size is passed with it; the kernel reads (and for a log, writes) only within it and
    // within the buffers it points to, which the callers keep alive across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads `code` (encoded `struct bpf_insn`s) as a cgroup device program. On failure the error
/// holds the kernel's error and the verifier's log.
pub fn load_cgroup_device_program(code: &[u8]) -> Result<OwnedFd, String> {
    let license = c"Apache-2.0";
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: (code.len() / 8) as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..ProgLoad::default()
    };
    attr.prog_name[..11].copy_from_slice(b"berth_devcg");
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: a successful BPF_PROG_LOAD returns a new descriptor that nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            // Again with the verifier's log, to say why.
            let mut log = vec![0u8; LOG_SIZE];
            attr.log_level = 1;
            attr.log_size = LOG_SIZE as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            if let Ok(fd) = bpf(BPF_PROG_LOAD, &mut attr) {
                // SAFETY: as above.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            Err(format!("{e}; verifier: {}", text.trim()))
        }
    }
}

/// Attaches `program` to the cgroup directory `cgroup` beside any other device programs
/// (`BPF_F_ALLOW_MULTI`: every attached program must allow an access). The attachment lasts as
/// long as the cgroup, whatever happens to the descriptors.
pub fn attach_cgroup_device_program(
    cgroup: BorrowedFd<'_>,
    program: BorrowedFd<'_>,
) -> std::io::Result<()> {
    let mut attr = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..ProgAttach::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
}
