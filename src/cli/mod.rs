//! The `berth` operator CLI's commands, over berthd's socket (CRI plus berth's admin API).

pub mod args;
pub mod attach;
pub mod build;
pub mod completion;
pub mod doctor;
pub mod events;
pub mod images;
pub mod info;
pub mod inventory;
pub mod logs;
pub mod logs_follow;
pub mod pods;
pub mod ps;
pub mod pull;
pub mod push;
pub mod stats;
pub mod transfer;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::client::CriClient;
use args::{Args, Command, DEFAULT_SOCKET};

/// Runs one parsed command line.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let out = args.output;
    let socket = args.socket;
    match args.command {
        Command::Completion { shell } => {
            completion::print(shell);
            return Ok(());
        }
        Command::Doctor { config } => return doctor::doctor(config, socket, out).await,
        _ => {}
    }
    let socket = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let client = connect(&socket).await?;
    match args.command {
        Command::Version => info::version(&client).await,
        Command::Info => info::info(&client).await,
        Command::Pull { image } => pull::pull(&client, &image).await,
        Command::Push {
            image,
            dest,
            username,
        } => {
            let auth = push::PushAuth {
                password: username
                    .as_ref()
                    .and_then(|_| std::env::var("BERTH_REGISTRY_PASSWORD").ok()),
                username,
            };
            push::push(&client, &image, dest.as_deref(), auth).await
        }
        Command::Build {
            context,
            file,
            tags,
            target,
            build_args,
            no_cache,
            network,
        } => {
            let args = build::BuildArgs {
                context,
                file,
                tags,
                target,
                build_args,
                no_cache,
                network,
            };
            build::build(&client, args).await
        }
        Command::Tag { source, target } => push::tag(&client, &source, &target).await,
        Command::Builder {
            command: args::BuilderCommand::Prune,
        } => build::prune(&client).await,
        Command::Images => images::images(&client).await,
        Command::Import { file } => transfer::import(&client, &file, out).await,
        Command::Export {
            file,
            images,
            format,
        } => transfer::export(&client, &file, &images, format).await,
        Command::Rmi { images } => images::remove(&client, &images).await,
        Command::History { image } => images::history(&client, &image).await,
        Command::Inspect { image } => images::inspect(&client, &image).await,
        Command::Ps { all, pod } => ps::ps(&client, all, pod.as_deref(), out).await,
        Command::Pods => pods::pods(&client, out).await,
        Command::Logs {
            container,
            follow,
            tail,
        } => logs::logs(&client, &container, follow, tail, out).await,
        Command::Events => events::events(&client, out).await,
        Command::Exec {
            interactive,
            tty,
            container,
            command,
        } => {
            let streams = attach::Streams {
                stdin: interactive,
                tty,
            };
            attach::exec(&client, &container, command, streams).await
        }
        Command::Attach {
            interactive,
            tty,
            container,
        } => {
            let streams = attach::Streams {
                stdin: interactive,
                tty,
            };
            attach::attach(&client, &container, streams).await
        }
        Command::Stats { no_stream } => stats::stats(&client, no_stream, out).await,
        Command::Completion { .. } | Command::Doctor { .. } => unreachable!("handled above"),
    }
}

/// Connects to berthd, naming the socket when that fails.
pub async fn connect(socket: &Path) -> anyhow::Result<CriClient> {
    crate::client::connect(socket)
        .await
        .with_context(|| format!("connect to {}", socket.display()))
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write as _;
    writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(value)?
    )?;
    Ok(())
}

/// Whether `error` is stdout's reader going away (`berth logs -f | head`): not a failure.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A CRI timestamp (nanoseconds since the epoch) as RFC 3339 in UTC, to the second.
pub fn rfc3339(nanos: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

/// How long ago a CRI timestamp was, coarsely like docker (`5 seconds ago`, `3 hours ago`).
pub fn ago(nanos: i64, now: SystemTime) -> String {
    let then = UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
    let secs = now.duration_since(then).unwrap_or_default().as_secs();
    let (n, unit) = match secs {
        0..60 => (secs, "second"),
        60..3600 => (secs / 60, "minute"),
        3600..86400 => (secs / 3600, "hour"),
        _ => (secs / 86400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// The first 13 characters of an id, as crictl shows them.
pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(13)]
}

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
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn human_bytes_like_docker() {
        assert_eq!(super::human_bytes(999), "999B");
        assert_eq!(super::human_bytes(1_500_000), "1.5MB");
        assert_eq!(super::human_bytes(52_430_000), "52.43MB");
        assert_eq!(super::human_bytes(2_000_000_000), "2GB");
    }

    #[test]
    fn ago_picks_the_largest_unit() {
        let now = UNIX_EPOCH + Duration::from_secs(100_000);
        let at = |secs_before: i64| (100_000 - secs_before) * 1_000_000_000;
        assert_eq!(super::ago(at(1), now), "1 second ago");
        assert_eq!(super::ago(at(59), now), "59 seconds ago");
        assert_eq!(super::ago(at(120), now), "2 minutes ago");
        assert_eq!(super::ago(at(7200), now), "2 hours ago");
        assert_eq!(super::ago(at(90_000), now), "1 day ago");
    }

    #[test]
    fn rfc3339_is_utc_seconds() {
        assert_eq!(super::rfc3339(1_000_000_000_500), "1970-01-01T00:16:40Z");
    }
}
