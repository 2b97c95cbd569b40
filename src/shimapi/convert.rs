//! Translations between the shim's domain types and the generated protocol messages, used by
//! the service (shim side) and the client (daemon side).

use std::path::PathBuf;

use super::proto;
use super::types::{
    ContainerState, ContainerStatus, CreateContainer, ExecOutput, Exit, ExitEvent, ShimInfo,
    StreamInput, StreamOutput, StreamStart, TermSize,
};

impl From<&ExitEvent> for proto::ExitEvent {
    fn from(e: &ExitEvent) -> proto::ExitEvent {
        proto::ExitEvent {
            id: e.id.clone(),
            pid: e.exit.pid,
            exit_code: e.exit.exit_code,
            signal: e.exit.signal,
            finished_at: e.exit.finished_at,
            oom_killed: e.exit.oom_killed,
        }
    }
}

impl From<proto::ExitEvent> for ExitEvent {
    fn from(e: proto::ExitEvent) -> ExitEvent {
        ExitEvent {
            id: e.id,
            exit: Exit {
                exit_code: e.exit_code,
                signal: e.signal,
                finished_at: e.finished_at,
                oom_killed: e.oom_killed,
                pid: e.pid,
            },
        }
    }
}

impl From<&ContainerState> for proto::ContainerState {
    fn from(s: &ContainerState) -> proto::ContainerState {
        let status = match s.status {
            ContainerStatus::Created => proto::ContainerStatus::Created,
            ContainerStatus::Running => proto::ContainerStatus::Running,
            ContainerStatus::Exited => proto::ContainerStatus::Exited,
        };
        proto::ContainerState {
            id: s.id.clone(),
            pid: s.pid,
            status: status.into(),
            started_at: s.started_at,
            exit: s.exit.map(|exit| {
                (&ExitEvent {
                    id: s.id.clone(),
                    exit,
                })
                    .into()
            }),
        }
    }
}

impl From<proto::ContainerState> for ContainerState {
    fn from(s: proto::ContainerState) -> ContainerState {
        let status = match s.status() {
            proto::ContainerStatus::Created => ContainerStatus::Created,
            proto::ContainerStatus::Running => ContainerStatus::Running,
            proto::ContainerStatus::Exited => ContainerStatus::Exited,
        };
        ContainerState {
            id: s.id,
            pid: s.pid,
            status,
            started_at: s.started_at,
            exit: s.exit.map(|e| ExitEvent::from(e).exit),
        }
    }
}

/// An empty string means "none" on the wire.
fn path_text(p: PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

fn optional(s: String) -> Option<String> {
    Some(s).filter(|s| !s.is_empty())
}

impl From<proto::CreateContainerRequest> for CreateContainer {
    fn from(r: proto::CreateContainerRequest) -> CreateContainer {
        let systemd_cgroup = crate::cgroup::unit_of(&r.cgroup).is_some();
        CreateContainer {
            id: r.id,
            bundle: PathBuf::from(r.bundle),
            log_path: optional(r.log_path).map(PathBuf::from),
            stdin: r.stdin,
            stdin_once: r.stdin_once,
            tty: r.tty,
            cgroup: optional(r.cgroup),
            // A container whose cgroup is a systemd scope has it made by the runtime's systemd
            // driver (the wire carries the cgroup, not the driver).
            runtime: optional(r.runtime_path).map(|path| crate::oci::OciRuntime {
                path: PathBuf::from(path),
                root: PathBuf::from(r.runtime_root),
                systemd_cgroup,
            }),
        }
    }
}

impl From<&CreateContainer> for proto::CreateContainerRequest {
    fn from(r: &CreateContainer) -> proto::CreateContainerRequest {
        let text = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        proto::CreateContainerRequest {
            id: r.id.clone(),
            bundle: r.bundle.to_string_lossy().into_owned(),
            log_path: text(&r.log_path),
            stdin: r.stdin,
            stdin_once: r.stdin_once,
            tty: r.tty,
            cgroup: r.cgroup.clone().unwrap_or_default(),
            runtime_path: r
                .runtime
                .as_ref()
                .map(|o| o.path.clone())
                .map(path_text)
                .unwrap_or_default(),
            runtime_root: r
                .runtime
                .as_ref()
                .map(|o| o.root.clone())
                .map(path_text)
                .unwrap_or_default(),
        }
    }
}

impl From<ExecOutput> for proto::ExecSyncResponse {
    fn from(o: ExecOutput) -> proto::ExecSyncResponse {
        proto::ExecSyncResponse {
            stdout: o.stdout,
            stderr: o.stderr,
            exit_code: o.exit_code,
            timed_out: o.timed_out,
        }
    }
}

impl From<proto::ExecSyncResponse> for ExecOutput {
    fn from(r: proto::ExecSyncResponse) -> ExecOutput {
        ExecOutput {
            stdout: r.stdout,
            stderr: r.stderr,
            exit_code: r.exit_code,
            timed_out: r.timed_out,
        }
    }
}

impl From<proto::InfoResponse> for ShimInfo {
    fn from(r: proto::InfoResponse) -> ShimInfo {
        ShimInfo {
            pid: r.pid,
            namespaces: r
                .namespaces
                .into_iter()
                .map(|(k, v)| (k, PathBuf::from(v)))
                .collect(),
            version: r.version,
        }
    }
}

impl From<proto::TerminalSize> for TermSize {
    fn from(s: proto::TerminalSize) -> TermSize {
        let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        TermSize {
            width: clamp(s.width),
            height: clamp(s.height),
        }
    }
}

impl From<TermSize> for proto::TerminalSize {
    fn from(s: TermSize) -> proto::TerminalSize {
        proto::TerminalSize {
            width: s.width.into(),
            height: s.height.into(),
        }
    }
}

impl From<proto::ExecStart> for StreamStart {
    fn from(s: proto::ExecStart) -> StreamStart {
        StreamStart {
            id: s.id,
            args: s.args,
            tty: s.tty,
            stdin: s.stdin,
            stdout: s.stdout,
            stderr: s.stderr,
            size: s.size.map(Into::into),
        }
    }
}

impl From<&StreamStart> for proto::ExecStart {
    fn from(s: &StreamStart) -> proto::ExecStart {
        proto::ExecStart {
            id: s.id.clone(),
            args: s.args.clone(),
            tty: s.tty,
            stdin: s.stdin,
            stdout: s.stdout,
            stderr: s.stderr,
            size: s.size.map(Into::into),
        }
    }
}

impl From<StreamInput> for proto::ExecInput {
    fn from(i: StreamInput) -> proto::ExecInput {
        use proto::exec_input::Input;
        let input = match i {
            StreamInput::Stdin(data) => Input::Stdin(data.to_vec()),
            StreamInput::StdinEof => Input::StdinEof(true),
            StreamInput::Resize(size) => Input::Resize(size.into()),
        };
        proto::ExecInput { input: Some(input) }
    }
}

/// An input after the start; `None` for a malformed one or a second start (ignored).
pub(crate) fn stream_input(i: proto::ExecInput) -> Option<StreamInput> {
    use proto::exec_input::Input;
    match i.input? {
        Input::Stdin(data) => Some(StreamInput::Stdin(data.into())),
        Input::StdinEof(_) => Some(StreamInput::StdinEof),
        Input::Resize(size) => Some(StreamInput::Resize(size.into())),
        Input::Start(_) => None,
    }
}

impl From<StreamOutput> for proto::ExecOutput {
    fn from(o: StreamOutput) -> proto::ExecOutput {
        use proto::exec_output::Output;
        let output = match o {
            StreamOutput::Stdout(data) => Output::Stdout(data.to_vec()),
            StreamOutput::Stderr(data) => Output::Stderr(data.to_vec()),
            StreamOutput::Exit(code) => Output::ExitCode(code),
        };
        proto::ExecOutput {
            output: Some(output),
        }
    }
}

/// An output as the daemon sees it; `None` for an empty message.
pub(crate) fn stream_output(o: proto::ExecOutput) -> Option<StreamOutput> {
    use proto::exec_output::Output;
    Some(match o.output? {
        Output::Stdout(data) => StreamOutput::Stdout(data.into()),
        Output::Stderr(data) => StreamOutput::Stderr(data.into()),
        Output::ExitCode(code) => StreamOutput::Exit(code),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_round_trips_with_empty_meaning_none() {
        let req = CreateContainer {
            id: "c1".into(),
            bundle: "/b".into(),
            log_path: None,
            stdin: true,
            stdin_once: false,
            tty: false,
            cgroup: Some("/kubepods/pod1/c1".into()),
            runtime: None,
        };
        let wire = proto::CreateContainerRequest::from(&req);
        assert_eq!(wire.log_path, "");
        assert_eq!(wire.runtime_path, "");
        assert_eq!(CreateContainer::from(wire), req);
        let runc = CreateContainer {
            runtime: Some(crate::oci::OciRuntime {
                path: "/usr/sbin/runc".into(),
                root: "/run/berth/runc".into(),
                systemd_cgroup: false,
            }),
            ..req
        };
        let wire = proto::CreateContainerRequest::from(&runc);
        assert_eq!(CreateContainer::from(wire), runc);
    }

    #[test]
    fn state_round_trips() {
        let state = ContainerState {
            id: "c1".into(),
            pid: 9,
            status: ContainerStatus::Exited,
            started_at: 5,
            exit: Some(Exit {
                exit_code: 143,
                signal: 15,
                finished_at: 6,
                oom_killed: false,
                pid: 9,
            }),
        };
        assert_eq!(
            ContainerState::from(proto::ContainerState::from(&state)),
            state
        );
    }
}
