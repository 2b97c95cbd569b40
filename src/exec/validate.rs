//! Checks on the spec before anything is spawned: refuse what berth cannot honour (new user
//! namespaces, seccomp agents, AppArmor, SELinux, hooks) instead of silently running without it.

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use super::error::ExecError;

fn unsupported(what: &str) -> ExecError {
    ExecError::Unsupported(what.to_string())
}

fn invalid(what: impl Into<String>) -> ExecError {
    ExecError::InvalidSpec(what.into())
}

/// Checks a spec for [`Executor::create`](super::Executor::create).
pub(crate) fn create(spec: &Spec, tty: bool) -> Result<(), ExecError> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process is missing"))?;
    self::process(process, tty)?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux is missing"))?;
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    let has = |kind| namespaces.iter().any(|ns| ns.typ() == kind);
    for ns in namespaces {
        match ns.typ() {
            LinuxNamespaceType::User if ns.path().is_none() => {
                return Err(unsupported(
                    "creating a user namespace (join the pod's by path)",
                ));
            }
            LinuxNamespaceType::Time => return Err(unsupported("time namespaces")),
            LinuxNamespaceType::Mount if ns.path().is_some() => {
                return Err(unsupported("joining an existing mount namespace"));
            }
            _ => {}
        }
    }
    if !has(LinuxNamespaceType::Mount) {
        return Err(invalid("a new mount namespace is required"));
    }
    let uid_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    let gid_maps = linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if (uid_maps || gid_maps) && !has(LinuxNamespaceType::User) {
        return Err(invalid("uid/gid mappings without a user namespace"));
    }
    idmapped_mounts(spec, has(LinuxNamespaceType::User) && uid_maps && gid_maps)?;
    if let Some(profile) = linux.seccomp() {
        super::seccomp::compile(profile).map_err(|e| invalid(e.to_string()))?;
    }
    if linux
        .mount_label()
        .as_deref()
        .is_some_and(|l| !l.is_empty())
    {
        return Err(unsupported("SELinux (linux.mountLabel)"));
    }
    let hostname = spec.hostname().as_deref().is_some_and(|h| !h.is_empty());
    if hostname && !has(LinuxNamespaceType::Uts) {
        return Err(invalid("hostname is set but there is no UTS namespace"));
    }
    if spec.hooks().is_some() {
        return Err(unsupported("OCI hooks"));
    }
    for key in linux.sysctl().iter().flat_map(|s| s.keys()) {
        let Some(kind) = crate::spec::sysctl_namespace(key) else {
            return Err(invalid(format!("sysctl {key} is not namespaced")));
        };
        if !has(kind) {
            let msg = format!("sysctl {key} needs a {kind:?} namespace: it would change the host");
            return Err(invalid(msg));
        }
    }
    Ok(())
}

/// An `idmap`/`ridmap` mount is a bind id-mapped through the container's user namespace (joined
/// by path, with both mappings): nothing else gives it a mapping.
fn idmapped_mounts(spec: &Spec, userns_mapped: bool) -> Result<(), ExecError> {
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let options = m.options().as_deref().unwrap_or_default();
        let Ok(opts) = super::mount_options::MountOptions::parse(options) else {
            continue; // reported, naming the option, when the mount is made
        };
        if opts.idmap.is_none() {
            continue;
        }
        let dest = m.destination().display();
        if !(opts.is_bind() || m.typ().as_deref() == Some("bind")) {
            return Err(invalid(format!(
                "mount {dest}: idmap is for bind mounts only"
            )));
        }
        if !userns_mapped {
            return Err(invalid(format!(
                "mount {dest}: idmap needs the container to join a user namespace with uid and gid mappings"
            )));
        }
    }
    Ok(())
}

/// Checks the process settings of a create or an exec.
pub(crate) fn process(process: &Process, tty: bool) -> Result<(), ExecError> {
    if process.args().as_deref().unwrap_or_default().is_empty() {
        return Err(invalid("process.args is empty"));
    }
    if process.terminal() == Some(true) && !tty {
        return Err(invalid(
            "process.terminal is set but stdio is not a terminal",
        ));
    }
    if process
        .apparmor_profile()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(unsupported("AppArmor (process.apparmorProfile)"));
    }
    if process
        .selinux_label()
        .as_deref()
        .is_some_and(|l| !l.is_empty())
    {
        return Err(unsupported("SELinux (process.selinuxLabel)"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid("process.cwd must be absolute"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_accepted() {
        create(&Spec::default(), false).unwrap();
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let mut spec = Spec::default();
        let mut linux = spec.linux().clone().unwrap();
        let mut seccomp = oci_spec::runtime::LinuxSeccomp::default();
        seccomp.set_listener_path(Some("/run/agent.sock".into()));
        linux.set_seccomp(Some(seccomp));
        spec.set_linux(Some(linux));
        let err = create(&spec, false).unwrap_err().to_string();
        assert!(err.contains("seccomp agent"), "{err}");

        let mut spec = Spec::default();
        let mut process = spec.process().clone().unwrap();
        process.set_terminal(Some(true));
        spec.set_process(Some(process));
        assert!(matches!(
            create(&spec, false),
            Err(ExecError::InvalidSpec(_))
        ));
    }

    #[test]
    fn idmap_needs_a_bind_in_a_mapped_user_namespace() {
        use oci_spec::runtime::{LinuxIdMapping, LinuxNamespace, Mount};
        let with = |typ: &str, userns: bool| {
            let mut spec = Spec::default();
            let mut m = Mount::default();
            m.set_destination("/data".into())
                .set_typ(Some(typ.into()))
                .set_source(Some("/srv".into()))
                .set_options(Some(match typ {
                    "bind" => vec!["rbind".into(), "idmap".into()],
                    _ => vec!["idmap".into()],
                }));
            spec.set_mounts(Some(vec![m]));
            if userns {
                let mut linux = spec.linux().clone().unwrap();
                let mut namespaces = linux.namespaces().clone().unwrap();
                let mut user = LinuxNamespace::default();
                user.set_typ(LinuxNamespaceType::User)
                    .set_path(Some("/run/pod/ns/user".into()));
                namespaces.retain(|ns| ns.typ() != LinuxNamespaceType::User);
                namespaces.insert(0, user);
                let map = LinuxIdMapping::default();
                linux
                    .set_namespaces(Some(namespaces))
                    .set_uid_mappings(Some(vec![map]))
                    .set_gid_mappings(Some(vec![map]));
                spec.set_linux(Some(linux));
            }
            create(&spec, false)
        };
        with("bind", true).unwrap();
        let err = with("bind", false).unwrap_err().to_string();
        assert!(err.contains("mount /data: idmap needs"), "{err}");
        let err = with("tmpfs", true).unwrap_err().to_string();
        assert!(err.contains("bind mounts only"), "{err}");
    }

    #[test]
    fn sysctls_must_belong_to_an_isolated_namespace() {
        let with = |key: &str, drop_net: bool| {
            let mut spec = Spec::default();
            let mut linux = spec.linux().clone().unwrap();
            linux.set_sysctl(Some([(key.to_string(), "1".to_string())].into()));
            if drop_net {
                let mut namespaces = linux.namespaces().clone().unwrap();
                namespaces.retain(|ns| ns.typ() != LinuxNamespaceType::Network);
                linux.set_namespaces(Some(namespaces));
            }
            spec.set_linux(Some(linux));
            create(&spec, false)
        };
        with("net.ipv4.ip_forward", false).unwrap();
        with("kernel.shmmax", false).unwrap();
        let err = with("net.ipv4.ip_forward", true).unwrap_err().to_string();
        assert!(err.contains("would change the host"), "{err}");
        let err = with("vm.swappiness", false).unwrap_err().to_string();
        assert!(err.contains("not namespaced"), "{err}");
    }
}
