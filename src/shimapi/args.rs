//! The `berth-shim serve` command line: built by the client, parsed by the binary. Keeping both
//! sides here means the flag names cannot drift apart.

use std::ffi::OsString;
use std::path::PathBuf;

use super::types::ShimOptions;
use crate::spec::{IdMap, UserNamespaceMaps};

/// `berth-shim` (the hidden `init` and `pause` subcommands are dispatched before this parser).
#[derive(Debug, clap::Parser)]
#[command(
    name = "berth-shim",
    version,
    about = "berth's per-pod shim (started by berthd)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands a user may see.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Detach, pin the pod's namespaces and serve the shim protocol on `<dir>/shim.sock`.
    Serve(ServeArgs),
}

/// The flags of `berth-shim serve`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ServeArgs {
    /// The pod sandbox id (for the shim's own log lines).
    #[arg(long)]
    pub id: String,
    /// The pod directory: shim.sock, shim.pid, shim.log and ns/ live here.
    #[arg(long)]
    pub dir: PathBuf,
    /// Create and pin a network namespace.
    #[arg(long)]
    pub net: bool,
    /// Create and pin an IPC namespace.
    #[arg(long)]
    pub ipc: bool,
    /// Create and pin a UTS namespace.
    #[arg(long)]
    pub uts: bool,
    /// Create and pin a pod-shared PID namespace with a pause process as its init.
    #[arg(long)]
    pub pid: bool,
    /// The hostname of the new UTS namespace.
    #[arg(long, requires = "uts")]
    pub hostname: Option<String>,
    /// The uid mapping of a new pod user namespace, `container:host:size`.
    #[arg(long, requires = "gid_map", value_parser = IdMap::parse_flag)]
    pub uid_map: Option<IdMap>,
    /// The gid mapping of a new pod user namespace, `container:host:size`.
    #[arg(long, requires = "uid_map", value_parser = IdMap::parse_flag)]
    pub gid_map: Option<IdMap>,
}

impl ServeArgs {
    /// The flags for a pod.
    pub fn new(id: &str, dir: PathBuf, opts: &ShimOptions) -> ServeArgs {
        ServeArgs {
            id: id.to_string(),
            dir,
            net: opts.net,
            ipc: opts.ipc,
            uts: opts.uts,
            pid: opts.pid,
            hostname: opts.hostname.clone().filter(|_| opts.uts),
            uid_map: opts.userns.map(|u| u.uids),
            gid_map: opts.userns.map(|u| u.gids),
        }
    }

    /// The namespace options these flags ask for.
    pub fn options(&self) -> ShimOptions {
        ShimOptions {
            net: self.net,
            ipc: self.ipc,
            uts: self.uts,
            pid: self.pid,
            hostname: self.hostname.clone(),
            userns: self
                .uid_map
                .zip(self.gid_map)
                .map(|(uids, gids)| UserNamespaceMaps { uids, gids }),
        }
    }

    /// The command line after the binary name: `serve --id ... --dir ... [--net] ...`.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "serve".into(),
            "--id".into(),
            self.id.clone().into(),
            "--dir".into(),
            self.dir.clone().into(),
        ];
        for (on, flag) in [
            (self.net, "--net"),
            (self.ipc, "--ipc"),
            (self.uts, "--uts"),
            (self.pid, "--pid"),
        ] {
            if on {
                args.push(flag.into());
            }
        }
        if let Some(name) = &self.hostname {
            args.push("--hostname".into());
            args.push(name.into());
        }
        for (flag, map) in [("--uid-map", self.uid_map), ("--gid-map", self.gid_map)] {
            if let Some(map) = map {
                args.push(flag.into());
                args.push(map.to_flag().into());
            }
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn built_arguments_parse_back() {
        let opts = ShimOptions {
            net: true,
            ipc: false,
            uts: true,
            pid: true,
            hostname: Some("web-0".into()),
            userns: Some(UserNamespaceMaps {
                uids: IdMap {
                    container: 0,
                    host: 100000,
                    size: 65536,
                },
                gids: IdMap {
                    container: 0,
                    host: 200000,
                    size: 1,
                },
            }),
        };
        let args = ServeArgs::new("pod1", PathBuf::from("/run/berth/pods/pod1"), &opts);
        let argv = std::iter::once(OsString::from("berth-shim")).chain(args.to_args());
        let Command::Serve(parsed) = Cli::try_parse_from(argv).unwrap().command;
        assert_eq!(parsed, args);
        assert_eq!(parsed.options(), opts);
    }

    #[test]
    fn hostname_needs_uts() {
        let argv = [
            "berth-shim",
            "serve",
            "--id",
            "p",
            "--dir",
            "/x",
            "--hostname",
            "h",
        ];
        assert!(Cli::try_parse_from(argv).is_err());
        let opts = ShimOptions {
            hostname: Some("h".into()),
            ..ShimOptions::default()
        };
        assert_eq!(ServeArgs::new("p", "/x".into(), &opts).hostname, None);
    }
}
