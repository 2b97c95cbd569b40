//! A log file read line by line as it grows, reopened when it is rotated (renamed away and
//! replaced by a new file at the same path) or truncated.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

pub struct LogFile {
    path: PathBuf,
    file: File,
    /// (device, inode) of the open file.
    identity: (u64, u64),
    position: u64,
    /// Bytes after the last newline read so far.
    pending: Vec<u8>,
}

impl LogFile {
    pub fn open(path: &Path) -> io::Result<LogFile> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            identity: (meta.dev(), meta.ino()),
            position: 0,
            pending: Vec::new(),
        })
    }

    /// The complete lines written since the last call; with `flush`, also a last line that has
    /// no newline yet.
    pub fn read_lines(&mut self, flush: bool) -> io::Result<Vec<String>> {
        let len = self.file.metadata()?.len();
        if len < self.position {
            // Truncated in place: start over.
            self.file.seek(SeekFrom::Start(0))?;
            self.position = 0;
            self.pending.clear();
        }
        let read = self.file.read_to_end(&mut self.pending)?;
        self.position += read as u64;
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(i) = self.pending[start..].iter().position(|b| *b == b'\n') {
            lines.push(String::from_utf8_lossy(&self.pending[start..start + i]).into_owned());
            start += i + 1;
        }
        self.pending.drain(..start);
        if flush && !self.pending.is_empty() {
            lines.push(String::from_utf8_lossy(&self.pending).into_owned());
            self.pending.clear();
        }
        Ok(lines)
    }

    /// Whether the path now names another file; if so, the caller has already read the old one
    /// to its end and reading continues from the start of the new one. A path that is briefly
    /// missing mid-rotation counts as unchanged.
    pub fn reopen_if_rotated(&mut self) -> io::Result<bool> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if (meta.dev(), meta.ino()) == self.identity {
            return Ok(false);
        }
        *self = LogFile::open(&self.path)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::LogFile;

    #[test]
    fn reads_growth_then_follows_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        std::fs::write(&path, "one\ntw").unwrap();
        let mut log = LogFile::open(&path).unwrap();
        assert_eq!(log.read_lines(false).unwrap(), ["one"]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"o\nthree\n").unwrap();
        assert_eq!(log.read_lines(false).unwrap(), ["two", "three"]);
        assert!(!log.reopen_if_rotated().unwrap());

        // Rotation: renamed away, a new file in its place.
        std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
        assert!(
            !log.reopen_if_rotated().unwrap(),
            "missing path is not a rotation yet"
        );
        std::fs::write(&path, "four\n").unwrap();
        assert!(log.reopen_if_rotated().unwrap());
        assert_eq!(log.read_lines(false).unwrap(), ["four"]);

        // Truncation in place.
        std::fs::write(&path, "").unwrap();
        assert!(log.read_lines(false).unwrap().is_empty());
        std::fs::write(&path, "five\nsix").unwrap();
        assert_eq!(log.read_lines(true).unwrap(), ["five", "six"]);
    }
}
