//! berthd's Prometheus metrics: one process-wide set of families, recorded by the gRPC layer and
//! the pull task, and rendered in the OpenMetrics text format when the endpoint is scraped.
//!
//! Counters and histograms are atomics, cheap enough to record whether or not the endpoint is
//! served. Gauges that describe the node (pods and containers by state, shims) are filled in at
//! scrape time from a [`NodeSnapshot`], so they can never drift from the records.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LayerLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CniLabels {
    op: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latencies from 1 ms to about 33 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Pull durations from 50 ms to about 27 min.
fn pull_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

/// What berthd knows about the node when it is scraped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeSnapshot {
    /// (state, count) of pod sandboxes; every state berth has appears, zero or not.
    pub pods: Vec<(&'static str, i64)>,
    /// (state, count) of containers.
    pub containers: Vec<(&'static str, i64)>,
    /// Pod shims berthd is connected to.
    pub shims: i64,
}

/// Every metric family berthd exports.
pub struct Metrics {
    registry: Registry,
    rpc_requests: Family<RpcLabels, Counter>,
    rpc_duration: Histograms<MethodLabels>,
    pulls: Family<ResultLabels, Counter>,
    pull_duration: Histogram,
    pull_bytes: Counter,
    pull_layers: Family<LayerLabels, Counter>,
    cni_duration: Histograms<CniLabels>,
    pods: Family<StateLabels, Gauge>,
    containers: Family<StateLabels, Gauge>,
    shims: Gauge,
    resident_bytes: Gauge,
    open_fds: Gauge,
    threads: Gauge,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("berth");
        let m = Metrics {
            rpc_requests: Family::default(),
            rpc_duration: Family::new_with_constructor(latency_histogram),
            pulls: Family::default(),
            pull_duration: pull_histogram(),
            pull_bytes: Counter::default(),
            pull_layers: Family::default(),
            cni_duration: Family::new_with_constructor(latency_histogram),
            pods: Family::default(),
            containers: Family::default(),
            shims: Gauge::default(),
            resident_bytes: Gauge::default(),
            open_fds: Gauge::default(),
            threads: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "grpc_requests",
            "CRI and admin RPCs served, by method and gRPC status code",
            m.rpc_requests.clone(),
        );
        r.register(
            "grpc_request_duration_seconds",
            "Time from request to the end of the response, by method",
            m.rpc_duration.clone(),
        );
        r.register(
            "image_pulls",
            "Image pulls finished, by result (ok or the error kind)",
            m.pulls.clone(),
        );
        r.register(
            "image_pull_duration_seconds",
            "Duration of finished image pulls",
            m.pull_duration.clone(),
        );
        r.register(
            "image_pull_bytes",
            "Compressed layer bytes transferred by pulls",
            m.pull_bytes.clone(),
        );
        r.register(
            "image_pull_layers",
            "Layers of pulled images: fetched from the registry or reused from the store",
            m.pull_layers.clone(),
        );
        r.register(
            "cni_duration_seconds",
            "Duration of CNI ADD and DEL calls",
            m.cni_duration.clone(),
        );
        r.register("pods", "Pod sandboxes by state", m.pods.clone());
        r.register("containers", "Containers by state", m.containers.clone());
        r.register("shims", "Pod shims berthd is connected to", m.shims.clone());
        r.register(
            "process_resident_memory_bytes",
            "berthd's resident memory",
            m.resident_bytes.clone(),
        );
        r.register(
            "process_open_fds",
            "berthd's open file descriptors",
            m.open_fds.clone(),
        );
        r.register("process_threads", "berthd's threads", m.threads.clone());
        Metrics { registry, ..m }
    }

    /// One RPC answered: `method` is the last segment of its path, `code` its gRPC status name.
    pub fn record_rpc(&self, method: &str, code: &str, seconds: f64) {
        self.rpc_requests
            .get_or_create(&RpcLabels {
                method: method.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.rpc_duration
            .get_or_create(&MethodLabels {
                method: method.to_string(),
            })
            .observe(seconds);
    }

    /// One pull finished. `result` is `ok` or the error kind; `fetched`/`reused` count layers.
    pub fn record_pull(&self, result: &str, seconds: f64, bytes: u64, fetched: u64, reused: u64) {
        self.pulls
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
        self.pull_duration.observe(seconds);
        self.pull_bytes.inc_by(bytes);
        for (source, n) in [("fetched", fetched), ("reused", reused)] {
            self.pull_layers
                .get_or_create(&LayerLabels {
                    source: source.to_string(),
                })
                .inc_by(n);
        }
    }

    /// One CNI call (`add` or `del`) finished.
    pub fn record_cni(&self, op: &str, seconds: f64) {
        self.cni_duration
            .get_or_create(&CniLabels { op: op.to_string() })
            .observe(seconds);
    }

    /// The metrics in the OpenMetrics text format, with the node gauges set from `node` and the
    /// process gauges read from /proc now.
    pub fn render(&self, node: &NodeSnapshot) -> String {
        for (family, counts) in [
            (&self.pods, &node.pods),
            (&self.containers, &node.containers),
        ] {
            family.clear();
            for (state, n) in counts {
                family
                    .get_or_create(&StateLabels {
                        state: state.to_string(),
                    })
                    .set(*n);
            }
        }
        self.shims.set(node.shims);
        let process = ProcessFigures::read();
        self.resident_bytes.set(process.resident_bytes);
        self.open_fds.set(process.open_fds);
        self.threads.set(process.threads);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// berthd's own resource use, from /proc/self.
struct ProcessFigures {
    resident_bytes: i64,
    open_fds: i64,
    threads: i64,
}

impl ProcessFigures {
    fn read() -> ProcessFigures {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| -> i64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as i64)
            .unwrap_or(0);
        ProcessFigures {
            resident_bytes: field("VmRSS:") * 1024,
            open_fds,
            threads: field("Threads:"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(text: &'a str, name_and_labels: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
    }

    #[test]
    fn rpcs_pulls_and_node_state_render_with_their_values() {
        let m = Metrics::new();
        m.record_rpc("Version", "OK", 0.002);
        m.record_rpc("Version", "OK", 0.004);
        m.record_rpc("PullImage", "NotFound", 0.5);
        m.record_pull("ok", 1.5, 4096, 2, 1);
        m.record_cni("add", 0.03);
        let node = NodeSnapshot {
            pods: vec![("ready", 2), ("notready", 0)],
            containers: vec![("running", 3)],
            shims: 2,
        };
        let text = m.render(&node);
        let v = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
        assert_eq!(
            v(r#"berth_grpc_requests_total{method="Version",code="OK"}"#),
            "2"
        );
        assert_eq!(
            v(r#"berth_grpc_requests_total{method="PullImage",code="NotFound"}"#),
            "1"
        );
        assert_eq!(
            v(r#"berth_grpc_request_duration_seconds_count{method="Version"}"#),
            "2"
        );
        assert_eq!(v(r#"berth_image_pulls_total{result="ok"}"#), "1");
        assert_eq!(v("berth_image_pull_bytes_total"), "4096");
        assert_eq!(v(r#"berth_image_pull_layers_total{source="fetched"}"#), "2");
        assert_eq!(v(r#"berth_image_pull_layers_total{source="reused"}"#), "1");
        assert_eq!(v(r#"berth_cni_duration_seconds_count{op="add"}"#), "1");
        assert_eq!(v(r#"berth_pods{state="ready"}"#), "2");
        assert_eq!(v(r#"berth_pods{state="notready"}"#), "0");
        assert_eq!(v(r#"berth_containers{state="running"}"#), "3");
        assert_eq!(v("berth_shims"), "2");
        assert!(v("berth_process_open_fds").parse::<i64>().unwrap() > 0);
        assert!(v("berth_process_threads").parse::<i64>().unwrap() >= 1);
        assert!(
            v("berth_process_resident_memory_bytes")
                .parse::<i64>()
                .unwrap()
                > 0
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn a_state_that_is_gone_is_not_reported_again() {
        let m = Metrics::new();
        let mut node = NodeSnapshot {
            pods: vec![("ready", 1)],
            ..Default::default()
        };
        assert!(m.render(&node).contains(r#"berth_pods{state="ready"} 1"#));
        node.pods = vec![("notready", 1)];
        let text = m.render(&node);
        assert!(!text.contains(r#"state="ready""#), "{text}");
        assert!(text.contains(r#"berth_pods{state="notready"} 1"#), "{text}");
    }
}
