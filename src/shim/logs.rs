//! Container logs in the CRI format kubelet reads:
//! `<RFC 3339 timestamp, nanoseconds> <stdout|stderr> <F|P> <text>\n`, one record per line of
//! output. A line longer than [`MAX_LINE`] is written as `P` (partial) records of that size and a
//! final `F` record; text the stream ends with, without a newline, is a last `P` record. The file is opened in append mode and reopened on request after kubelet
//! rotated (renamed) it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// The longest text of one log record; longer lines are split.
pub(crate) const MAX_LINE: usize = 16 * 1024;

/// Which stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Splits a byte stream into log records: complete lines (without the newline) and, for lines
/// longer than [`MAX_LINE`], partial chunks first.
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    pending: Vec<u8>,
}

impl Splitter {
    /// Feeds `data`; calls `emit(text, partial)` for every record it completes.
    pub fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        while let Some(newline) = data.iter().position(|&b| b == b'\n') {
            let (line, rest) = (&data[..newline], &data[newline + 1..]);
            if self.pending.is_empty() {
                let mut line = line;
                while line.len() > MAX_LINE {
                    emit(&line[..MAX_LINE], true);
                    line = &line[MAX_LINE..];
                }
                emit(line, false);
            } else {
                self.pending.extend_from_slice(line);
                self.flush_partials(emit);
                emit(&self.pending, false);
                self.pending.clear();
            }
            data = rest;
        }
        self.pending.extend_from_slice(data);
        self.flush_partials(emit);
        if self.pending.is_empty() {
            // Give back a large buffer once a long line is done with.
            self.pending = Vec::new();
        }
    }

    /// Emits the end of the stream: unterminated text is a last, partial record (as containerd
    /// writes it), so kubelet reads it back without a newline that was never written.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            emit(&self.pending, true);
        }
        self.pending = Vec::new();
    }

    /// Writes out full chunks while more than one chunk is pending (a line of exactly
    /// `MAX_LINE` bytes stays whole until its newline shows whether it goes on).
    fn flush_partials(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        if self.pending.len() <= MAX_LINE {
            return;
        }
        let mut start = 0;
        while self.pending.len() - start > MAX_LINE {
            emit(&self.pending[start..start + MAX_LINE], true);
            start += MAX_LINE;
        }
        self.pending.drain(..start);
    }
}

/// One container's log file (or none: output discarded), shared by its stdout and stderr
/// readers and reopened by `ReopenLog`.
#[derive(Debug)]
pub(crate) struct LogSink {
    path: Option<PathBuf>,
    file: Mutex<Option<File>>,
    errors: Mutex<RateLimit>,
}

impl LogSink {
    /// Opens (creates, appends to) `path`, creating its parent directories; `None` discards.
    pub fn open(path: Option<&Path>) -> std::io::Result<LogSink> {
        let file = path.map(open_append).transpose()?;
        Ok(LogSink {
            path: path.map(Path::to_path_buf),
            file: Mutex::new(file),
            errors: Mutex::new(RateLimit::new(Duration::from_secs(30))),
        })
    }

    /// The log file, if output is kept.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Opens `path` again (a new file after kubelet renamed the old one), then closes the old
    /// file. When the open fails the old file is kept, as containerd does: output still goes
    /// somewhere kubelet can find it.
    pub fn reopen(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let new = open_append(path)?;
        *lock(&self.file) = Some(new);
        Ok(())
    }

    /// Appends one record. A failed write is reported to the shim's log, rate-limited: the
    /// container controls how often this happens.
    pub fn write(&self, container: &str, stream: Stream, text: &[u8], partial: bool) {
        let mut file = lock(&self.file);
        let Some(file) = file.as_mut() else {
            return;
        };
        let record = format_record(SystemTime::now(), stream, text, partial);
        let Err(e) = file.write_all(&record) else {
            return;
        };
        if let Some(suppressed) = lock(&self.errors).allow(Instant::now()) {
            tracing::warn!(
                container_id = container,
                suppressed,
                "write container log {}: {e}",
                self.path.as_deref().unwrap_or(Path::new("")).display()
            );
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // 0640, as containerd's CRI plugin: root (kubelet) reads logs, other users do not.
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// One record: `2024-05-01T10:00:00.123456789Z stdout F hello\n`.
pub(crate) fn format_record(at: SystemTime, stream: Stream, text: &[u8], partial: bool) -> Vec<u8> {
    let mut record = Vec::with_capacity(text.len() + 48);
    let _ = write!(
        record,
        "{} {} {} ",
        humantime::format_rfc3339_nanos(at),
        stream.tag(),
        if partial { "P" } else { "F" }
    );
    record.extend_from_slice(text);
    record.push(b'\n');
    record
}

/// Lets one message through per interval and counts the ones it held back.
#[derive(Debug)]
pub(crate) struct RateLimit {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    pub fn new(interval: Duration) -> RateLimit {
        RateLimit {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(number of messages suppressed since the last one)` when a message may be logged now.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(usize, bool, Vec<u8>)> {
        let mut out = Vec::new();
        let mut s = Splitter::default();
        let mut emit = |t: &[u8], p: bool| out.push((t.len(), p, t.to_vec()));
        for c in chunks {
            s.push(c, &mut emit);
        }
        s.finish(&mut emit);
        out
    }

    #[test]
    fn lines_are_split_on_newlines_across_chunks() {
        // Text the stream ends with, no newline after it, is partial: kubelet then adds no
        // newline of its own (a FallbackToLogsOnError termination message stays "DONE").
        let out = split(&[b"hel", b"lo\nwor", b"ld\n\nlast"]);
        let texts: Vec<(&[u8], bool)> = out.iter().map(|(_, p, t)| (t.as_slice(), *p)).collect();
        assert_eq!(
            texts,
            [
                (&b"hello"[..], false),
                (b"world", false),
                (b"", false),
                (b"last", true)
            ]
        );
    }

    #[test]
    fn long_lines_become_partial_chunks_then_a_full_one() {
        let line = vec![b'x'; 40 * 1024];
        let mut data = line.clone();
        data.push(b'\n');
        for chunks in [vec![&data[..]], data.chunks(1000).collect::<Vec<_>>()] {
            let out = split(&chunks);
            let shape: Vec<(usize, bool)> = out.iter().map(|(n, p, _)| (*n, *p)).collect();
            assert_eq!(
                shape,
                [(MAX_LINE, true), (MAX_LINE, true), (8 * 1024, false)]
            );
        }
    }

    #[test]
    fn a_line_of_exactly_the_limit_stays_whole() {
        let mut data = vec![b'y'; MAX_LINE];
        data.push(b'\n');
        let out = split(&[&data[..MAX_LINE], &data[MAX_LINE..]]);
        let shape: Vec<(usize, bool)> = out.iter().map(|(n, p, _)| (*n, *p)).collect();
        assert_eq!(shape, [(MAX_LINE, false)]);
    }

    #[test]
    fn record_format_is_cri() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let rec = format_record(at, Stream::Stderr, b"oops", true);
        assert_eq!(
            String::from_utf8(rec).unwrap(),
            "2023-11-14T22:13:20.000000005Z stderr P oops\n"
        );
    }

    #[test]
    fn reopen_writes_to_a_new_file_after_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/0.log");
        let sink = LogSink::open(Some(&path)).unwrap();
        sink.write("c", Stream::Stdout, b"one", false);
        std::fs::rename(&path, dir.path().join("rotated")).unwrap();
        sink.write("c", Stream::Stdout, b"two", false);
        sink.reopen().unwrap();
        sink.write("c", Stream::Stdout, b"three", false);
        let old = std::fs::read_to_string(dir.path().join("rotated")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(old.ends_with(" stdout F two\n") && old.contains(" stdout F one\n"));
        assert!(new.ends_with(" stdout F three\n") && new.lines().count() == 1);
    }

    /// As containerd: a reopen that fails (here the new path is a directory) keeps the old file,
    /// so the container's output is not dropped until the next successful reopen.
    #[test]
    fn a_failed_reopen_keeps_writing_to_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let sink = LogSink::open(Some(&path)).unwrap();
        std::fs::rename(&path, dir.path().join("rotated")).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(sink.reopen().is_err(), "reopening onto a directory");
        sink.write("c", Stream::Stdout, b"kept", false);
        let old = std::fs::read_to_string(dir.path().join("rotated")).unwrap();
        assert!(old.ends_with(" stdout F kept\n"), "{old:?}");
    }

    #[test]
    fn rate_limit_counts_what_it_holds_back() {
        let mut rl = RateLimit::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(rl.allow(t0), Some(0));
        assert_eq!(rl.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(rl.allow(t0 + Duration::from_secs(2)), None);
        assert_eq!(rl.allow(t0 + Duration::from_secs(11)), Some(2));
    }
}
