//! `berth version` and `berth info`: the daemon's identity, readiness and runtime handlers.

use crate::client::CriClient;
use crate::cri::api;

pub async fn version(client: &CriClient) -> anyhow::Result<()> {
    let v = client
        .runtime
        .clone()
        .version(api::VersionRequest::default())
        .await?
        .into_inner();
    println!(
        "{} {} (CRI {})",
        v.runtime_name, v.runtime_version, v.runtime_api_version
    );
    Ok(())
}

pub async fn info(client: &CriClient) -> anyhow::Result<()> {
    let s = client
        .runtime
        .clone()
        .status(api::StatusRequest { verbose: false })
        .await?
        .into_inner();
    for c in s.status.map(|s| s.conditions).unwrap_or_default() {
        let reason = if c.status {
            String::new()
        } else {
            format!(" ({}: {})", c.reason, c.message)
        };
        println!("{:<14} {}{}", c.r#type, c.status, reason);
    }
    for h in s.runtime_handlers {
        let name = if h.name.is_empty() {
            "(default)"
        } else {
            &h.name
        };
        println!("handler        {name}");
    }
    Ok(())
}
