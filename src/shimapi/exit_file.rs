//! `<bundle>/exit`: a container's exit status as JSON, written atomically (temporary file, fsync,
//! rename, fsync of the directory) when the shim reaps it, so it survives the shim and berthd.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::types::Exit;

/// The exit file of a bundle.
pub fn path(bundle: &Path) -> PathBuf {
    bundle.join("exit")
}

/// Writes `exit` to `<bundle>/exit`, replacing any earlier one atomically.
pub fn write(bundle: &Path, exit: &Exit) -> std::io::Result<()> {
    let tmp = bundle.join(".exit.tmp");
    let body = serde_json::to_vec(exit).map_err(std::io::Error::other)?;
    let mut file = File::create(&tmp)?;
    file.write_all(&body)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path(bundle))?;
    File::open(bundle)?.sync_all()
}

/// Reads `<bundle>/exit`; `Ok(None)` when the container has no recorded exit.
pub fn read(bundle: &Path) -> std::io::Result<Option<Exit>> {
    match std::fs::read(path(bundle)) {
        Ok(body) => serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_exit_reads_back_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let exit = Exit {
            exit_code: 137,
            signal: 9,
            finished_at: 42,
            oom_killed: true,
            pid: 1234,
        };
        write(dir.path(), &exit).unwrap();
        write(dir.path(), &exit).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(exit));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["exit"]);
    }
}
