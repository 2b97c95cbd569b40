//! The node's pod CIDR as kubelet last sent it in `UpdateRuntimeConfig`. berth's CNI plugins take
//! their ranges from their own config, so it is recorded and reported (`Status` verbose info),
//! not applied; it lives in memory: kubelet sends it again after a runtime restart.

use std::net::IpAddr;
use std::sync::Mutex;

use super::error::RuntimeError;

/// The recorded ranges; empty until kubelet sends one.
#[derive(Debug, Default)]
pub struct PodCidr {
    ranges: Mutex<Vec<String>>,
}

impl PodCidr {
    /// Records `value`: one CIDR or a comma-separated dual-stack pair; empty clears it.
    pub fn set(&self, value: &str) -> Result<(), RuntimeError> {
        let ranges = parse(value)?;
        *self.ranges.lock().expect("pod cidr lock") = ranges;
        Ok(())
    }

    pub fn get(&self) -> Vec<String> {
        self.ranges.lock().expect("pod cidr lock").clone()
    }
}

fn parse(value: &str) -> Result<Vec<String>, RuntimeError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|part| {
            let part = part.trim();
            let bad = || {
                RuntimeError::InvalidArgument(format!("pod CIDR {part:?}: not an address/prefix"))
            };
            let (addr, prefix) = part.split_once('/').ok_or_else(bad)?;
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let prefix: u8 = prefix.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if prefix > max {
                return Err(bad());
            }
            Ok(part.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_single_and_dual_stack_ranges_and_refuses_garbage() {
        let cidr = PodCidr::default();
        assert!(cidr.get().is_empty());
        cidr.set("10.244.1.0/24").unwrap();
        assert_eq!(cidr.get(), ["10.244.1.0/24"]);
        cidr.set("10.244.1.0/24, fd00:10:244:1::/64").unwrap();
        assert_eq!(cidr.get(), ["10.244.1.0/24", "fd00:10:244:1::/64"]);
        for bad in [
            "10.244.1.0",
            "10.244.1.0/33",
            "fd00::/129",
            "nonsense/8",
            "10.0.0.0/x",
        ] {
            let err = cidr.set(bad).unwrap_err();
            assert!(
                matches!(err, RuntimeError::InvalidArgument(_)),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            cidr.get().len(),
            2,
            "a refused update keeps the last good one"
        );
        cidr.set("").unwrap();
        assert!(cidr.get().is_empty());
    }
}
