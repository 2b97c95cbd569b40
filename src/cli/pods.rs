//! `berth pods`: pod sandboxes with their state, runtime handler and container count.

use std::time::SystemTime;

use serde::Serialize;

use super::args::Output;
use super::inventory::Inventory;
use super::{ago, rfc3339, short_id};
use crate::client::CriClient;
use crate::cri::api;

/// One pod as `-o json` prints it; the keys are stable.
#[derive(Serialize)]
struct Row {
    id: String,
    name: String,
    namespace: String,
    uid: String,
    attempt: u32,
    state: &'static str,
    created_at: String,
    runtime_handler: String,
    containers: usize,
}

pub async fn pods(client: &CriClient, out: Output) -> anyhow::Result<()> {
    let inventory = Inventory::list(client).await?;
    let mut pods: Vec<&api::PodSandbox> = inventory.pods.iter().collect();
    pods.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    let rows: Vec<(Row, i64)> = pods
        .into_iter()
        .map(|p| {
            let meta = p.metadata.clone().unwrap_or_default();
            let ready = p.state == api::PodSandboxState::SandboxReady as i32;
            let row = Row {
                id: p.id.clone(),
                name: meta.name,
                namespace: meta.namespace,
                uid: meta.uid,
                attempt: meta.attempt,
                state: if ready { "ready" } else { "notready" },
                created_at: rfc3339(p.created_at),
                runtime_handler: p.runtime_handler.clone(),
                containers: inventory
                    .containers
                    .iter()
                    .filter(|c| c.pod_sandbox_id == p.id)
                    .count(),
            };
            (row, p.created_at)
        })
        .collect();
    if out == Output::Json {
        let rows: Vec<&Row> = rows.iter().map(|(r, _)| r).collect();
        return super::print_json(&rows);
    }
    let now = SystemTime::now();
    println!(
        "{:<13}  {:<16}  {:<8}  {:<30}  {:<20}  {:<7}  {:<10}  RUNTIME",
        "POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "CONTAINERS"
    );
    for (r, created) in &rows {
        let handler = if r.runtime_handler.is_empty() {
            "(default)"
        } else {
            &r.runtime_handler
        };
        println!(
            "{:<13}  {:<16}  {:<8}  {:<30}  {:<20}  {:<7}  {:<10}  {handler}",
            short_id(&r.id),
            ago(*created, now),
            r.state,
            r.name,
            r.namespace,
            r.attempt,
            r.containers
        );
    }
    Ok(())
}
