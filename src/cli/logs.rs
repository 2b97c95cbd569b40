//! `berth logs [-f] [--tail N] CONTAINER`: the message part of the container's CRI log file
//! (`<time> <stream> <P|F> <message>` lines; partial `P` lines are joined to the next `F`).

use std::collections::{HashMap, VecDeque};
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;

use super::args::Output;
use super::inventory::Inventory;
use super::logs_follow::LogFile;
use crate::client::CriClient;
use crate::cri::api;

/// How often a followed log is polled for new lines.
const POLL: Duration = Duration::from_millis(200);
/// How many polls pass between checks that the container still runs.
const POLLS_PER_STATE_CHECK: u32 = 5;

/// One whole message of the log.
#[derive(Debug, PartialEq, Serialize)]
pub struct Entry {
    pub time: String,
    pub stream: String,
    pub message: String,
}

/// Turns CRI log lines into whole messages, joining each stream's partial lines.
#[derive(Default)]
pub struct LineParser {
    partial: HashMap<String, (String, String)>,
}

impl LineParser {
    /// The message `line` completes, if any. A line not in the CRI format is a message of its
    /// own on stdout.
    pub fn push(&mut self, line: &str) -> Option<Entry> {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let mut parts = line.splitn(4, ' ');
        let (Some(time), Some(stream), Some(tags)) = (parts.next(), parts.next(), parts.next())
        else {
            return Some(Entry::raw(line));
        };
        let message = parts.next().unwrap_or("");
        if !matches!(stream, "stdout" | "stderr") {
            return Some(Entry::raw(line));
        }
        let partial = match tags.split(':').next() {
            Some("P") => true,
            Some("F") => false,
            _ => return Some(Entry::raw(line)),
        };
        let slot = self
            .partial
            .entry(stream.to_string())
            .or_insert_with(|| (time.to_string(), String::new()));
        slot.1.push_str(message);
        if partial {
            return None;
        }
        let (time, message) = self.partial.remove(stream).expect("inserted above");
        Some(Entry {
            time,
            stream: stream.to_string(),
            message,
        })
    }

    /// The partial messages left when the log ends: a container's last output without a
    /// newline is a `P` record no `F` follows. Oldest first.
    pub fn finish(&mut self) -> Vec<Entry> {
        let mut left: Vec<Entry> = self
            .partial
            .drain()
            .map(|(stream, (time, message))| Entry {
                time,
                stream,
                message,
            })
            .collect();
        left.sort_by(|a, b| a.time.cmp(&b.time));
        left
    }
}

impl Entry {
    fn raw(line: &str) -> Entry {
        Entry {
            time: String::new(),
            stream: "stdout".into(),
            message: line.to_string(),
        }
    }

    fn print(&self, out: Output) -> anyhow::Result<()> {
        if out == Output::Json {
            writeln!(std::io::stdout(), "{}", serde_json::to_string(self)?)?;
        } else if self.stream == "stderr" {
            writeln!(std::io::stderr(), "{}", self.message)?;
        } else {
            writeln!(std::io::stdout(), "{}", self.message)?;
        }
        Ok(())
    }
}

pub async fn logs(
    client: &CriClient,
    container: &str,
    follow: bool,
    tail: Option<usize>,
    out: Output,
) -> anyhow::Result<()> {
    let inventory = Inventory::list(client).await?;
    let id = inventory.container(container)?.id.clone();
    let (path, _) = status(client, &id).await?;
    let mut file = LogFile::open(&path).with_context(|| format!("open {}", path.display()))?;
    let mut parser = LineParser::default();
    let mut last = VecDeque::new();
    for line in file.read_lines(!follow)? {
        if let Some(entry) = parser.push(&line) {
            match tail {
                Some(n) => {
                    last.push_back(entry);
                    if last.len() > n {
                        last.pop_front();
                    }
                }
                None => entry.print(out)?,
            }
        }
    }
    if !follow {
        last.extend(parser.finish());
    }
    let skip = tail.map_or(0, |n| last.len().saturating_sub(n));
    for entry in last.into_iter().skip(skip) {
        entry.print(out)?;
    }
    if !follow {
        return Ok(());
    }
    let mut polls = 0;
    loop {
        for line in file.read_lines(false)? {
            if let Some(entry) = parser.push(&line) {
                entry.print(out)?;
            }
        }
        std::io::stdout().flush()?;
        polls += 1;
        if polls % POLLS_PER_STATE_CHECK == 0 {
            let (_, running) = status(client, &id).await?;
            if !running && !file.reopen_if_rotated()? {
                // The container is done and its last output has been read.
                for line in file.read_lines(true)? {
                    if let Some(entry) = parser.push(&line) {
                        entry.print(out)?;
                    }
                }
                for entry in parser.finish() {
                    entry.print(out)?;
                }
                return Ok(());
            }
        } else {
            file.reopen_if_rotated()?;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The container's log path and whether it is running.
async fn status(client: &CriClient, id: &str) -> anyhow::Result<(PathBuf, bool)> {
    let status = client
        .runtime
        .clone()
        .container_status(api::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        })
        .await?
        .into_inner()
        .status
        .context("berthd sent no container status")?;
    if status.log_path.is_empty() {
        bail!("container {id} has no log file (its pod has no log_directory)");
    }
    let running = status.state == api::ContainerState::ContainerRunning as i32;
    Ok((PathBuf::from(status.log_path), running))
}

#[cfg(test)]
mod tests {
    use super::{Entry, LineParser};

    fn entry(time: &str, stream: &str, message: &str) -> Option<Entry> {
        Some(Entry {
            time: time.into(),
            stream: stream.into(),
            message: message.into(),
        })
    }

    #[test]
    fn full_lines_give_their_message() {
        let mut p = LineParser::default();
        assert_eq!(
            p.push("2024-01-01T00:00:00.1Z stdout F hello world\n"),
            entry("2024-01-01T00:00:00.1Z", "stdout", "hello world")
        );
        assert_eq!(p.push("t stderr F "), entry("t", "stderr", ""));
    }

    #[test]
    fn partial_lines_join_per_stream() {
        let mut p = LineParser::default();
        assert_eq!(p.push("t1 stdout P abc"), None);
        assert_eq!(p.push("t2 stderr F oops"), entry("t2", "stderr", "oops"));
        assert_eq!(p.push("t3 stdout P def"), None);
        assert_eq!(
            p.push("t4 stdout F ghi"),
            entry("t1", "stdout", "abcdefghi")
        );
    }

    #[test]
    fn output_ending_without_a_newline_is_given_at_the_end() {
        let mut p = LineParser::default();
        assert_eq!(p.push("t1 stdout F one"), entry("t1", "stdout", "one"));
        assert_eq!(p.push("t2 stderr P err-"), None);
        assert_eq!(p.push("t3 stdout P DONE"), None);
        assert_eq!(
            p.finish(),
            [
                entry("t2", "stderr", "err-").unwrap(),
                entry("t3", "stdout", "DONE").unwrap()
            ]
        );
        assert!(p.finish().is_empty());
    }

    #[test]
    fn other_lines_pass_through() {
        let mut p = LineParser::default();
        assert_eq!(
            p.push("not a cri line"),
            entry("", "stdout", "not a cri line")
        );
        assert_eq!(p.push("a b c d"), entry("", "stdout", "a b c d"));
    }
}
