//! The `berth` operator CLI's commands, over berthd's socket (CRI plus berth's admin API).

pub mod images;
pub mod pull;

/// Formats a byte count like docker does (`1.5MB`, decimal units).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + UNITS[unit]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_like_docker() {
        assert_eq!(super::human_bytes(999), "999B");
        assert_eq!(super::human_bytes(1_500_000), "1.5MB");
        assert_eq!(super::human_bytes(52_430_000), "52.43MB");
        assert_eq!(super::human_bytes(2_000_000_000), "2GB");
    }
}
