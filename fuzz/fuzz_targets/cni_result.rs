//! Parses arbitrary bytes as a CNI plugin's ADD result (what the last plugin printed) and takes
//! the pod's IPs out of it: an error or a list of plain IP addresses, IPv4 first, never a panic.
#![no_main]

use std::net::IpAddr;

use berth::network::result::pod_ips;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(result) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(ips) = pod_ips(&result) else {
        return;
    };
    let parsed: Vec<IpAddr> = ips
        .0
        .iter()
        .map(|ip| {
            ip.parse()
                .unwrap_or_else(|_| panic!("{ip:?} is not an IP address"))
        })
        .collect();
    if parsed.iter().any(IpAddr::is_ipv4) {
        assert!(
            parsed[0].is_ipv4(),
            "an IPv4 address comes first: {parsed:?}"
        );
    }
});
