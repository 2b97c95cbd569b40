//! `berth stats [--no-stream]`: per pod, like `docker stats`: CPU %, memory, PIDs and network
//! I/O, with each pod's containers beneath it, from two samples a second apart. The human table
//! refreshes in place every second until interrupted; `--no-stream` and `-o json` print once.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::args::Output;
use super::inventory::Inventory;
use super::{human_bytes, short_id};
use crate::client::CriClient;
use crate::cri::api;

const INTERVAL: Duration = Duration::from_secs(1);

/// One pod as `-o json` prints it; the keys are stable. Values CRI did not report are null.
#[derive(Debug, PartialEq, Serialize)]
struct PodRow {
    id: String,
    name: String,
    namespace: String,
    cpu_percent: Option<f64>,
    memory_working_set_bytes: Option<u64>,
    pids: Option<u64>,
    network_rx_bytes: Option<u64>,
    network_tx_bytes: Option<u64>,
    containers: Vec<Row>,
}

/// One container of a pod.
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
fn cpu_sample(cpu: Option<&api::CpuUsage>) -> Option<(i64, u64)> {
    let cpu = cpu?;
    Some((cpu.timestamp, cpu.usage_core_nano_seconds.as_ref()?.value))
}

/// CPU use in percent of one core: from the two samples when both have a cumulative counter,
/// else from the runtime's own rate (`usage_nano_cores`).
fn cpu_percent(before: Option<&api::CpuUsage>, after: Option<&api::CpuUsage>) -> Option<f64> {
    if let (Some((t0, u0)), Some((t1, u1))) = (cpu_sample(before), cpu_sample(after))
        && t1 > t0
    {
        return Some(u1.saturating_sub(u0) as f64 / (t1 - t0) as f64 * 100.0);
    }
    let rate = after?.usage_nano_cores.as_ref()?.value;
    Some(rate as f64 / 1e7)
}

/// Pod and container statistics at one instant.
struct Sample {
    pods: Vec<api::PodSandboxStats>,
    containers: Vec<api::ContainerStats>,
}

async fn sample(client: &CriClient) -> anyhow::Result<Sample> {
    let mut runtime = client.runtime.clone();
    let pods = runtime
        .list_pod_sandbox_stats(api::ListPodSandboxStatsRequest { filter: None })
        .await?
        .into_inner()
        .stats;
    let containers = runtime
        .list_container_stats(api::ListContainerStatsRequest { filter: None })
        .await?
        .into_inner()
        .stats;
    Ok(Sample { pods, containers })
}

fn container_rows(inventory: &Inventory, before: &Sample, after: &Sample) -> Vec<(String, Row)> {
    let before: HashMap<&str, &api::ContainerStats> = before
        .containers
        .iter()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.as_str(), s)))
        .collect();
    after
        .containers
        .iter()
        .filter_map(|s| {
            let attrs = s.attributes.as_ref()?;
            let pod_id = inventory
                .containers
                .iter()
                .find(|c| c.id == attrs.id)
                .map_or("", |c| c.pod_sandbox_id.as_str());
            let (pod_namespace, pod_name) = inventory.pod_of(pod_id, &attrs.labels);
            let earlier = before.get(attrs.id.as_str()).and_then(|b| b.cpu.as_ref());
            let row = Row {
                id: attrs.id.clone(),
                name: attrs
                    .metadata
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
                pod_name,
                pod_namespace,
                cpu_percent: cpu_percent(earlier, s.cpu.as_ref()),
                memory_working_set_bytes: s
                    .memory
                    .as_ref()
                    .and_then(|m| m.working_set_bytes.as_ref())
                    .map(|v| v.value),
            };
            Some((pod_id.to_string(), row))
        })
        .collect()
}

fn rows(inventory: &Inventory, before: &Sample, after: &Sample) -> Vec<PodRow> {
    let mut containers: HashMap<String, Vec<Row>> = HashMap::new();
    for (pod, row) in container_rows(inventory, before, after) {
        containers.entry(pod).or_default().push(row);
    }
    let earlier: HashMap<&str, &api::LinuxPodSandboxStats> = before
        .pods
        .iter()
        .filter_map(|s| Some((s.attributes.as_ref()?.id.as_str(), s.linux.as_ref()?)))
        .collect();
    let mut rows: Vec<PodRow> = after
        .pods
        .iter()
        .filter_map(|s| {
            let attrs = s.attributes.as_ref()?;
            let linux = s.linux.as_ref();
            let meta = attrs.metadata.as_ref();
            let network = linux.and_then(|l| l.network.as_ref());
            let interfaces = || {
                network
                    .into_iter()
                    .flat_map(|n| n.default_interface.iter().chain(&n.interfaces))
            };
            let sum = |f: fn(&api::NetworkInterfaceUsage) -> Option<u64>| {
                network.map(|_| interfaces().filter_map(f).sum::<u64>())
            };
            let before_cpu = earlier.get(attrs.id.as_str()).and_then(|l| l.cpu.as_ref());
            let mut mine = containers.remove(&attrs.id).unwrap_or_default();
            mine.sort_by(|a, b| a.name.cmp(&b.name));
            Some(PodRow {
                id: attrs.id.clone(),
                name: meta.map(|m| m.name.clone()).unwrap_or_default(),
                namespace: meta.map(|m| m.namespace.clone()).unwrap_or_default(),
                cpu_percent: cpu_percent(before_cpu, linux.and_then(|l| l.cpu.as_ref())),
                memory_working_set_bytes: linux
                    .and_then(|l| l.memory.as_ref()?.working_set_bytes.as_ref())
                    .map(|v| v.value),
                pids: linux
                    .and_then(|l| l.process.as_ref()?.process_count.as_ref())
                    .map(|v| v.value),
                network_rx_bytes: sum(|i| i.rx_bytes.as_ref().map(|v| v.value)),
                network_tx_bytes: sum(|i| i.tx_bytes.as_ref().map(|v| v.value)),
                containers: mine,
            })
        })
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    rows
}

/// The human table: one line per pod, its containers indented beneath it.
fn table(rows: &[PodRow]) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<13}  {:<32}  {:>7}  {:>10}  {:>5}  {:>19}\n",
        "POD", "NAME", "CPU %", "MEM", "PIDS", "NET I/O"
    );
    let opt = |v: Option<u64>| v.map_or("-".into(), human_bytes);
    for r in rows {
        let name = if r.namespace.is_empty() {
            r.name.clone()
        } else {
            format!("{}/{}", r.namespace, r.name)
        };
        let cpu = r.cpu_percent.map_or("-".into(), |c| format!("{c:.2}"));
        let pids = r.pids.map_or("-".into(), |p| p.to_string());
        let net = format!("{} / {}", opt(r.network_rx_bytes), opt(r.network_tx_bytes));
        let _ = writeln!(
            out,
            "{:<13}  {name:<32}  {cpu:>7}  {:>10}  {pids:>5}  {net:>19}",
            short_id(&r.id),
            opt(r.memory_working_set_bytes),
        );
        for c in &r.containers {
            let cpu = c.cpu_percent.map_or("-".into(), |c| format!("{c:.2}"));
            let _ = writeln!(
                out,
                "  {:<11}  {:<32}  {cpu:>7}  {:>10}",
                &c.id[..11.min(c.id.len())],
                format!("└ {}", c.name),
                opt(c.memory_working_set_bytes),
            );
        }
    }
    out
}

pub async fn stats(client: &CriClient, no_stream: bool, out: Output) -> anyhow::Result<()> {
    let once = no_stream || out == Output::Json;
    let mut before = sample(client).await?;
    loop {
        tokio::time::sleep(INTERVAL).await;
        let after = sample(client).await?;
        let inventory = Inventory::list(client).await?;
        let rows = rows(&inventory, &before, &after);
        if out == Output::Json {
            return super::print_json(&rows);
        }
        let table = table(&rows);
        if once {
            print!("{table}");
            return Ok(());
        }
        // Home the cursor, draw, clear what is left of the previous frame: no flicker.
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        write!(stdout, "\x1b[H{}\x1b[J", table.replace('\n', "\x1b[K\n"))?;
        stdout.flush()?;
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
        assert_eq!(
            cpu_percent(before.cpu.as_ref(), after.cpu.as_ref()),
            Some(50.0)
        );
    }

    #[test]
    fn cpu_from_the_runtime_rate_without_a_previous_sample() {
        let after = stats(2, Some(7), Some(250_000_000));
        assert_eq!(cpu_percent(None, after.cpu.as_ref()), Some(25.0));
        assert_eq!(
            cpu_percent(None, stats(2, Some(7), None).cpu.as_ref()),
            None
        );
    }
}
