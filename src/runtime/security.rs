//! The security settings that need the host before the pure spec builder runs: a Localhost
//! seccomp profile's file, and whether the host has AppArmor.

use crate::cri_api as api;

use super::{Result, RuntimeError};
use crate::spec::{SeccompChoice, SeccompProfile, SeccompSource, SpecError, seccomp_source};

fn security_context(config: &api::ContainerConfig) -> Option<&api::LinuxContainerSecurityContext> {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
}

/// The container asks to be privileged.
pub(super) fn privileged(config: &api::ContainerConfig) -> bool {
    security_context(config).is_some_and(|sc| sc.privileged)
}

/// The container's seccomp confinement, with a Localhost profile read from its file.
pub(super) fn seccomp_choice(config: &api::ContainerConfig) -> Result<SeccompChoice> {
    Ok(match seccomp_source(security_context(config))? {
        SeccompSource::Unconfined => SeccompChoice::Unconfined,
        SeccompSource::RuntimeDefault => SeccompChoice::RuntimeDefault,
        SeccompSource::Localhost(path) => {
            let what = path.display().to_string();
            let json = std::fs::read_to_string(&path)
                .map_err(|e| SpecError::Seccomp(format!("read localhost profile {what}: {e}")))?;
            SeccompChoice::Localhost(Box::new(SeccompProfile::parse(&json, &what)?))
        }
    })
}

/// AppArmor is not applied yet. On a host with AppArmor a container that asks for a profile is
/// refused rather than run less confined than it asked; on a host without it, RuntimeDefault
/// (what kubelet asks for by default) means nothing, and a Localhost profile is an error.
/// Privileged containers are never confined.
#[allow(deprecated)] // older kubelets still send the string form of the profile
pub(super) fn check_apparmor(config: &api::ContainerConfig) -> Result<()> {
    let Some(sc) = security_context(config) else {
        return Ok(());
    };
    if sc.privileged {
        return Ok(());
    }
    use api::security_profile::ProfileType;
    let (confined, localhost) = match &sc.apparmor {
        Some(p) => (
            p.profile_type != ProfileType::Unconfined as i32,
            p.profile_type == ProfileType::Localhost as i32,
        ),
        None => (
            !matches!(sc.apparmor_profile.as_str(), "" | "unconfined"),
            sc.apparmor_profile.starts_with("localhost/"),
        ),
    };
    let host_has_apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y");
    if confined && host_has_apparmor {
        return Err(RuntimeError::Unimplemented("AppArmor confinement".into()));
    }
    if localhost && !host_has_apparmor {
        return Err(RuntimeError::InvalidArgument(
            "AppArmor profile: AppArmor is not enabled on this host".into(),
        ));
    }
    Ok(())
}
