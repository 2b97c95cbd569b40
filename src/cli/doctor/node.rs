//! `berth doctor`'s checks of what berth's config points at: the CNI network and its plugins,
//! the runtime handlers' binaries, and berthd's socket.

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::Duration;

use super::Check;
use crate::config::Config;
use crate::cri::api;
use crate::network::conf;

/// How long berthd gets to answer `Version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

pub fn checks(config: &Config) -> Vec<Check> {
    let mut checks = vec![cni(&config.network.conf_dir, &config.network.bin_dirs)];
    checks.extend(handlers(config));
    checks
}

fn cni(conf_dir: &Path, bin_dirs: &[std::path::PathBuf]) -> Check {
    match conf::load(conf_dir, bin_dirs) {
        Ok(list) => {
            let plugins: Vec<&str> = list
                .plugins
                .iter()
                .map(conf::NetworkList::plugin_type)
                .collect();
            Check::ok(
                "cni",
                format!(
                    "network {:?} from {}, plugins found: {}",
                    list.name,
                    list.source.display(),
                    plugins.join(" ")
                ),
            )
        }
        // No config at all: a CNI DaemonSet may install one later; host-network pods still run.
        Err(e) if conf::fingerprint(conf_dir).is_empty() => Check::warn(
            "cni",
            e,
            format!(
                "install your CNI (or hack/cni-config.sh for one node) into {}",
                conf_dir.display()
            ),
        ),
        Err(e) => Check::fail(
            "cni",
            e,
            format!(
                "fix the config in {} or install the plugins it names into {}",
                conf_dir.display(),
                conf::join_paths(bin_dirs)
            ),
        ),
    }
}

fn handlers(config: &Config) -> Vec<Check> {
    if config.runtime.handlers.is_empty() {
        return vec![Check::ok(
            "runtime-handlers",
            "none configured: the built-in executor runs every pod",
        )];
    }
    config
        .runtime
        .handlers
        .iter()
        .map(|h| {
            let executable = std::fs::metadata(&h.path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if executable {
                Check::ok(
                    "runtime-handlers",
                    format!("{}: {}", h.name, h.path.display()),
                )
            } else {
                // berthd runs without it; only pods of that RuntimeClass fail.
                Check::warn(
                    "runtime-handlers",
                    format!(
                        "{}: {} is not an executable file; pods asking for it will fail",
                        h.name,
                        h.path.display()
                    ),
                    format!(
                        "install {} or remove handler {:?} from runtime.handlers",
                        h.path.display(),
                        h.name
                    ),
                )
            }
        })
        .collect()
}

/// The socket exists with mode 0660 and berthd answers `Version` on it.
pub async fn socket(path: &Path) -> Vec<Check> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => {
            return vec![Check::fail(
                "socket",
                format!("{shown}: {e}"),
                "start berthd (systemctl start berthd) or pass --socket/--config",
            )];
        }
    };
    if !meta.file_type().is_socket() {
        return vec![Check::fail(
            "socket",
            format!("{shown} is not a socket"),
            "remove it and restart berthd",
        )];
    }
    let mode = meta.permissions().mode() & 0o7777;
    let mode_check = if mode == 0o660 {
        Check::ok("socket", format!("{shown} (mode 0660)"))
    } else {
        Check::warn(
            "socket",
            format!("{shown} has mode {mode:04o}, not 0660"),
            format!("chmod 0660 {shown} (berthd sets 0660 when it binds it)"),
        )
    };
    let answer = tokio::time::timeout(VERSION_TIMEOUT, async {
        let client = crate::client::connect(path).await?;
        let version = client
            .runtime
            .clone()
            .version(api::VersionRequest::default())
            .await?
            .into_inner();
        anyhow::Ok(version)
    })
    .await;
    let version_check = match answer {
        Ok(Ok(v)) => Check::ok(
            "cri",
            format!(
                "{} {} answers (CRI {})",
                v.runtime_name, v.runtime_version, v.runtime_api_version
            ),
        ),
        Ok(Err(e)) => Check::fail(
            "cri",
            format!("Version on {shown}: {e:#}"),
            "check berthd's log (journalctl -u berthd)",
        ),
        Err(_) => Check::fail(
            "cri",
            format!("Version on {shown}: no answer in {VERSION_TIMEOUT:?}"),
            "berthd is stuck or overloaded: check journalctl -u berthd",
        ),
    };
    vec![mode_check, version_check]
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::super::Status;
    use super::*;

    #[test]
    fn cni_needs_a_network_whose_plugins_exist() {
        let dir = tempfile::tempdir().unwrap();
        let (conf_dir, bin) = (dir.path().join("net.d"), dir.path().join("bin"));
        std::fs::create_dir_all(&conf_dir).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        let bins = [bin.clone()];
        assert_eq!(cni(&conf_dir, &bins).status, Status::Warn, "empty conf dir");

        std::fs::write(
            conf_dir.join("10-net.conflist"),
            r#"{"cniVersion":"1.0.0","name":"podnet","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#,
        )
        .unwrap();
        let c = cni(&conf_dir, &bins);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.message.contains("bridge"), "{c:?}");

        for plugin in ["bridge", "portmap"] {
            std::fs::write(bin.join(plugin), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(bin.join(plugin), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let c = cni(&conf_dir, &bins);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.message.contains("\"podnet\"") && c.message.contains("bridge portmap"));
    }

    #[test]
    fn handlers_need_their_binary() {
        let mut config = Config::default();
        config.runtime.handlers.clear();
        assert_eq!(handlers(&config)[0].status, Status::Ok);
        config.runtime.handlers.push(crate::config::HandlerConfig {
            name: "runc".into(),
            path: "/nonexistent/runc".into(),
            privileged_without_host_devices: false,
        });
        let c = &handlers(&config)[0];
        assert_eq!(c.status, Status::Warn);
        assert!(c.message.contains("/nonexistent/runc"));
    }

    #[tokio::test]
    async fn a_missing_socket_fails() {
        let dir = tempfile::tempdir().unwrap();
        let checks = socket(&dir.path().join("berth.sock")).await;
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Fail);
        let plain = dir.path().join("file");
        std::fs::write(&plain, "").unwrap();
        assert!(socket(&plain).await[0].message.contains("not a socket"));
    }
}
