//! Runs one CNI plugin: the `CNI_*` variables in a clean environment, the network config on
//! stdin, the result (or the CNI error object) on stdout.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// Plugins find their helpers (iptables, ip) on this PATH; nothing else of berthd's
/// environment reaches them.
const PLUGIN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long one plugin may run before it is killed (a hung plugin must not hang the pod).
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(120);

/// The `CNI_*` environment of one call.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// `ADD`, `DEL` or `CHECK`.
    pub command: &'static str,
    pub container_id: &'a str,
    /// Empty when the namespace is gone (DEL only).
    pub netns: &'a str,
    pub ifname: &'a str,
    /// `CNI_PATH`: where a plugin finds the plugins it delegates to (IPAM).
    pub cni_path: &'a str,
    /// `CNI_ARGS`: `IgnoreUnknown=1;K8S_POD_NAMESPACE=...;...`.
    pub cni_args: &'a str,
}

/// Runs `binary` with `config` on stdin. Returns the result object (`Value::Null` when the
/// plugin printed nothing, as DEL may), or the plugin's error message.
pub async fn run(binary: &Path, call: &Invocation<'_>, config: &Value) -> Result<Value, String> {
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .env("PATH", PLUGIN_PATH)
        .env("CNI_COMMAND", call.command)
        .env("CNI_CONTAINERID", call.container_id)
        .env("CNI_NETNS", call.netns)
        .env("CNI_IFNAME", call.ifname)
        .env("CNI_PATH", call.cni_path)
        .env("CNI_ARGS", call.cni_args)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("run {}: {e}", binary.display()))?;
    let input = serde_json::to_vec(config).expect("a network config serialises");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = async move {
        // A plugin may exit without reading all of stdin; its answer still counts.
        let _ = stdin.write_all(&input).await;
        drop(stdin);
    };
    let (_, output) = tokio::time::timeout(PLUGIN_TIMEOUT, async {
        tokio::join!(writer, child.wait_with_output())
    })
    .await
    .map_err(|_| format!("no answer within {}s", PLUGIN_TIMEOUT.as_secs()))?;
    let output = output.map_err(|e| format!("wait for {}: {e}", binary.display()))?;
    let stdout: Option<Value> = serde_json::from_slice(&output.stdout).ok();
    if output.status.success() {
        return match stdout {
            Some(value) => Ok(value),
            None if output.stdout.iter().all(u8::is_ascii_whitespace) => Ok(Value::Null),
            None => Err(format!(
                "answered with non-JSON output: {}",
                String::from_utf8_lossy(&output.stdout).trim()
            )),
        };
    }
    Err(failure_message(
        stdout.as_ref(),
        &output.stderr,
        &output.status,
    ))
}

/// The CNI error object (`code`, `msg`, `details`) when the plugin printed one, else its
/// stderr, with the exit status.
fn failure_message(
    stdout: Option<&Value>,
    stderr: &[u8],
    status: &std::process::ExitStatus,
) -> String {
    let field = |k: &str| {
        stdout
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut message = match (field("msg"), field("details")) {
        (Some(msg), Some(details)) => format!("{msg}: {details}"),
        (Some(msg), None) => msg.to_string(),
        _ => String::from_utf8_lossy(stderr).trim().to_string(),
    };
    if let Some(code) = stdout.and_then(|v| v.get("code")).and_then(Value::as_u64) {
        message.push_str(&format!(" (CNI error code {code})"));
    }
    if message.is_empty() {
        message = "failed without a message".into();
    }
    format!("{message} [{status}]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, body: &str) -> std::path::PathBuf {
        let path = dir.join("plugin");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn call() -> Invocation<'static> {
        Invocation {
            command: "ADD",
            container_id: "abc",
            netns: "/x/net",
            ifname: "eth0",
            cni_path: "/usr/lib/cni",
            cni_args: "IgnoreUnknown=1;K8S_POD_NAME=p",
        }
    }

    #[tokio::test]
    async fn environment_is_clean_and_stdin_is_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = script(
            dir.path(),
            r#"read -r conf; printf '{"env":"%s","conf":%s}' "$(env | grep -v '^PWD=' | grep -v '^SHLVL=' | grep -v '^_=' | sort | tr '\n' ' ')" "$conf""#,
        );
        let out = run(&plugin, &call(), &json!({"name": "n"})).await.unwrap();
        assert_eq!(out["conf"], json!({"name": "n"}));
        assert_eq!(
            out["env"].as_str().unwrap().trim(),
            format!(
                "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=p CNI_COMMAND=ADD CNI_CONTAINERID=abc CNI_IFNAME=eth0 CNI_NETNS=/x/net CNI_PATH=/usr/lib/cni PATH={PLUGIN_PATH}"
            )
        );
    }

    #[tokio::test]
    async fn cni_error_objects_and_stderr_become_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = script(
            dir.path(),
            r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"no more addresses","details":"range full"}'; exit 1"#,
        );
        let err = run(&plugin, &call(), &json!({})).await.unwrap_err();
        assert!(
            err.starts_with("no more addresses: range full (CNI error code 11)"),
            "{err}"
        );
        let plugin = script(dir.path(), "echo broken >&2; exit 3");
        let err = run(&plugin, &call(), &json!({})).await.unwrap_err();
        assert!(err.starts_with("broken ["), "{err}");
        let plugin = script(dir.path(), "exit 0");
        assert_eq!(
            run(&plugin, &call(), &json!({})).await.unwrap(),
            Value::Null
        );
    }
}
