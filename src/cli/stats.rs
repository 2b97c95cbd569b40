//! `berth stats [--watch]`: CPU and memory of each container with a process, from two
//! `ListContainerStats` samples a second apart.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::args::Output;
use super::inventory::Inventory;
use super::{human_bytes, short_id};
use crate::client::CriClient;
use crate::cri::api;

const INTERVAL: Duration = Duration::from_secs(1);

/// One container as `-o json` prints it; the keys are stable. Values CRI did not report are null.
#[derive(Debug, PartialEq, Serialize)]
struct Row {
    id: String,
    name: String,
    pod_name: String,
    pod_namespace: String,
    cpu_percent: Option<f64>,
    memory_working_set_bytes: Option<u64>,
}

/// (timestamp ns, cumulative CPU ns) of a sample.
fn cpu_sample(s: &api::ContainerStats) -> Option<(i64, u64)> {
    let cpu = s.cpu.as_ref()?;
    Some((cpu.timestamp, cpu.usage_core_nano_seconds.as_ref()?.value))
}

/// CPU use in percent of one core: from the two samples when both have a cumulative counter,
/// else from the runtime's own rate (`usage_nano_cores`).
fn cpu_percent(before: Option<&api::ContainerStats>, after: &api::ContainerStats) -> Option<f64> {
    if let (Some((t0, u0)), Some((t1, u1))) = (before.and_then(cpu_sample), cpu_sample(after))
        && t1 > t0
    {
        return Some(u1.saturating_sub(u0) as f64 / (t1 - t0) as f64 * 100.0);
    }
    let rate = after.cpu.as_ref()?.usage_nano_cores.as_ref()?.value;
    Some(rate as f64 / 1e7)
}

async fn sample(client: &CriClient) -> anyhow::Result<Vec<api::ContainerStats>> {
    Ok(client
        .runtime
        .clone()
        .list_container_stats(api::ListContainerStatsRequest { filter: None })
        .await?
        .into_inner()
        .stats)
}

fn rows(
    inventory: &Inventory,
    before: &[api::ContainerStats],
    after: &[api::ContainerStats],
) -> Vec<Row> {
    let before: HashMap<&str, &api::ContainerStats> = before
        .iter()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.as_str(), s)))
        .collect();
    let mut rows: Vec<Row> = after
        .iter()
        .filter_map(|s| {
            let attrs = s.attributes.as_ref()?;
            let pod_id = inventory
                .containers
                .iter()
                .find(|c| c.id == attrs.id)
                .map_or("", |c| c.pod_sandbox_id.as_str());
            let (pod_namespace, pod_name) = inventory.pod_of(pod_id, &attrs.labels);
            Some(Row {
                id: attrs.id.clone(),
                name: attrs
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
                pod_name,
                pod_namespace,
                cpu_percent: cpu_percent(before.get(attrs.id.as_str()).copied(), s),
                memory_working_set_bytes: s
                    .memory
                    .as_ref()
                    .and_then(|m| m.working_set_bytes.as_ref())
                    .map(|v| v.value),
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (&a.pod_namespace, &a.pod_name, &a.name).cmp(&(&b.pod_namespace, &b.pod_name, &b.name))
    });
    rows
}

fn print(rows: &[Row], out: Output) -> anyhow::Result<()> {
    if out == Output::Json {
        return super::print_json(&rows);
    }
    println!(
        "{:<13}  {:<20}  {:<30}  {:>7}  {:>10}",
        "CONTAINER", "NAME", "POD", "CPU %", "MEM"
    );
    for r in rows {
        let cpu = r.cpu_percent.map_or("-".into(), |c| format!("{c:.2}"));
        let mem = r.memory_working_set_bytes.map_or("-".into(), human_bytes);
        let pod = if r.pod_namespace.is_empty() {
            r.pod_name.clone()
        } else {
            format!("{}/{}", r.pod_namespace, r.pod_name)
        };
        println!(
            "{:<13}  {:<20}  {:<30}  {cpu:>7}  {mem:>10}",
            short_id(&r.id),
            r.name,
            pod
        );
    }
    Ok(())
}

pub async fn stats(client: &CriClient, watch: bool, out: Output) -> anyhow::Result<()> {
    let mut before = sample(client).await?;
    loop {
        tokio::time::sleep(INTERVAL).await;
        let after = sample(client).await?;
        let inventory = Inventory::list(client).await?;
        let rows = rows(&inventory, &before, &after);
        if watch && out == Output::Human {
            // Home the cursor and clear the screen: the table refreshes in place.
            print!("\x1b[H\x1b[2J");
        }
        print(&rows, out)?;
        if !watch {
            return Ok(());
        }
        before = after;
    }
}

#[cfg(test)]
mod tests {
    use super::cpu_percent;
    use crate::cri::api;

    fn stats(timestamp: i64, total: Option<u64>, rate: Option<u64>) -> api::ContainerStats {
        api::ContainerStats {
            cpu: Some(api::CpuUsage {
                timestamp,
                usage_core_nano_seconds: total.map(|value| api::UInt64Value { value }),
                usage_nano_cores: rate.map(|value| api::UInt64Value { value }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn cpu_from_two_samples() {
        let before = stats(1_000_000_000, Some(5_000_000_000), None);
        let after = stats(2_000_000_000, Some(5_500_000_000), Some(1));
        assert_eq!(cpu_percent(Some(&before), &after), Some(50.0));
    }

    #[test]
    fn cpu_from_the_runtime_rate_without_a_previous_sample() {
        let after = stats(2, Some(7), Some(250_000_000));
        assert_eq!(cpu_percent(None, &after), Some(25.0));
        assert_eq!(cpu_percent(None, &stats(2, Some(7), None)), None);
    }
}
