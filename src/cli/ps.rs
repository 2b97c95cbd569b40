//! `berth ps [-a] [--pod POD]`: containers with their image, state and pod.

use std::time::SystemTime;

use serde::Serialize;

use super::args::Output;
use super::inventory::Inventory;
use super::{ago, rfc3339, short_id};
use crate::client::CriClient;
use crate::cri::api;

/// One container as `-o json` prints it; the keys are stable.
#[derive(Serialize)]
struct Row {
    id: String,
    name: String,
    attempt: u32,
    state: &'static str,
    image: String,
    image_ref: String,
    created_at: String,
    pod_id: String,
    pod_name: String,
    pod_namespace: String,
}

/// `running`, `exited`, ... for a CRI container state.
pub fn state_name(state: i32) -> &'static str {
    match api::ContainerState::try_from(state) {
        Ok(api::ContainerState::ContainerCreated) => "created",
        Ok(api::ContainerState::ContainerRunning) => "running",
        Ok(api::ContainerState::ContainerExited) => "exited",
        _ => "unknown",
    }
}

pub async fn ps(
    client: &CriClient,
    all: bool,
    pod: Option<&str>,
    out: Output,
) -> anyhow::Result<()> {
    let inventory = Inventory::list(client).await?;
    let pod_id = match pod {
        Some(prefix) => Some(inventory.pod(prefix)?.id.clone()),
        None => None,
    };
    let mut containers: Vec<&api::Container> = inventory
        .containers
        .iter()
        .filter(|c| all || c.state == api::ContainerState::ContainerRunning as i32)
        .filter(|c| pod_id.as_ref().is_none_or(|p| *p == c.pod_sandbox_id))
        .collect();
    containers.sort_by_key(|c| std::cmp::Reverse(c.created_at));
    let rows: Vec<(Row, i64)> = containers
        .into_iter()
        .map(|c| {
            let (pod_namespace, pod_name) = inventory.pod_of(&c.pod_sandbox_id, &c.labels);
            let meta = c.metadata.clone().unwrap_or_default();
            let row = Row {
                id: c.id.clone(),
                name: meta.name,
                attempt: meta.attempt,
                state: state_name(c.state),
                image: c
                    .image
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default(),
                image_ref: c.image_ref.clone(),
                created_at: rfc3339(c.created_at),
                pod_id: c.pod_sandbox_id.clone(),
                pod_name,
                pod_namespace,
            };
            (row, c.created_at)
        })
        .collect();
    if out == Output::Json {
        let rows: Vec<&Row> = rows.iter().map(|(r, _)| r).collect();
        return super::print_json(&rows);
    }
    let now = SystemTime::now();
    println!(
        "{:<13}  {:<40}  {:<16}  {:<8}  {:<20}  {:<7}  {:<13}  {:<25}  NAMESPACE",
        "CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"
    );
    for (r, created) in &rows {
        println!(
            "{:<13}  {:<40}  {:<16}  {:<8}  {:<20}  {:<7}  {:<13}  {:<25}  {}",
            short_id(&r.id),
            r.image,
            ago(*created, now),
            r.state,
            r.name,
            r.attempt,
            short_id(&r.pod_id),
            r.pod_name,
            r.pod_namespace
        );
    }
    Ok(())
}
