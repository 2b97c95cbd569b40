//! `Status`: whether the runtime and the pod network are ready, the runtime handlers and the
//! features berth implements. Every field is reported as it is, never optimistically.

use std::collections::HashMap;

use super::api;
use crate::config::Config;
use crate::network::Readiness;

const RUNTIME_READY: &str = "RuntimeReady";
const NETWORK_READY: &str = "NetworkReady";

pub fn status(config: &Config, network: &Readiness, verbose: bool) -> api::StatusResponse {
    let conditions = vec![
        api::RuntimeCondition {
            r#type: RUNTIME_READY.into(),
            status: true,
            reason: String::new(),
            message: String::new(),
        },
        // Ready once a valid CNI network config is loaded (kubelet waits for it).
        api::RuntimeCondition {
            r#type: NETWORK_READY.into(),
            status: network.ready,
            reason: if network.ready {
                String::new()
            } else {
                "NetworkPluginNotReady".into()
            },
            message: network.message.clone(),
        },
    ];
    let mut info = HashMap::new();
    if verbose {
        info.insert("config".to_string(), redacted_config_json(config));
    }
    api::StatusResponse {
        status: Some(api::RuntimeStatus { conditions }),
        info,
        runtime_handlers: runtime_handlers(config),
        features: Some(api::RuntimeFeatures {
            // Merge and Strict are applied by the spec builder; ContainerStatus.user reports
            // the identity actually given to the process.
            supplemental_groups_policy: true,
        }),
    }
}

/// The built-in handler (name "", kubelet's default). Configured external runtimes are not
/// listed until pods can run with them (RunPodSandbox refuses them as Unimplemented). No handler
/// claims features berth does not implement: recursive read-only mounts need `mount_setattr`
/// (Linux 5.12); user namespaces are not supported yet.
fn runtime_handlers(_config: &Config) -> Vec<api::RuntimeHandler> {
    vec![api::RuntimeHandler {
        name: String::new(),
        features: Some(api::RuntimeHandlerFeatures {
            recursive_read_only_mounts: kernel_at_least(5, 12),
            user_namespaces: false,
        }),
    }]
}

/// Whether the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let Ok(uts) = nix::sys::utsname::uname() else {
        return false;
    };
    release_at_least(&uts.release().to_string_lossy(), major, minor)
}

fn release_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let have_major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let have_minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (have_major, have_minor) >= (major, minor)
}

/// The effective config for `crictl info`, with registry passwords replaced.
fn redacted_config_json(config: &Config) -> String {
    let mut shown = config.clone();
    for registry in shown.registries.values_mut() {
        if registry.password.is_some() {
            registry.password = Some("<redacted>".into());
        }
    }
    serde_json::to_string(&shown).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HandlerConfig, RegistryConfig};

    fn not_ready() -> Readiness {
        Readiness {
            ready: false,
            message: "berth: CNI: no network config found in /etc/cni/net.d".into(),
        }
    }

    #[test]
    fn network_is_reported_not_ready_with_a_reason() {
        let s = status(&Config::default(), &not_ready(), false);
        let conditions = s.status.unwrap().conditions;
        let runtime = conditions
            .iter()
            .find(|c| c.r#type == RUNTIME_READY)
            .unwrap();
        let network = conditions
            .iter()
            .find(|c| c.r#type == NETWORK_READY)
            .unwrap();
        assert!(runtime.status);
        assert!(!network.status);
        assert!(!network.reason.is_empty() && !network.message.is_empty());
        assert!(s.info.is_empty(), "info only when verbose");
        let ready = Readiness {
            ready: true,
            message: String::new(),
        };
        let s = status(&Config::default(), &ready, false);
        let network = s.status.unwrap().conditions.remove(1);
        assert!(network.status && network.reason.is_empty());
    }

    #[test]
    fn only_the_built_in_handler_is_offered_until_external_ones_run_pods() {
        let mut config = Config::default();
        config.runtime.handlers = vec![HandlerConfig {
            name: "present".into(),
            path: "/bin/sh".into(),
        }];
        let names: Vec<_> = runtime_handlers(&config)
            .into_iter()
            .map(|h| h.name)
            .collect();
        assert_eq!(names, vec!["".to_string()]);
    }

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert!(release_at_least("6.18.44-fc-v669", 5, 12));
        assert!(release_at_least("5.12.0", 5, 12));
        assert!(!release_at_least("5.10.209-1", 5, 12));
        assert!(!release_at_least("garbage", 5, 12));
    }

    #[test]
    fn verbose_info_never_shows_registry_passwords() {
        let mut config = Config::default();
        config.registries.insert(
            "r.example".into(),
            RegistryConfig {
                username: Some("u".into()),
                password: Some("hunter2".into()),
                ..Default::default()
            },
        );
        let s = status(&config, &not_ready(), true);
        let shown = &s.info["config"];
        assert!(
            shown.contains("r.example") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
