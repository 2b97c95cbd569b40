//! Per-process settings from `spec.process` (shared by create and exec): rlimits, oom_score_adj,
//! working directory, environment and the final `execve` with `PATH` lookup.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::resource::{Resource, setrlimit};
use nix::unistd::{AccessFlags, access, execve};
use oci_spec::runtime::{PosixRlimitType, Process};

use super::error::{Context, StepError};
use super::protocol::{Channel, Level};

pub(crate) use super::caps::set_credentials;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn resource(kind: PosixRlimitType) -> Resource {
    match kind {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// Applies `process.rlimits`.
pub(crate) fn set_rlimits(process: &Process) -> Result<(), StepError> {
    for limit in process.rlimits().as_deref().unwrap_or_default() {
        setrlimit(resource(limit.typ()), limit.soft(), limit.hard()).ctx(|| {
            format!(
                "set rlimit {:?} to soft {} hard {}",
                limit.typ(),
                limit.soft(),
                limit.hard()
            )
        })?;
    }
    Ok(())
}

/// Writes `process.oomScoreAdj`. Lowering the score needs CAP_SYS_RESOURCE; without it a lower
/// value is clamped to the current one (and logged) instead of failing the container.
pub(crate) fn set_oom_score_adj(process: &Process, channel: &Channel) -> Result<(), StepError> {
    let Some(wanted) = process.oom_score_adj() else {
        return Ok(());
    };
    const PATH: &str = "/proc/self/oom_score_adj";
    match std::fs::write(PATH, wanted.to_string()) {
        Ok(()) => Ok(()),
        Err(e)
            if e.raw_os_error() == Some(libc::EPERM) || e.raw_os_error() == Some(libc::EACCES) =>
        {
            let current = std::fs::read_to_string(PATH).ctx(|| format!("read {PATH}"))?;
            let current: i32 = current.trim().parse().ctx(|| format!("parse {PATH}"))?;
            if wanted >= current {
                return Err(StepError::new(format!("set oom_score_adj {wanted}"), e));
            }
            channel.log(
                Level::Debug,
                format!("oom_score_adj {wanted} needs CAP_SYS_RESOURCE; keeping {current}"),
            );
            Ok(())
        }
        Err(e) => Err(StepError::new(format!("set oom_score_adj {wanted}"), e)),
    }
}

/// Creates `process.cwd` if missing (as runc does) and makes it the working directory.
pub(crate) fn enter_cwd(process: &Process) -> Result<(), StepError> {
    let cwd = process.cwd();
    if !cwd.is_absolute() {
        return Err(StepError::new(
            format!("cwd {}", cwd.display()),
            "must be absolute",
        ));
    }
    std::fs::create_dir_all(cwd).ctx(|| format!("create cwd {}", cwd.display()))?;
    std::env::set_current_dir(cwd).ctx(|| format!("chdir to cwd {}", cwd.display()))
}

/// The value of `name` in `env` (`NAME=value` entries).
fn env_value<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter()
        .filter_map(|e| e.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Finds `program` like a shell would: as given when it has a `/`, else in each `PATH` entry.
pub(crate) fn look_up(program: &str, path: &str) -> Result<PathBuf, StepError> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(program);
        let is_file = std::fs::metadata(&candidate).is_ok_and(|m| m.is_file());
        if is_file && access(&candidate, AccessFlags::X_OK).is_ok() {
            return Ok(candidate);
        }
    }
    Err(StepError::new(
        format!("exec {program:?}"),
        "executable file not found in $PATH",
    ))
}

/// `HOME` for `uid` from the container's `/etc/passwd`, `/` when absent.
fn home_of(uid: u32) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() >= 6 && fields[2].parse() == Ok(uid)).then(|| fields[5].to_string())
        })
        .next()
        .unwrap_or_else(|| "/".to_string())
}

fn cstring(s: impl AsRef<[u8]>, what: &str) -> Result<CString, StepError> {
    CString::new(s.as_ref()).ctx(|| format!("{what} contains a NUL byte"))
}

/// Executes `process.args` with `process.env` (adding `HOME` when missing), or with `exact_env`
/// when the spec carried environment entries that are not UTF-8 (`spec::raw_env`). Returns only
/// on failure, with the error to report.
pub(crate) fn exec(process: &Process, exact_env: Option<Vec<Vec<u8>>>) -> StepError {
    match try_exec(process, exact_env) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn try_exec(process: &Process, exact_env: Option<Vec<Vec<u8>>>) -> Result<Infallible, StepError> {
    let args = process.args().as_deref().unwrap_or_default();
    let program = args
        .first()
        .ok_or_else(|| StepError::new("exec", "process.args is empty"))?;
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    if env_value(&env, "HOME").is_none() {
        env.push(format!("HOME={}", home_of(process.user().uid())));
    }
    let path = env_value(&env, "PATH").unwrap_or(DEFAULT_PATH);
    let binary = look_up(program, path)?;
    let env: Vec<Vec<u8>> = match exact_env {
        Some(mut exact) => {
            // HOME as added above (process.env and the exact list hold the same keys).
            let has_home = exact.iter().any(|e| e.starts_with(b"HOME="));
            if !has_home && let Some(home) = env.iter().find(|e| e.starts_with("HOME=")) {
                exact.push(home.as_bytes().to_vec());
            }
            exact
        }
        None => env.into_iter().map(String::into_bytes).collect(),
    };
    let c_binary = cstring(binary.as_os_str().as_bytes(), "program path")?;
    let c_args: Vec<CString> = args
        .iter()
        .map(|a| cstring(a, "argument"))
        .collect::<Result<_, _>>()?;
    let c_env: Vec<CString> = env
        .iter()
        .map(|e| cstring(e, "environment entry"))
        .collect::<Result<_, _>>()?;
    let err = match execve(&c_binary, &c_args, &c_env) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    let cause = match err {
        Errno::ENOENT => "no such file or directory".to_string(),
        e => e.to_string(),
    };
    Err(StepError::new(format!("exec {}", binary.display()), cause))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_up_searches_path_in_order() {
        let found = look_up("sh", "/nonexistent:/bin:/usr/bin").unwrap();
        assert_eq!(found, PathBuf::from("/bin/sh"));
        assert_eq!(look_up("./x", "").unwrap(), PathBuf::from("./x"));
        let err = look_up("no-such-program-berth", "/bin")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no-such-program-berth"), "{err}");
        assert!(err.contains("executable file not found"), "{err}");
    }

    #[test]
    fn env_value_takes_the_first_match() {
        let env = vec![
            "A=1".to_string(),
            "PATH=/x".to_string(),
            "PATH=/y".to_string(),
        ];
        assert_eq!(env_value(&env, "PATH"), Some("/x"));
        assert_eq!(env_value(&env, "HOME"), None);
    }
}
