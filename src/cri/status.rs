//! `Status`: whether the runtime and the pod network are ready, the runtime handlers and the
//! features berth implements. Every field is reported as it is, never optimistically.

use std::collections::HashMap;

use super::api;
use crate::config::Config;
use crate::network::Readiness;
use crate::runtime::handlers::Handler;

const RUNTIME_READY: &str = "RuntimeReady";
const NETWORK_READY: &str = "NetworkReady";

pub fn status(
    config: &Config,
    network: &Readiness,
    handlers: &[Handler],
    pod_cidr: &[String],
    verbose: bool,
) -> api::StatusResponse {
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
        info.insert("handlerChecks".to_string(), handler_report(handlers));
        // As kubelet last sent it in UpdateRuntimeConfig; `[]` before that.
        info.insert(
            "podCIDR".to_string(),
            serde_json::to_string(pod_cidr).expect("strings serialise"),
        );
    }
    api::StatusResponse {
        status: Some(api::RuntimeStatus { conditions }),
        info,
        runtime_handlers: runtime_handlers(handlers),
        features: Some(api::RuntimeFeatures {
            // Merge and Strict are applied by the spec builder; ContainerStatus.user reports
            // the identity actually given to the process.
            supplemental_groups_policy: true,
            // The built-in executor binds the host's /sys where such a pod may not mount sysfs;
            // true when berthd's start-up probe did exactly that.
            user_namespaces_host_network:
                crate::runtime::userns_probe::user_namespaces_host_network_supported(),
            // Mount.mount_options: nosuid, nodev, noexec and the atime options (spec/mounts.rs).
            mount_options: true,
        }),
    }
}

/// The built-in handler (name "", kubelet's default), then each configured OCI runtime that
/// passed its startup check (one that cannot run containers here is left out; the verbose
/// `handlerChecks` info says why). No handler claims features berth does not implement:
/// recursive read-only mounts need `mount_setattr` (Linux 5.12), and for an external runtime its
/// knowing the `rro` option. User namespaces only for the built-in handler, and only on a host
/// where berthd's start-up probe could create one and mount an overlay of an id-mapped layer
/// (`runtime::userns_probe`); external runtimes have not been verified with them.
fn runtime_handlers(handlers: &[Handler]) -> Vec<api::RuntimeHandler> {
    let rro_kernel = kernel_at_least(5, 12);
    let built_in = api::RuntimeHandler {
        name: String::new(),
        features: Some(api::RuntimeHandlerFeatures {
            recursive_read_only_mounts: rro_kernel,
            user_namespaces: crate::runtime::userns_probe::user_namespaces_supported(),
        }),
    };
    let external = handlers.iter().filter_map(|h| {
        let features = h.check.as_ref().ok()?;
        Some(api::RuntimeHandler {
            name: h.name.clone(),
            features: Some(api::RuntimeHandlerFeatures {
                recursive_read_only_mounts: rro_kernel && features.recursive_read_only_mounts,
                user_namespaces: false,
            }),
        })
    });
    std::iter::once(built_in).chain(external).collect()
}

/// Each configured handler, its binary and whether it works (with the reason when not), as JSON.
fn handler_report(handlers: &[Handler]) -> String {
    let report: Vec<_> = handlers
        .iter()
        .map(|h| {
            serde_json::json!({
                "name": h.name,
                "path": h.runtime.path,
                "root": h.runtime.root,
                "ready": h.check.is_ok(),
                "reason": h.check.as_ref().err(),
            })
        })
        .collect();
    serde_json::Value::from(report).to_string()
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
    use crate::config::RegistryConfig;
    use crate::oci::OciRuntime;
    use crate::oci::probe::Features;

    fn not_ready() -> Readiness {
        Readiness {
            ready: false,
            message: "berth: CNI: no network config found in /etc/cni/net.d".into(),
        }
    }

    #[test]
    fn network_is_reported_not_ready_with_a_reason() {
        let s = status(&Config::default(), &not_ready(), &[], &[], false);
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
        let s = status(&Config::default(), &ready, &[], &[], false);
        let network = s.status.unwrap().conditions.remove(1);
        assert!(network.status && network.reason.is_empty());
    }

    fn handler(name: &str, check: Result<Features, String>) -> Handler {
        Handler {
            name: name.into(),
            runtime: OciRuntime {
                path: format!("/usr/bin/{name}").into(),
                root: format!("/run/berth/{name}").into(),
                systemd_cgroup: false,
            },
            check,
        }
    }

    #[test]
    fn only_handlers_that_passed_their_check_are_offered() {
        let rro = Features {
            recursive_read_only_mounts: true,
            ..Features::default()
        };
        let handlers = [
            handler("runc", Ok(rro)),
            handler("crun", Err("cgroups in hybrid mode not supported".into())),
        ];
        let offered = runtime_handlers(&handlers);
        let names: Vec<_> = offered.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["", "runc"]);
        let features = offered[1].features.unwrap();
        assert_eq!(features.recursive_read_only_mounts, kernel_at_least(5, 12));
        assert!(!features.user_namespaces);
        let s = status(&Config::default(), &not_ready(), &handlers, &[], true);
        let report: serde_json::Value = serde_json::from_str(&s.info["handlerChecks"]).unwrap();
        assert_eq!(report[1]["ready"], false);
        assert_eq!(report[1]["reason"], "cgroups in hybrid mode not supported");
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
        let s = status(&config, &not_ready(), &[], &[], true);
        let shown = &s.info["config"];
        assert!(
            shown.contains("r.example") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
