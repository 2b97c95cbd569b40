//! CNI capability arguments (`runtimeConfig`): host ports, bandwidth limits and DNS, built from
//! the pod's CRI config and handed only to the plugins whose config declares the capability.

use crate::cri_api as api;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Annotations kubelet sets for the pod's traffic shaping (kubernetes.io/ingress-bandwidth).
const INGRESS_ANNOTATION: &str = "kubernetes.io/ingress-bandwidth";
const EGRESS_ANNOTATION: &str = "kubernetes.io/egress-bandwidth";

/// Every capability argument berth can offer for one pod; empty ones are not passed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    #[serde(rename = "portMappings", default)]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default)]
    pub bandwidth: Option<Bandwidth>,
    #[serde(default)]
    pub dns: Option<DnsCapability>,
}

/// One host port, as the `portmap` plugin reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: i32,
    pub container_port: i32,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// Rates in bits per second, as the `bandwidth` plugin reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ingress_rate: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ingress_burst: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub egress_rate: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub egress_burst: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsCapability {
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub searches: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

/// A burst large enough not to limit (what kubelet's bandwidth shaping assumes).
const UNLIMITED_BURST: u64 = i32::MAX as u64;

impl RuntimeConfig {
    /// The capability arguments of a pod. A port mapping without a host port is not a mapping
    /// (kubelet sends container ports for information); a bad bandwidth annotation is an error.
    pub fn from_pod(config: &api::PodSandboxConfig) -> Result<RuntimeConfig, String> {
        let port_mappings = config
            .port_mappings
            .iter()
            .filter(|p| p.host_port > 0)
            .map(|p| PortMapping {
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: protocol_name(p.protocol).to_string(),
                host_ip: p.host_ip.clone(),
            })
            .collect();
        let rate = |key: &str| -> Result<u64, String> {
            match config.annotations.get(key) {
                Some(text) => parse_quantity(text).map_err(|e| format!("annotation {key}: {e}")),
                None => Ok(0),
            }
        };
        let (ingress, egress) = (rate(INGRESS_ANNOTATION)?, rate(EGRESS_ANNOTATION)?);
        let bandwidth = (ingress > 0 || egress > 0).then_some(Bandwidth {
            ingress_rate: ingress,
            ingress_burst: if ingress > 0 { UNLIMITED_BURST } else { 0 },
            egress_rate: egress,
            egress_burst: if egress > 0 { UNLIMITED_BURST } else { 0 },
        });
        let dns = config.dns_config.as_ref().map(|d| DnsCapability {
            servers: d.servers.clone(),
            searches: d.searches.clone(),
            options: d.options.clone(),
        });
        Ok(RuntimeConfig {
            port_mappings,
            bandwidth,
            dns,
        })
    }

    /// The `runtimeConfig` object for a plugin whose `capabilities` map is `caps`: only declared
    /// (true) capabilities that have a value; `None` when there is nothing to pass.
    pub fn for_plugin(&self, caps: Option<&Value>) -> Option<Value> {
        let caps = caps?.as_object()?;
        let wanted = |name: &str| caps.get(name).and_then(Value::as_bool).unwrap_or(false);
        let mut out = Map::new();
        if wanted("portMappings") && !self.port_mappings.is_empty() {
            out.insert("portMappings".into(), json(&self.port_mappings));
        }
        if let Some(bandwidth) = self.bandwidth.as_ref().filter(|_| wanted("bandwidth")) {
            out.insert("bandwidth".into(), json(bandwidth));
        }
        if let Some(dns) = self.dns.as_ref().filter(|_| wanted("dns")) {
            out.insert("dns".into(), json(dns));
        }
        (!out.is_empty()).then_some(Value::Object(out))
    }
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("capability arguments serialise")
}

fn protocol_name(protocol: i32) -> &'static str {
    match api::Protocol::try_from(protocol) {
        Ok(api::Protocol::Udp) => "udp",
        Ok(api::Protocol::Sctp) => "sctp",
        _ => "tcp",
    }
}

/// A Kubernetes quantity (`10M`, `1Gi`, `500k`, `1000`) as a whole number.
fn parse_quantity(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a quantity"))?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return Err(format!("{text:?} has an unknown unit {suffix:?}")),
    };
    Ok((number * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> api::PodSandboxConfig {
        api::PodSandboxConfig {
            port_mappings: vec![
                api::PortMapping {
                    protocol: api::Protocol::Udp as i32,
                    container_port: 53,
                    host_port: 5353,
                    host_ip: "127.0.0.1".into(),
                },
                api::PortMapping {
                    protocol: api::Protocol::Tcp as i32,
                    container_port: 80,
                    host_port: 0,
                    host_ip: String::new(),
                },
            ],
            dns_config: Some(api::DnsConfig {
                servers: vec!["10.96.0.10".into()],
                searches: vec![],
                options: vec!["ndots:5".into()],
            }),
            annotations: [(INGRESS_ANNOTATION.to_string(), "10M".to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn only_declared_capabilities_with_values_are_passed() {
        let rc = RuntimeConfig::from_pod(&pod()).unwrap();
        assert_eq!(
            rc.for_plugin(Some(&json!({"portMappings": true}))).unwrap(),
            json!({"portMappings": [{"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]})
        );
        assert_eq!(
            rc.for_plugin(Some(&json!({"bandwidth": true, "dns": false})))
                .unwrap(),
            json!({"bandwidth": {"ingressRate": 10_000_000u64, "ingressBurst": i32::MAX}})
        );
        assert_eq!(rc.for_plugin(Some(&json!({"portMappings": false}))), None);
        assert_eq!(rc.for_plugin(None), None);
        let none = RuntimeConfig::default();
        assert_eq!(none.for_plugin(Some(&json!({"portMappings": true}))), None);
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1000").unwrap(), 1000);
        assert_eq!(parse_quantity("1.5M").unwrap(), 1_500_000);
        assert_eq!(parse_quantity("2Ki").unwrap(), 2048);
        assert!(parse_quantity("fast").is_err());
        assert!(parse_quantity("10X").is_err());
        let mut bad = pod();
        bad.annotations
            .insert(EGRESS_ANNOTATION.into(), "lots".into());
        let err = RuntimeConfig::from_pod(&bad).unwrap_err();
        assert!(err.contains(EGRESS_ANNOTATION), "{err}");
    }
}
