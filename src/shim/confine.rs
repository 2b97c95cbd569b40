//! Confines the shim's helper processes that live in a pod's namespaces (the pause process, the
//! user-namespace helper): a mount namespace of their own whose root is an empty read-only tmpfs
//! (the host's root detached), no capabilities in any set, uid and gid 65535 (the pause image's
//! user) where the user namespace maps it, no_new_privs, and not dumpable. A container that can
//! ptrace such a process (CAP_SYS_PTRACE in a pod-shared PID namespace) then finds nothing through
//! its `/proc/<pid>/root`, `cwd` or `fd`, and gains no privilege by taking it over.

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{Gid, Uid, pivot_root};

/// The unprivileged ids the helpers take (those of the Kubernetes pause image).
const PAUSE_ID: u32 = 65535;

/// Where the empty root is mounted before the pivot: any directory serves, the mount namespace
/// is the process's own.
const STAGING: &str = "/proc";

/// Enters an empty root of its own and drops every privilege. Needs CAP_SYS_ADMIN (in the
/// process's user namespace) and a single thread.
pub(crate) fn confine() -> Result<(), String> {
    enter_empty_root()?;
    drop_privileges()
}

fn enter_empty_root() -> Result<(), String> {
    let sys = |what: &str| {
        let what = what.to_string();
        move |e: nix::errno::Errno| format!("{what}: {e}")
    };
    unshare(CloneFlags::CLONE_NEWNS).map_err(sys("unshare the mount namespace"))?;
    let none = None::<&str>;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(sys("make / private"))?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        STAGING,
        Some("tmpfs"),
        flags,
        Some("mode=0555,size=4k"),
    )
    .map_err(sys("mount an empty tmpfs"))?;
    nix::unistd::chdir(STAGING).map_err(sys("enter the empty root"))?;
    pivot_root(".", ".").map_err(sys("pivot_root into the empty root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(sys("detach the host's root"))?;
    nix::unistd::chdir("/").map_err(sys("chdir /"))?;
    Ok(())
}

fn drop_privileges() -> Result<(), String> {
    let sys = |what: &str| {
        let what = what.to_string();
        move |e: nix::errno::Errno| format!("{what}: {e}")
    };
    // The bounding set first, while CAP_SETPCAP is still held; EINVAL past the last capability.
    for cap in 0..64 {
        match crate::sys::caps::drop_bounding(cap) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL) => break,
            Err(e) => return Err(format!("drop capability {cap} from the bounding set: {e}")),
        }
    }
    nix::unistd::setgroups(&[]).map_err(sys("clear supplementary groups"))?;
    let (gid, uid) = (Gid::from_raw(PAUSE_ID), Uid::from_raw(PAUSE_ID));
    // A user namespace with a shorter mapping than 65536 ids does not map them (EINVAL): the
    // process then stays its root, without capabilities.
    match nix::unistd::setresgid(gid, gid, gid) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(format!("set gid {PAUSE_ID}: {e}")),
    }
    match nix::unistd::setresuid(uid, uid, uid) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(format!("set uid {PAUSE_ID}: {e}")),
    }
    crate::sys::caps::clear_ambient().map_err(sys("clear the ambient capabilities"))?;
    crate::sys::caps::set(crate::sys::caps::CapSets::default())
        .map_err(sys("clear the capability sets"))?;
    nix::sys::prctl::set_no_new_privs().map_err(sys("set no_new_privs"))?;
    nix::sys::prctl::set_dumpable(false).map_err(sys("make the process non-dumpable"))?;
    Ok(())
}
