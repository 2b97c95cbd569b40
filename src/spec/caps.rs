//! Process capabilities: berth's default set, CRI add/drop (with `ALL`, with or without the
//! `CAP_` prefix, any case), and every capability for privileged containers.

use std::str::FromStr;

use crate::cri_api::LinuxContainerSecurityContext;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use super::SpecError;

/// The default set (containerd 1.x's and Docker's): what a non-privileged container gets before
/// CRI add/drop.
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability oci-spec knows, for `ALL` and privileged containers. The executor skips
/// the ones the running kernel lacks.
pub const ALL_CAPS: [Capability; 41] = [
    Capability::AuditControl,
    Capability::AuditRead,
    Capability::AuditWrite,
    Capability::BlockSuspend,
    Capability::Bpf,
    Capability::CheckpointRestore,
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::Kill,
    Capability::Lease,
    Capability::LinuxImmutable,
    Capability::MacAdmin,
    Capability::MacOverride,
    Capability::Mknod,
    Capability::NetAdmin,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetRaw,
    Capability::Perfmon,
    Capability::Setgid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysChroot,
    Capability::SysModule,
    Capability::SysNice,
    Capability::SysPacct,
    Capability::SysPtrace,
    Capability::SysRawio,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Syslog,
    Capability::WakeAlarm,
];

/// The kernel's number of a capability (`<linux/capability.h>`).
pub fn capability_number(cap: Capability) -> u32 {
    use Capability::*;
    match cap {
        Chown => 0,
        DacOverride => 1,
        DacReadSearch => 2,
        Fowner => 3,
        Fsetid => 4,
        Kill => 5,
        Setgid => 6,
        Setuid => 7,
        Setpcap => 8,
        LinuxImmutable => 9,
        NetBindService => 10,
        NetBroadcast => 11,
        NetAdmin => 12,
        NetRaw => 13,
        IpcLock => 14,
        IpcOwner => 15,
        SysModule => 16,
        SysRawio => 17,
        SysChroot => 18,
        SysPtrace => 19,
        SysPacct => 20,
        SysAdmin => 21,
        SysBoot => 22,
        SysNice => 23,
        SysResource => 24,
        SysTime => 25,
        SysTtyConfig => 26,
        Mknod => 27,
        Lease => 28,
        AuditWrite => 29,
        AuditControl => 30,
        Setfcap => 31,
        MacOverride => 32,
        MacAdmin => 33,
        Syslog => 34,
        WakeAlarm => 35,
        BlockSuspend => 36,
        AuditRead => 37,
        Perfmon => 38,
        Bpf => 39,
        CheckpointRestore => 40,
    }
}

/// The capability set of a container: default, then `ALL` in add, then `ALL` in drop, then the
/// named adds, then the named drops (so a cap both added and dropped is dropped). Privileged
/// containers get every capability. `ALL` (and privileged) means every capability `host` (the
/// node's bounding set, `None` = all) has, as containerd's privileged containers get the
/// runtime's own: an OCI runtime refuses to grant one the node lacks. Bounding, effective and
/// permitted are the set; inheritable and ambient stay empty (CRI's ambient capabilities are not
/// honoured yet).
pub(super) fn capabilities(
    sc: Option<&LinuxContainerSecurityContext>,
    host: Option<&Capabilities>,
) -> Result<LinuxCapabilities, SpecError> {
    let all: Capabilities = ALL_CAPS
        .into_iter()
        .filter(|c| host.is_none_or(|h| h.contains(c)))
        .collect();
    let set = if sc.is_some_and(|sc| sc.privileged) {
        all
    } else {
        cap_set(sc, all)?
    };
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set))
        .set_inheritable(Some(Capabilities::new()))
        .set_ambient(Some(Capabilities::new()));
    Ok(caps)
}

fn cap_set(
    sc: Option<&LinuxContainerSecurityContext>,
    all: Capabilities,
) -> Result<Capabilities, SpecError> {
    let mut set: Capabilities = DEFAULT_CAPS.into_iter().collect();
    let Some(cri) = sc.and_then(|sc| sc.capabilities.as_ref()) else {
        return Ok(set);
    };
    let is_all = |n: &String| n.eq_ignore_ascii_case("ALL");
    if cri.add_capabilities.iter().any(is_all) {
        set.extend(all);
    }
    if cri.drop_capabilities.iter().any(is_all) {
        set.clear();
    }
    for name in cri.add_capabilities.iter().filter(|n| !is_all(n)) {
        set.insert(parse(name)?);
    }
    for name in cri.drop_capabilities.iter().filter(|n| !is_all(n)) {
        set.remove(&parse(name)?);
    }
    Ok(set)
}

/// `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN` all name the same capability.
fn parse(name: &str) -> Result<Capability, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare).map_err(|_| SpecError::UnknownCapability(name.to_string()))
}

#[cfg(test)]
mod tests {
    use crate::cri_api::Capability as CriCaps;

    use super::*;

    fn sc(add: &[&str], drop: &[&str], privileged: bool) -> LinuxContainerSecurityContext {
        LinuxContainerSecurityContext {
            capabilities: Some(CriCaps {
                add_capabilities: add.iter().map(|s| s.to_string()).collect(),
                drop_capabilities: drop.iter().map(|s| s.to_string()).collect(),
                add_ambient_capabilities: vec![],
            }),
            privileged,
            ..Default::default()
        }
    }

    fn with(extra: &[Capability], without: &[Capability]) -> Capabilities {
        let mut set: Capabilities = DEFAULT_CAPS.into_iter().collect();
        set.extend(extra.iter().copied());
        without.iter().for_each(|c| {
            set.remove(c);
        });
        set
    }

    #[test]
    fn all_and_privileged_grant_only_what_the_node_holds() {
        let node: Capabilities = ALL_CAPS
            .into_iter()
            .filter(|c| *c != Capability::SysResource)
            .collect();
        for (add, privileged) in [(&["ALL"][..], false), (&[][..], true)] {
            let caps = capabilities(Some(&sc(add, &[], privileged)), Some(&node)).unwrap();
            assert_eq!(
                caps.bounding().as_ref(),
                Some(&node),
                "{add:?} {privileged}"
            );
            assert_eq!(caps.effective().as_ref(), Some(&node));
        }
        let caps = capabilities(None, Some(&node)).unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), DEFAULT_CAPS.len());
    }

    #[test]
    fn add_and_drop() {
        use Capability::*;
        let all: Capabilities = ALL_CAPS.into_iter().collect();
        let only = |c: &[Capability]| c.iter().copied().collect::<Capabilities>();
        let cases: Vec<(&[&str], &[&str], bool, Capabilities)> = vec![
            (&[], &[], false, with(&[], &[])),
            (&["NET_ADMIN"], &[], false, with(&[NetAdmin], &[])),
            (
                &["CAP_SYS_TIME", "sys_ptrace"],
                &[],
                false,
                with(&[SysTime, SysPtrace], &[]),
            ),
            (
                &[],
                &["MKNOD", "cap_net_raw"],
                false,
                with(&[], &[Mknod, NetRaw]),
            ),
            (&["NET_ADMIN"], &["NET_ADMIN"], false, with(&[], &[])),
            (&["ALL"], &[], false, all.clone()),
            (&["all"], &["CHOWN"], false, {
                let mut s = all.clone();
                s.remove(&Chown);
                s
            }),
            (&[], &["ALL"], false, only(&[])),
            (
                &["NET_BIND_SERVICE"],
                &["ALL"],
                false,
                only(&[NetBindService]),
            ),
            (&["ALL"], &["ALL"], false, only(&[])),
            (&[], &["ALL"], true, all.clone()),
        ];
        for (add, drop, privileged, want) in cases {
            let caps = capabilities(Some(&sc(add, drop, privileged)), None).unwrap();
            assert_eq!(
                caps.bounding().as_ref(),
                Some(&want),
                "{add:?} {drop:?} {privileged}"
            );
            assert_eq!(caps.effective().as_ref(), Some(&want));
            assert_eq!(caps.permitted().as_ref(), Some(&want));
            assert_eq!(caps.inheritable().as_ref(), Some(&Capabilities::new()));
            assert_eq!(caps.ambient().as_ref(), Some(&Capabilities::new()));
        }
    }

    #[test]
    fn no_security_context_means_the_default_set() {
        let caps = capabilities(None, None).unwrap();
        assert_eq!(caps.bounding().as_ref(), Some(&with(&[], &[])));
        assert!(
            !caps
                .bounding()
                .as_ref()
                .unwrap()
                .contains(&Capability::SysAdmin)
        );
    }

    #[test]
    fn unknown_names_are_errors() {
        for (add, drop) in [(&["CAP_FLY"][..], &[][..]), (&[], &["teleport"])] {
            let err = capabilities(Some(&sc(add, drop, false)), None).unwrap_err();
            assert!(matches!(err, SpecError::UnknownCapability(_)), "{err}");
        }
    }
}
