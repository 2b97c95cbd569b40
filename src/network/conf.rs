//! The node's CNI network config: the first valid file of the conf dir, in file-name order, as
//! libcni and every runtime pick it. `.conflist` files hold a plugin chain; `.conf` and `.json`
//! files hold one plugin and are read as a chain of one.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// CNI spec versions whose configs and results berth understands.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// One network: a named chain of plugin configs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    /// Each plugin's config object as written (`type`, `capabilities`, its own keys).
    pub plugins: Vec<Map<String, Value>>,
    /// The file it was read from.
    pub source: PathBuf,
}

impl NetworkList {
    /// A plugin's type (its binary's name).
    pub fn plugin_type(plugin: &Map<String, Value>) -> &str {
        plugin.get("type").and_then(Value::as_str).unwrap_or("")
    }

    /// Whether results of this version carry `prevResult` to DEL (0.4.0 and later).
    pub fn passes_prev_result_to_del(&self) -> bool {
        !matches!(
            self.cni_version.as_str(),
            "0.1.0" | "0.2.0" | "0.3.0" | "0.3.1"
        )
    }
}

/// What identifies the conf dir's current contents: names, sizes and modification times of
/// its config files. A change means the config must be read again.
pub type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

pub fn fingerprint(conf_dir: &Path) -> Fingerprint {
    let mut out: Fingerprint = config_files(conf_dir)
        .into_iter()
        .map(|path| {
            let meta = std::fs::metadata(&path).ok();
            let len = meta.as_ref().map_or(0, |m| m.len());
            (path, len, meta.and_then(|m| m.modified().ok()))
        })
        .collect();
    out.sort();
    out
}

/// Config files of the dir in the order they are tried.
fn config_files(conf_dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(conf_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        })
        .collect();
    files.sort();
    files
}

/// Loads the first valid network from `conf_dir` whose plugins are all installed in `bin_dirs`.
/// The error says why none is usable, naming each file that was refused.
pub fn load(conf_dir: &Path, bin_dirs: &[PathBuf]) -> Result<NetworkList, String> {
    let files = config_files(conf_dir);
    if files.is_empty() {
        return Err(format!("no network config found in {}", conf_dir.display()));
    }
    let mut refused = vec![];
    for file in files {
        match parse_file(&file).and_then(|list| {
            for plugin in &list.plugins {
                let kind = NetworkList::plugin_type(plugin);
                if find_plugin(bin_dirs, kind).is_none() {
                    return Err(format!(
                        "plugin {kind:?} not found in {}",
                        join_paths(bin_dirs)
                    ));
                }
            }
            Ok(list)
        }) {
            Ok(list) => return Ok(list),
            Err(e) => refused.push(format!("{}: {e}", file.display())),
        }
    }
    Err(format!("no valid network config: {}", refused.join("; ")))
}

/// Parses one config file: a `.conflist`, or a single plugin config.
pub fn parse_file(path: &Path) -> Result<NetworkList, String> {
    let text = std::fs::read(path).map_err(|e| format!("read: {e}"))?;
    let value: Value = serde_json::from_slice(&text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(mut top) = value else {
        return Err("not a JSON object".into());
    };
    let is_list = path.extension().and_then(|e| e.to_str()) == Some("conflist");
    let name = string(&top, "name")?;
    let cni_version = top
        .get("cniVersion")
        .and_then(Value::as_str)
        .unwrap_or("0.1.0")
        .to_string();
    if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
        return Err(format!("cniVersion {cni_version:?} is not supported"));
    }
    let plugins = if is_list {
        if top.get("disabled").and_then(Value::as_bool) == Some(true) {
            return Err("disabled".into());
        }
        match top.remove("plugins") {
            Some(Value::Array(items)) if !items.is_empty() => items
                .into_iter()
                .map(|p| match p {
                    Value::Object(map) => Ok(map),
                    _ => Err("a plugin is not a JSON object".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("no plugins".into()),
        }
    } else {
        vec![top]
    };
    for plugin in &plugins {
        if NetworkList::plugin_type(plugin).is_empty() {
            return Err("a plugin has no type".into());
        }
        if NetworkList::plugin_type(plugin).contains('/') {
            return Err("a plugin type is a path".into());
        }
    }
    Ok(NetworkList {
        name,
        cni_version,
        plugins,
        source: path.to_path_buf(),
    })
}

fn string(map: &Map<String, Value>, key: &str) -> Result<String, String> {
    match map.get(key).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(format!("no {key:?}")),
    }
}

/// The executable of plugin `kind`: the first bin dir that has it.
pub fn find_plugin(bin_dirs: &[PathBuf], kind: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    bin_dirs.iter().map(|d| d.join(kind)).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// `CNI_PATH`: the bin dirs joined with ':'.
pub fn join_paths(bin_dirs: &[PathBuf]) -> String {
    bin_dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bin_dir() -> (tempfile::TempDir, Vec<PathBuf>) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for name in ["bridge", "portmap"] {
            let p = dir.path().join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let dirs = vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        (dir, dirs)
    }

    #[test]
    fn first_valid_file_in_name_order_wins() {
        let (_bins, bin_dirs) = bin_dir();
        let conf = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(conf.path().join(name), text).unwrap();
        assert!(
            load(conf.path(), &bin_dirs)
                .unwrap_err()
                .contains("no network config")
        );
        write("README", "not a config");
        write("05-broken.conflist", "{");
        write(
            "07-missing.conflist",
            r#"{"cniVersion":"1.0.0","name":"m","plugins":[{"type":"calico"}]}"#,
        );
        write(
            "08-old.conflist",
            r#"{"cniVersion":"9.9.9","name":"o","plugins":[{"type":"bridge"}]}"#,
        );
        write(
            "20-single.conf",
            r#"{"cniVersion":"0.4.0","name":"single","type":"bridge"}"#,
        );
        write(
            "10-good.conflist",
            r#"{"cniVersion":"1.0.0","name":"good","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        );
        let list = load(conf.path(), &bin_dirs).unwrap();
        assert_eq!(list.name, "good");
        assert_eq!(list.plugins.len(), 2);
        assert!(list.passes_prev_result_to_del());

        std::fs::remove_file(conf.path().join("10-good.conflist")).unwrap();
        let list = load(conf.path(), &bin_dirs).unwrap();
        assert_eq!((list.name.as_str(), list.plugins.len()), ("single", 1));

        std::fs::remove_file(conf.path().join("20-single.conf")).unwrap();
        let err = load(conf.path(), &bin_dirs).unwrap_err();
        for part in ["05-broken", "not JSON", "\"calico\" not found", "9.9.9"] {
            assert!(err.contains(part), "{err}");
        }
    }

    #[test]
    fn fingerprint_changes_with_the_files() {
        let conf = tempfile::tempdir().unwrap();
        let empty = fingerprint(conf.path());
        std::fs::write(conf.path().join("a.conflist"), "{}").unwrap();
        assert_ne!(fingerprint(conf.path()), empty);
        assert!(fingerprint(Path::new("/nonexistent")).is_empty());
    }
}
