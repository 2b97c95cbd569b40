//! Credentials of the container process: supplementary groups, gid and uid, then the capability
//! sets (bounding, effective, permitted, inheritable, ambient) from `process.capabilities`.

use nix::errno::Errno;
use nix::unistd::{Gid, Uid, setgroups, setresgid, setresuid};
use oci_spec::runtime::{Capabilities, Process};

use super::error::{Context, StepError};
use super::protocol::{Channel, Level};
use crate::sys::caps::{self as syscaps, CapSets};

pub(crate) use crate::spec::capability_number as number;

/// A capability set as a bit mask.
pub(crate) fn mask(set: Option<&Capabilities>) -> u64 {
    set.into_iter()
        .flatten()
        .fold(0, |m, cap| m | (1u64 << number(*cap)))
}

/// Names of the capabilities in `mask`, for messages.
fn names(mask: u64) -> String {
    (0..64)
        .filter(|n| mask & (1 << n) != 0)
        .map(|n| format!("cap {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Switches to `process.user` and sets the capability sets. Capabilities this process does not
/// hold itself (e.g. CAP_SYS_RESOURCE on a host that withholds it) cannot be granted; they are
/// left out with a warning rather than failing the container.
pub(crate) fn set_credentials(channel: &Channel, process: &Process) -> Result<(), StepError> {
    let held = syscaps::get().ctx(|| "read capabilities")?.permitted;
    let caps = process.capabilities().as_ref();
    let want = |set: Option<&Capabilities>, name: &str| {
        let wanted = mask(set);
        if wanted & !held != 0 {
            let msg = format!(
                "{name} capabilities not held by berth, left out: {}",
                names(wanted & !held)
            );
            channel.log(Level::Warn, msg);
        }
        wanted & held
    };
    let sets = caps.map(|c| {
        let sets = CapSets {
            effective: want(c.effective().as_ref(), "effective"),
            permitted: want(c.permitted().as_ref(), "permitted"),
            inheritable: want(c.inheritable().as_ref(), "inheritable"),
        };
        let bounding = want(c.bounding().as_ref(), "bounding");
        let ambient = want(c.ambient().as_ref(), "ambient");
        (sets, bounding, ambient)
    });
    if let Some((_, bounding, _)) = sets {
        limit_bounding(bounding)?;
    }
    nix::sys::prctl::set_keepcaps(true).ctx(|| "set keepcaps")?;
    set_user(process)?;
    nix::sys::prctl::set_keepcaps(false).ctx(|| "clear keepcaps")?;
    if let Some((sets, _, ambient)) = sets {
        syscaps::set(sets).ctx(|| {
            format!(
                "set capabilities effective {:#x} permitted {:#x} inheritable {:#x}",
                sets.effective, sets.permitted, sets.inheritable
            )
        })?;
        syscaps::clear_ambient().ctx(|| "clear ambient capabilities")?;
        for cap in (0..64).filter(|n| ambient & (1u64 << n) != 0) {
            syscaps::raise_ambient(cap).ctx(|| format!("raise ambient capability {cap}"))?;
        }
    }
    Ok(())
}

/// Drops every capability outside `keep` from the bounding set.
fn limit_bounding(keep: u64) -> Result<(), StepError> {
    for cap in 0..64u32 {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        match syscaps::drop_bounding(cap) {
            Ok(()) => {}
            // Past the last capability this kernel knows.
            Err(Errno::EINVAL) => break,
            Err(e) => return Err(StepError::new(format!("drop bounding capability {cap}"), e)),
        }
    }
    Ok(())
}

/// setgroups(additionalGids), setgid, setuid.
fn set_user(process: &Process) -> Result<(), StepError> {
    let user = process.user();
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    setgroups(&groups).ctx(|| format!("setgroups {:?}", user.additional_gids()))?;
    let gid = Gid::from_raw(user.gid());
    setresgid(gid, gid, gid).ctx(|| format!("setgid {gid}"))?;
    let uid = Uid::from_raw(user.uid());
    setresuid(uid, uid, uid).ctx(|| format!("setuid {uid}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::Capability;

    #[test]
    fn masks_use_kernel_numbers() {
        let set: Capabilities = [
            Capability::Chown,
            Capability::NetBindService,
            Capability::CheckpointRestore,
        ]
        .into_iter()
        .collect();
        assert_eq!(mask(Some(&set)), 1 | (1 << 10) | (1 << 40));
        assert_eq!(mask(None), 0);
    }
}
