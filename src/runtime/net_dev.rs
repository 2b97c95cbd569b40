//! A network namespace's interface counters, from `/proc/<pid>/net/dev` of a process in it.

/// The counters of one interface, in `/proc/net/dev`'s column order: receive bytes, packets,
/// errs, drop, fifo, frame, compressed, multicast, then transmit bytes, packets, errs, drop,
/// fifo, colls, carrier, compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub columns: Vec<u64>,
}

impl Interface {
    pub fn column(&self, index: usize) -> u64 {
        self.columns.get(index).copied().unwrap_or(0)
    }
    pub fn rx_bytes(&self) -> u64 {
        self.column(0)
    }
    pub fn rx_errors(&self) -> u64 {
        self.column(2)
    }
    pub fn tx_bytes(&self) -> u64 {
        self.column(8)
    }
    pub fn tx_errors(&self) -> u64 {
        self.column(10)
    }
}

/// The interfaces of the network namespace `pid` lives in; empty when it is gone.
pub fn interfaces_of(pid: u32) -> Vec<Interface> {
    std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
        .map(|dev| parse(&dev))
        .unwrap_or_default()
}

/// `/proc/net/dev`: two header lines, then `iface: rx(8 columns) tx(8 columns)`.
pub fn parse(dev: &str) -> Vec<Interface> {
    dev.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            Some(Interface {
                name: name.trim().to_string(),
                columns: counters
                    .split_whitespace()
                    .map(|v| v.parse().unwrap_or(0))
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_give_each_interfaces_counters() {
        let dev = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
 lo:     100       2    0    0    0     0          0         0      300       4    5    6    0     0       0          0\n  \
eth0: 7000 50 1 0 0 0 0 0 9000 60 2 0 0 0 0 0\n";
        let ifs = parse(dev);
        assert_eq!(ifs.len(), 2);
        assert_eq!(ifs[0].name, "lo");
        assert_eq!((ifs[0].rx_bytes(), ifs[0].tx_bytes()), (100, 300));
        assert_eq!(ifs[0].tx_errors(), 5);
        assert_eq!(ifs[1].name, "eth0");
        assert_eq!(
            (
                ifs[1].rx_bytes(),
                ifs[1].rx_errors(),
                ifs[1].tx_bytes(),
                ifs[1].tx_errors()
            ),
            (7000, 1, 9000, 2)
        );
    }
}
