//! Pressure stall information (PSI) of a cgroup v2 directory: `cpu.pressure`,
//! `memory.pressure` and `io.pressure`.
//!
//! Each file has a `some` line and (for memory and io, and for cpu since Linux 5.13) a `full`
//! line: `some avg10=0.12 avg60=0.05 avg300=0.00 total=12345`. Averages are percentages with two
//! decimals, kept here in hundredths so the values stay exact; `total` is microseconds. cgroup v1
//! has no such files: there the pressure is unknown, never zero.

use std::io::ErrorKind;
use std::path::Path;

use super::CgroupError;
use super::fs::Result;

/// One line of a pressure file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PsiLine {
    /// Stall time since the cgroup was created, in microseconds.
    pub total_us: u64,
    /// Share of time stalled over the last 10, 60 and 300 seconds, in hundredths of a percent.
    pub avg10_centi: u64,
    pub avg60_centi: u64,
    pub avg300_centi: u64,
}

/// One pressure file: `full` is absent when the kernel writes no such line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Psi {
    pub some: PsiLine,
    pub full: Option<PsiLine>,
}

/// The three pressure files of one cgroup; a field is `None` when its file does not exist
/// (cgroup v1, or a kernel without PSI) or the kernel refuses to read it (PSI disabled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pressure {
    pub cpu: Option<Psi>,
    pub memory: Option<Psi>,
    pub io: Option<Psi>,
}

/// Reads the pressure files of a v2 cgroup directory.
pub(crate) fn read_dir(dir: &Path) -> Result<Pressure> {
    Ok(Pressure {
        cpu: read_file(&dir.join("cpu.pressure"))?,
        memory: read_file(&dir.join("memory.pressure"))?,
        io: read_file(&dir.join("io.pressure"))?,
    })
}

/// One pressure file; `None` when it is missing or PSI is switched off (`psi=0` makes the read
/// fail with EOPNOTSUPP).
fn read_file(path: &Path) -> Result<Option<Psi>> {
    let content = match std::fs::read_to_string(path) {
        Ok(content) => content,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(None),
        Err(source) => {
            return Err(CgroupError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse(&content).map(Some).ok_or_else(|| CgroupError::Parse {
        path: path.to_path_buf(),
        content: content.trim().to_string(),
    })
}

/// The `some` line is required, `full` optional; any malformed line makes the file unreadable.
fn parse(content: &str) -> Option<Psi> {
    let mut some = None;
    let mut full = None;
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let (kind, rest) = line.split_once(' ')?;
        let parsed = parse_line(rest)?;
        match kind {
            "some" => some = Some(parsed),
            "full" => full = Some(parsed),
            _ => return None,
        }
    }
    Some(Psi { some: some?, full })
}

fn parse_line(rest: &str) -> Option<PsiLine> {
    let mut line = PsiLine::default();
    let mut seen = 0u8;
    for field in rest.split_whitespace() {
        let (key, value) = field.split_once('=')?;
        let (slot, bit) = match key {
            "avg10" => (&mut line.avg10_centi, 1),
            "avg60" => (&mut line.avg60_centi, 2),
            "avg300" => (&mut line.avg300_centi, 4),
            "total" => (&mut line.total_us, 8),
            _ => continue,
        };
        *slot = if key == "total" {
            value.parse().ok()?
        } else {
            centi(value)?
        };
        seen |= bit;
    }
    (seen == 15).then_some(line)
}

/// `"12.34"` as 1234; at most two decimals, as the kernel prints them.
fn centi(value: &str) -> Option<u64> {
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 2 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}

impl PsiLine {
    /// An average in percent, as CRI carries it.
    pub fn percent(centi: u64) -> f64 {
        centi as f64 / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMORY: &str = "some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\n\
                          full avg10=0.75 avg60=0.10 avg300=0.00 total=6543\n";

    #[test]
    fn both_lines_parse_exactly() {
        let psi = parse(MEMORY).unwrap();
        assert_eq!(
            psi.some,
            PsiLine {
                total_us: 123456,
                avg10_centi: 150,
                avg60_centi: 25,
                avg300_centi: 0
            }
        );
        let full = psi.full.unwrap();
        assert_eq!(
            (full.total_us, full.avg10_centi, full.avg60_centi),
            (6543, 75, 10)
        );
        assert_eq!(PsiLine::percent(150), 1.5);
    }

    #[test]
    fn a_file_without_full_has_none() {
        let psi = parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n").unwrap();
        assert_eq!(psi.some.total_us, 7);
        assert_eq!(psi.full, None);
    }

    #[test]
    fn malformed_content_is_rejected() {
        for bad in [
            "",
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=1",
            "some avg10=0.00 avg60=0.00 total=1",
            "some avg10=x avg60=0.00 avg300=0.00 total=1",
            "some avg10=0.001 avg60=0.00 avg300=0.00 total=1",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=-1",
            "half avg10=0.00 avg60=0.00 avg300=0.00 total=1",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_directory_reads_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.pressure"), MEMORY).unwrap();
        std::fs::write(dir.path().join("io.pressure"), "garbage\n").unwrap();
        let err = read_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("io.pressure"), "{err}");
        std::fs::remove_file(dir.path().join("io.pressure")).unwrap();
        let p = read_dir(dir.path()).unwrap();
        assert_eq!(p.cpu, None, "no cpu.pressure: unknown, not zero");
        assert_eq!(p.io, None);
        assert_eq!(p.memory.unwrap().some.total_us, 123456);
    }
}
