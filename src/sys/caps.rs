//! Capability system calls: the permitted/effective/inheritable sets (`capset`), the bounding set
//! and the ambient set (`prctl`). Capabilities are numbered as in `<linux/capability.h>`.

use nix::errno::Errno;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit data words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The three per-thread capability sets as 64-bit masks (bit n = capability n).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CapSets {
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
}

fn split(mask: u64) -> (u32, u32) {
    ((mask & 0xffff_ffff) as u32, (mask >> 32) as u32)
}

/// Reads the calling thread's capability sets.
pub fn get() -> Result<CapSets, Errno> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: `header` and `data` are live, correctly laid out and large enough for version 3 (two
    // data structs); the kernel writes only into them during the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    Errno::result(rc)?;
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(CapSets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

/// Replaces the calling thread's effective, permitted and inheritable sets.
pub fn set(sets: CapSets) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let (e0, e1) = split(sets.effective);
    let (p0, p1) = split(sets.permitted);
    let (i0, i1) = split(sets.inheritable);
    let data = [
        CapData {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        CapData {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: `header` and `data` are live, correctly laid out version-3 structures; the kernel
    // only reads `data` and may write the preferred version into `header`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    Errno::result(rc).map(drop)
}

/// Removes capability `cap` from the calling thread's bounding set (`PR_CAPBSET_DROP`).
pub fn drop_bounding(cap: u32) -> Result<(), Errno> {
    // SAFETY: PR_CAPBSET_DROP takes one integer argument and touches no caller memory.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
    Errno::result(rc).map(drop)
}

/// Empties the calling thread's ambient set.
pub fn clear_ambient() -> Result<(), Errno> {
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes integer arguments only and touches no caller memory.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    Errno::result(rc).map(drop)
}

/// Adds `cap` to the calling thread's ambient set; it must be permitted and inheritable already.
pub fn raise_ambient(cap: u32) -> Result<(), Errno> {
    // SAFETY: PR_CAP_AMBIENT_RAISE takes integer arguments only and touches no caller memory.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            libc::c_ulong::from(cap),
            0,
            0,
        )
    };
    Errno::result(rc).map(drop)
}
