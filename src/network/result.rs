//! The pod's IPs out of a CNI ADD result: spec 0.3.x, 0.4.0 and 1.x (`interfaces` + `ips`),
//! and the older 0.1/0.2 shape (`ip4`, `ip6`) for plugins that still answer with it.

use std::net::IpAddr;

use serde_json::Value;

use super::PodIps;

/// IPs of the pod's own interfaces (those inside a sandbox; an `ips` entry without an interface
/// index counts too), without prefix lengths, the first IPv4 first, then the rest in order.
pub fn pod_ips(result: &Value) -> Result<PodIps, String> {
    let mut ips: Vec<IpAddr> = vec![];
    if let Some(entries) = result.get("ips") {
        let entries = entries.as_array().ok_or("\"ips\" is not a list")?;
        let interfaces = result
            .get("interfaces")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for entry in entries {
            let in_pod = match entry.get("interface").and_then(Value::as_u64) {
                None => true,
                Some(index) => interfaces
                    .get(index as usize)
                    .and_then(|i| i.get("sandbox"))
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty()),
            };
            if in_pod {
                ips.push(address(entry.get("address"))?);
            }
        }
    } else {
        for key in ["ip4", "ip6"] {
            if let Some(block) = result.get(key) {
                ips.push(address(block.get("ip"))?);
            }
        }
    }
    if let Some(v4) = ips.iter().position(IpAddr::is_ipv4) {
        let first = ips.remove(v4);
        ips.insert(0, first);
    }
    Ok(PodIps(ips.iter().map(IpAddr::to_string).collect()))
}

/// `10.88.0.5/16` → `10.88.0.5`.
fn address(value: Option<&Value>) -> Result<IpAddr, String> {
    let text = value
        .and_then(Value::as_str)
        .ok_or("an IP entry has no address")?;
    let ip = text.split('/').next().unwrap_or(text);
    ip.parse()
        .map_err(|_| format!("{text:?} is not an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v1_result_pod_interface_only_ipv4_first() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "berth0", "mac": "aa"},
                {"name": "veth1", "mac": "bb"},
                {"name": "eth0", "mac": "cc", "sandbox": "/run/berth/pods/x/ns/net"}
            ],
            "ips": [
                {"interface": 2, "address": "fd00::5/64", "gateway": "fd00::1"},
                {"interface": 0, "address": "10.88.0.1/16"},
                {"interface": 2, "address": "10.88.0.5/16", "gateway": "10.88.0.1"}
            ]
        });
        assert_eq!(pod_ips(&result).unwrap().0, ["10.88.0.5", "fd00::5"]);
    }

    #[test]
    fn v03_and_v04_results_with_version_fields_and_no_interface() {
        let result = json!({
            "cniVersion": "0.3.1",
            "ips": [{"version": "4", "address": "192.168.1.7/24"}]
        });
        assert_eq!(pod_ips(&result).unwrap().0, ["192.168.1.7"]);
        let result = json!({"cniVersion": "0.4.0", "interfaces": [], "ips": []});
        assert!(pod_ips(&result).unwrap().0.is_empty());
    }

    #[test]
    fn v02_result() {
        let result = json!({"ip4": {"ip": "10.1.2.3/24"}, "ip6": {"ip": "2001:db8::3/64"}});
        assert_eq!(pod_ips(&result).unwrap().0, ["10.1.2.3", "2001:db8::3"]);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(pod_ips(&json!({"ips": [{"address": "nope/3"}]})).is_err());
        assert!(pod_ips(&json!({"ips": 5})).is_err());
    }
}
