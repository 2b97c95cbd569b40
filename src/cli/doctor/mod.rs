//! `berth doctor`: checks the node's prerequisites for berth and prints each as OK, WARN or
//! FAIL with a one-line fix; fails (non-zero exit) when any check fails.

mod host;
mod node;

use std::path::PathBuf;

use anyhow::bail;
use serde::Serialize;

use super::args::Output;
use crate::config::{Config, DEFAULT_CONFIG_PATH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check's verdict. `-o json` prints `{"checks": [...], "failed": N}` with these keys.
#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
    /// What to do about a WARN or FAIL; null when OK.
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &'static str, message: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            message: message.into(),
            fix: None,
        }
    }

    pub fn warn(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Warn,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(name: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            message: message.into(),
            fix: Some(fix.into()),
        }
    }
}

pub async fn doctor(
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
    out: Output,
) -> anyhow::Result<()> {
    let explicit = config.is_some();
    let path = config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    let mut checks = Vec::new();
    let config = match Config::load(&path, explicit) {
        Ok(config) => {
            checks.push(Check::ok("config", format!("{} parses", path.display())));
            config
        }
        Err(e) => {
            checks.push(Check::fail(
                "config",
                e.to_string(),
                "fix the named key (berthd --print-default-config shows every key)",
            ));
            Config::default()
        }
    };
    checks.extend(host::checks(&config));
    checks.extend(node::checks(&config));
    let socket = socket.unwrap_or_else(|| config.grpc.socket.clone());
    checks.extend(node::socket(&socket).await);
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if out == Output::Json {
        super::print_json(&serde_json::json!({ "checks": checks, "failed": failed }))?;
    } else {
        for c in &checks {
            let status = match c.status {
                Status::Ok => "OK",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            println!("{status:<5} {:<17} {}", c.name, c.message);
            if let Some(fix) = &c.fix {
                println!("{:<23} fix: {fix}", "");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}
