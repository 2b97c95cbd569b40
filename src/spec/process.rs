//! The container process: argv merged from the CRI config and the image, environment, working
//! directory, user, rlimits and OOM score. Capabilities come from [`super::caps`].

use crate::cri_api::{ContainerConfig, KeyValue};
use oci_spec::runtime::{LinuxCapabilities, Process, User as OciUser};

use super::{ContainerInputs, SpecError, user};
use crate::image::manifest::ImageConfig;

/// PATH when neither the image nor the CRI config sets one.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds `process` for the container; `caps` and the security context flags come from the caller.
pub(super) fn process(
    inputs: &ContainerInputs,
    hostname: &str,
    caps: LinuxCapabilities,
) -> Result<Process, SpecError> {
    let container = inputs.container;
    let sc = container
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref());
    let resources = container.linux.as_ref().and_then(|l| l.resources.as_ref());

    let mut oci_user = OciUser::default();
    oci_user
        .set_uid(inputs.user.uid)
        .set_gid(inputs.user.gid)
        .set_additional_gids(Some(user::additional_gids(&inputs.user, container)?));

    let oom_score_adj = match resources {
        Some(r) => Some(oom_score_adj(r.oom_score_adj)?),
        None => None,
    };

    let mut p = Process::default();
    p.set_terminal(Some(container.tty))
        .set_console_size(None)
        .set_user(oci_user)
        .set_args(Some(args(container, inputs.image)?))
        .set_command_line(None)
        .set_env(Some(
            super::raw_env::split(&env(&inputs.image.config.env, &container.envs, hostname)).0,
        ))
        .set_cwd(cwd(container, inputs.image)?.into())
        .set_capabilities(Some(caps))
        // Like containerd's CRI plugin: no rlimits, the container inherits the shim's. Raising
        // a hard limit needs CAP_SYS_RESOURCE, which a node's runtime may not hold.
        .set_rlimits(None)
        .set_no_new_privileges(Some(sc.is_some_and(|sc| sc.no_new_privs)))
        .set_apparmor_profile(None)
        .set_oom_score_adj(oom_score_adj)
        .set_selinux_label(None)
        .set_io_priority(None)
        .set_scheduler(None)
        .set_exec_cpu_affinity(None);
    Ok(p)
}

/// kubelet's merge of CRI command/args with the image's ENTRYPOINT/CMD: a CRI command replaces
/// the entrypoint and drops CMD; CRI args alone replace CMD. An image ENTRYPOINT of `[""]` counts
/// as none.
pub(super) fn args(
    container: &ContainerConfig,
    image: &ImageConfig,
) -> Result<Vec<String>, SpecError> {
    let entrypoint = match image.config.entrypoint.as_slice() {
        [only] if only.is_empty() => &[][..],
        e => e,
    };
    let (command, args) = match (container.command.is_empty(), container.args.is_empty()) {
        (false, _) => (container.command.as_slice(), container.args.as_slice()),
        (true, false) => (entrypoint, container.args.as_slice()),
        (true, true) => (entrypoint, image.config.cmd.as_slice()),
    };
    let argv: Vec<String> = command.iter().chain(args).cloned().collect();
    if argv.is_empty() {
        let name = container.metadata.as_ref().map(|m| m.name.clone());
        return Err(SpecError::NoCommand {
            container: name.unwrap_or_default(),
        });
    }
    Ok(argv)
}

/// The environment: default PATH and HOSTNAME, overlaid by the image's ENV, overlaid by the CRI
/// envs. A later value for a key replaces the earlier one in place; an image entry without `=`
/// unsets the key. Entries are bytes: a CRI value need not be UTF-8 (see [`super::raw_env`]).
pub(super) fn env(image_env: &[String], cri: &[KeyValue], hostname: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![
        DEFAULT_PATH.as_bytes().to_vec(),
        format!("HOSTNAME={hostname}").into_bytes(),
    ];
    let overrides = image_env
        .iter()
        .map(|e| e.as_bytes().to_vec())
        .chain(cri.iter().map(|kv| {
            let mut entry = format!("{}=", kv.key).into_bytes();
            entry.extend_from_slice(&kv.value);
            entry
        }));
    for entry in overrides {
        let key = env_key(&entry).to_vec();
        match out.iter_mut().find(|e| env_key(e) == key.as_slice()) {
            Some(slot) => *slot = entry,
            None => out.push(entry),
        }
    }
    out.retain(|e| e.contains(&b'='));
    out
}

fn env_key(entry: &[u8]) -> &[u8] {
    entry
        .iter()
        .position(|&b| b == b'=')
        .map_or(entry, |i| &entry[..i])
}

/// CRI `working_dir`, else the image's WorkingDir, else `/`. Must be absolute.
pub(super) fn cwd(container: &ContainerConfig, image: &ImageConfig) -> Result<String, SpecError> {
    let dir = [
        container.working_dir.as_str(),
        image.config.working_dir.as_str(),
    ]
    .into_iter()
    .find(|d| !d.is_empty())
    .unwrap_or("/");
    if !dir.starts_with('/') {
        return Err(SpecError::RelativeWorkingDir(dir.to_string()));
    }
    Ok(dir.to_string())
}

fn oom_score_adj(value: i64) -> Result<i32, SpecError> {
    match i32::try_from(value) {
        Ok(v) if (-1000..=1000).contains(&v) => Ok(v),
        _ => Err(SpecError::Resource {
            field: "oom_score_adj",
            value,
            reason: "must be within -1000..=1000",
        }),
    }
}

#[cfg(test)]
mod tests {
    use crate::cri_api::ContainerMetadata;

    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn merges_command_and_args_like_kubelet() {
        // (CRI command, CRI args, image entrypoint, image cmd, want)
        type Case<'a> = (
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: [Case; 9] = [
            (
                &["sh"],
                &["-c", "x"],
                &["/ep"],
                &["cmd"],
                &["sh", "-c", "x"],
            ),
            (&["sh"], &[], &["/ep"], &["cmd"], &["sh"]),
            (&[], &["a", "b"], &["/ep"], &["cmd"], &["/ep", "a", "b"]),
            (&[], &["a"], &[], &["cmd"], &["a"]),
            (
                &[],
                &[],
                &["/ep", "-x"],
                &["cmd", "y"],
                &["/ep", "-x", "cmd", "y"],
            ),
            (&[], &[], &[], &["cmd", "y"], &["cmd", "y"]),
            (&[], &[], &["/ep"], &[], &["/ep"]),
            (&[], &[], &[""], &["cmd"], &["cmd"]),
            (&[], &["a"], &[""], &["cmd"], &["a"]),
        ];
        for (command, cargs, entrypoint, cmd, want) in cases {
            let container = ContainerConfig {
                command: strings(command),
                args: strings(cargs),
                ..Default::default()
            };
            let mut image = ImageConfig::default();
            image.config.entrypoint = strings(entrypoint);
            image.config.cmd = strings(cmd);
            assert_eq!(
                args(&container, &image),
                Ok(strings(want)),
                "{command:?} {cargs:?} {entrypoint:?} {cmd:?}"
            );
        }
    }

    #[test]
    fn nothing_to_run_is_an_error_naming_the_container() {
        let container = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "web".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        let mut image = ImageConfig::default();
        image.config.entrypoint = strings(&[""]);
        let err = args(&container, &image).unwrap_err();
        assert_eq!(
            err,
            SpecError::NoCommand {
                container: "web".into()
            }
        );
        assert!(err.to_string().contains("\"web\""));
    }

    #[test]
    fn env_overlays_image_then_cri_in_place() {
        let kv = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: v.into(),
        };
        // (image env, CRI envs, want)
        let cases: [(&[&str], Vec<KeyValue>, &[&str]); 5] = [
            (&[], vec![], &[DEFAULT_PATH, "HOSTNAME=pod"]),
            (
                &["PATH=/img", "A=1", "B=2"],
                vec![kv("B", "3"), kv("C", "4")],
                &["PATH=/img", "HOSTNAME=pod", "A=1", "B=3", "C=4"],
            ),
            (
                &["A=1"],
                vec![kv("PATH", "/cri"), kv("HOSTNAME", "mine")],
                &["PATH=/cri", "HOSTNAME=mine", "A=1"],
            ),
            (&["A=x=y", "A"], vec![], &[DEFAULT_PATH, "HOSTNAME=pod"]),
            (
                &["E="],
                vec![kv("E", "")],
                &[DEFAULT_PATH, "HOSTNAME=pod", "E="],
            ),
        ];
        for (image_env, cri, want) in cases {
            let got = env(&strings(image_env), &cri, "pod");
            let want: Vec<Vec<u8>> = want.iter().map(|w| w.as_bytes().to_vec()).collect();
            assert_eq!(got, want, "{image_env:?} {cri:?}");
        }
    }

    #[test]
    fn env_keeps_non_utf8_values_byte_for_byte() {
        let cri = [KeyValue {
            key: "RAW".into(),
            value: b"\xff\x00x".to_vec(),
        }];
        let got = env(&[], &cri, "pod");
        assert_eq!(got[2], b"RAW=\xff\x00x");
    }

    #[test]
    fn cwd_prefers_cri_then_image_then_root() {
        let cases = [
            ("/cri", "/img", Ok("/cri")),
            ("", "/img", Ok("/img")),
            ("", "", Ok("/")),
            ("rel", "", Err(SpecError::RelativeWorkingDir("rel".into()))),
            ("", "app", Err(SpecError::RelativeWorkingDir("app".into()))),
        ];
        for (cri, img, want) in cases {
            let container = ContainerConfig {
                working_dir: cri.into(),
                ..Default::default()
            };
            let mut image = ImageConfig::default();
            image.config.working_dir = img.into();
            assert_eq!(
                cwd(&container, &image),
                want.map(String::from),
                "{cri:?} {img:?}"
            );
        }
    }

    #[test]
    fn oom_score_adj_is_range_checked() {
        assert_eq!(oom_score_adj(-998), Ok(-998));
        assert_eq!(oom_score_adj(1000), Ok(1000));
        assert!(oom_score_adj(1001).is_err());
        assert!(oom_score_adj(i64::MIN).is_err());
    }
}
