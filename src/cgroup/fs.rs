//! Reading and writing cgroupfs control files, with errors that name the file.
//!
//! Writes never create a file: the kernel decides which control files exist, and a write to a
//! missing one (a controller that is not enabled) must fail rather than leave a stray file.

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::Path;

use super::CgroupError;

pub(crate) type Result<T> = std::result::Result<T, CgroupError>;

/// The whole content of a control file.
pub(crate) fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The content of a control file, or `None` when the file does not exist.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A control file holding one unsigned number (`memory.current`, `cpuacct.usage`).
pub(crate) fn read_u64(path: &Path) -> Result<u64> {
    let content = read(path)?;
    parse_u64(path, content.trim())
}

/// Like [`read_u64`], but `None` when the file does not exist.
pub(crate) fn read_u64_opt(path: &Path) -> Result<Option<u64>> {
    match read_opt(path)? {
        Some(content) => parse_u64(path, content.trim()).map(Some),
        None => Ok(None),
    }
}

fn parse_u64(path: &Path, s: &str) -> Result<u64> {
    s.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: s.to_string(),
    })
}

/// A flat keyed file (`memory.stat`, `cpu.stat`, `memory.events`, `memory.oom_control`):
/// one `key value` pair per line. Lines whose value is not a number are an error.
pub(crate) fn read_keyed(path: &Path) -> Result<BTreeMap<String, u64>> {
    let content = read(path)?;
    let mut map = BTreeMap::new();
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CgroupError::Parse {
                path: path.to_path_buf(),
                content: line.to_string(),
            });
        };
        map.insert(key.to_string(), parse_u64(path, value)?);
    }
    Ok(map)
}

/// Like [`read_keyed`], but `None` when the file does not exist.
pub(crate) fn read_keyed_opt(path: &Path) -> Result<Option<BTreeMap<String, u64>>> {
    if path.exists() {
        read_keyed(path).map(Some)
    } else {
        Ok(None)
    }
}

/// The process ids listed in a `cgroup.procs` (or `tasks`) file.
pub(crate) fn read_pids(path: &Path) -> Result<Vec<i32>> {
    let content = read(path)?;
    content
        .split_whitespace()
        .map(|s| {
            s.parse().map_err(|_| CgroupError::Parse {
                path: path.to_path_buf(),
                content: s.to_string(),
            })
        })
        .collect()
}

/// Writes `value` to an existing control file in a single `write(2)`, as cgroupfs requires.
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    let err = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(err)?;
    file.write_all(value.as_bytes()).map_err(err)
}

/// The OS error code of a failed write, for callers that retry on a specific errno.
pub(crate) fn write_errno(err: &CgroupError) -> Option<i32> {
    match err {
        CgroupError::Write { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_parse_and_reject_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("memory.stat");
        fs::write(&p, "anon 4096\ninactive_file 12\n\n").unwrap();
        let map = read_keyed(&p).unwrap();
        assert_eq!(map["anon"], 4096);
        assert_eq!(map["inactive_file"], 12);

        fs::write(&p, "anon lots\n").unwrap();
        let err = read_keyed(&p).unwrap_err();
        assert!(matches!(err, CgroupError::Parse { .. }), "{err}");
        assert!(
            read_keyed_opt(&dir.path().join("absent"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn write_refuses_to_create_a_missing_control_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("memory.max");
        let err = write(&p, "100").unwrap_err();
        assert!(err.to_string().contains("memory.max"), "{err}");
        assert!(!p.exists());
        assert_eq!(write_errno(&err), Some(libc::ENOENT));
    }

    #[test]
    fn pids_parse_one_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cgroup.procs");
        fs::write(&p, "12\n345\n").unwrap();
        assert_eq!(read_pids(&p).unwrap(), vec![12, 345]);
        fs::write(&p, "").unwrap();
        assert!(read_pids(&p).unwrap().is_empty());
    }
}
