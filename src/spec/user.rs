//! The container's identity: which user string applies (CRI security context over the image's
//! USER), resolving it against the *text* of the image's /etc/passwd and /etc/group, and the
//! final supplementary group list under the pod's `SupplementalGroupsPolicy`.
//!
//! Reading those files out of the rootfs is the caller's I/O; everything here is pure.

use crate::cri_api::{ContainerConfig, SupplementalGroupsPolicy};

use super::SpecError;
use crate::image::manifest::ImageConfig;

/// A user string resolved to numeric ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Groups of the image's /etc/group that list the user as a member (sorted, unique).
    pub additional_gids: Vec<u32>,
}

/// The user string to resolve for a container, as `user[:group]`: `run_as_username` or
/// `run_as_user` (with `run_as_group`) from the security context, else the image's USER; `""`
/// means root.
pub fn user_string(container: &ContainerConfig, image: &ImageConfig) -> Result<String, SpecError> {
    let sc = container
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref());
    let Some(sc) = sc else {
        return Ok(image.config.user.clone());
    };
    let user = if !sc.run_as_username.is_empty() {
        sc.run_as_username.clone()
    } else {
        sc.run_as_user
            .as_ref()
            .map(|u| u.value.to_string())
            .unwrap_or_default()
    };
    let group = sc.run_as_group.as_ref().map(|g| g.value);
    match (user.is_empty(), group) {
        (true, Some(gid)) => Err(SpecError::GroupWithoutUser(gid)),
        (true, None) => Ok(image.config.user.clone()),
        (false, Some(gid)) => Ok(format!("{user}:{gid}")),
        (false, None) => Ok(user),
    }
}

/// Resolves `user[:group]` (names or numeric ids) against the text of /etc/passwd and /etc/group.
///
/// A name must be listed; a numeric uid need not be (its primary gid is then 0). An explicit
/// group replaces the passwd primary gid. Additional gids come from /etc/group membership of the
/// user's name, when the user is listed.
pub fn resolve_user(spec_user: &str, passwd: &str, group: &str) -> Result<ResolvedUser, SpecError> {
    let spec = if spec_user.is_empty() { "0" } else { spec_user };
    let invalid = |reason| SpecError::InvalidUser {
        user: spec_user.to_string(),
        reason,
    };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() {
        return Err(invalid("empty user name"));
    }
    if group_part.is_some_and(|g| g.is_empty() || g.contains(':')) {
        return Err(invalid("expected user or user:group"));
    }

    let users = parse_passwd(passwd);
    let (uid, entry) = match numeric(user_part).map_err(|()| invalid("uid out of range"))? {
        Some(uid) => (uid, users.iter().find(|u| u.uid == uid)),
        None => {
            let entry = users
                .iter()
                .find(|u| u.name == user_part)
                .ok_or_else(|| SpecError::UnknownUser(user_part.to_string()))?;
            (entry.uid, Some(entry))
        }
    };

    let groups = parse_group(group);
    let gid = match group_part {
        None => entry.map_or(0, |e| e.gid),
        Some(g) => match numeric(g).map_err(|()| invalid("gid out of range"))? {
            Some(gid) => gid,
            None => {
                groups
                    .iter()
                    .find(|e| e.name == g)
                    .ok_or_else(|| SpecError::UnknownGroup(g.to_string()))?
                    .gid
            }
        },
    };

    let mut additional_gids: Vec<u32> = match entry {
        Some(e) => groups
            .iter()
            .filter(|g| g.members.contains(&e.name))
            .map(|g| g.gid)
            .collect(),
        None => Vec::new(),
    };
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

/// The process's final supplementary groups: always the primary gid, the image's /etc/group
/// memberships only under `Merge`, and the security context's `supplemental_groups`. Sorted,
/// unique.
pub(super) fn additional_gids(
    user: &ResolvedUser,
    container: &ContainerConfig,
) -> Result<Vec<u32>, SpecError> {
    let sc = container
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref());
    let (policy, extra) = match sc {
        Some(sc) => (
            sc.supplemental_groups_policy,
            sc.supplemental_groups.as_slice(),
        ),
        None => (SupplementalGroupsPolicy::Merge as i32, &[][..]),
    };
    let mut gids = vec![user.gid];
    match SupplementalGroupsPolicy::try_from(policy) {
        Ok(SupplementalGroupsPolicy::Merge) => gids.extend(&user.additional_gids),
        Ok(SupplementalGroupsPolicy::Strict) => {}
        Err(_) => return Err(SpecError::SupplementalGroupsPolicy(policy)),
    }
    for &g in extra {
        gids.push(u32::try_from(g).map_err(|_| SpecError::InvalidGid(g))?);
    }
    gids.sort_unstable();
    gids.dedup();
    Ok(gids)
}

/// `Ok(Some(n))` for a decimal id, `Ok(None)` for a name, `Err` for digits out of u32 range.
fn numeric(s: &str) -> Result<Option<u32>, ()> {
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|_| ())
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

/// Entries of a passwd file; comments, NIS `+`/`-` lines and malformed lines are skipped.
fn parse_passwd(text: &str) -> Vec<PasswdEntry<'_>> {
    records(text)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first()?,
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

/// Entries of a group file, skipping lines as [`parse_passwd`] does.
fn parse_group(text: &str) -> Vec<GroupEntry<'_>> {
    records(text)
        .filter_map(|f| {
            Some(GroupEntry {
                name: f.first()?,
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| m.split(',').map(str::trim).filter(|m| !m.is_empty()))
                    .into_iter()
                    .flatten()
                    .collect(),
            })
        })
        .collect()
}

fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(['+', '-']))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| !f[0].is_empty())
}

#[cfg(test)]
mod tests {
    use crate::cri_api::{Int64Value, LinuxContainerConfig, LinuxContainerSecurityContext};

    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
broken line
app:x:1000:1001::/home/app:/bin/sh
+nis
";
    const GROUP: &str = "\
root:x:0:
wheel:x:10:root,app
app:x:1001:
audio:x:29:app
staff:x:50
";

    fn user(uid: u32, gid: u32, additional_gids: &[u32]) -> ResolvedUser {
        ResolvedUser {
            uid,
            gid,
            additional_gids: additional_gids.to_vec(),
        }
    }

    #[test]
    fn resolves_names_and_ids() {
        let cases = [
            ("", user(0, 0, &[10])),
            ("root", user(0, 0, &[10])),
            ("app", user(1000, 1001, &[10, 29])),
            ("1000", user(1000, 1001, &[10, 29])),
            ("1000:50", user(1000, 50, &[10, 29])),
            ("app:staff", user(1000, 50, &[10, 29])),
            ("app:7", user(1000, 7, &[10, 29])),
            ("4242", user(4242, 0, &[])),
            ("4242:audio", user(4242, 29, &[])),
        ];
        for (spec, want) in cases {
            assert_eq!(resolve_user(spec, PASSWD, GROUP), Ok(want), "{spec:?}");
        }
    }

    #[test]
    fn without_etc_files_only_ids_resolve() {
        assert_eq!(resolve_user("", "", ""), Ok(user(0, 0, &[])));
        assert_eq!(
            resolve_user("65534:65534", "", ""),
            Ok(user(65534, 65534, &[]))
        );
        assert_eq!(
            resolve_user("nobody", "", ""),
            Err(SpecError::UnknownUser("nobody".into()))
        );
    }

    #[test]
    fn rejects_unknown_and_malformed_users() {
        let cases = [
            ("ghost", SpecError::UnknownUser("ghost".into())),
            ("app:ghosts", SpecError::UnknownGroup("ghosts".into())),
            ("a:b:c", invalid("a:b:c", "expected user or user:group")),
            ("app:", invalid("app:", "expected user or user:group")),
            (":0", invalid(":0", "empty user name")),
            ("4294967296", invalid("4294967296", "uid out of range")),
            (
                "0:99999999999",
                invalid("0:99999999999", "gid out of range"),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(resolve_user(spec, PASSWD, GROUP), Err(want), "{spec:?}");
        }
    }

    fn invalid(user: &str, reason: &'static str) -> SpecError {
        SpecError::InvalidUser {
            user: user.into(),
            reason,
        }
    }

    fn config(sc: LinuxContainerSecurityContext) -> ContainerConfig {
        ContainerConfig {
            linux: Some(LinuxContainerConfig {
                security_context: Some(sc),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn security_context_overrides_the_image_user() {
        let mut image = ImageConfig::default();
        image.config.user = "app:staff".into();
        let id = |v| Some(Int64Value { value: v });
        let cases = [
            (LinuxContainerSecurityContext::default(), Ok("app:staff")),
            (
                LinuxContainerSecurityContext {
                    run_as_user: id(1000),
                    ..Default::default()
                },
                Ok("1000"),
            ),
            (
                LinuxContainerSecurityContext {
                    run_as_user: id(0),
                    run_as_group: id(5),
                    ..Default::default()
                },
                Ok("0:5"),
            ),
            (
                LinuxContainerSecurityContext {
                    run_as_user: id(1),
                    run_as_username: "daemon".into(),
                    ..Default::default()
                },
                Ok("daemon"),
            ),
            (
                LinuxContainerSecurityContext {
                    run_as_group: id(5),
                    ..Default::default()
                },
                Err(SpecError::GroupWithoutUser(5)),
            ),
        ];
        for (sc, want) in cases {
            let got = user_string(&config(sc.clone()), &image);
            assert_eq!(got, want.map(String::from), "{sc:?}");
        }
        assert_eq!(
            user_string(&ContainerConfig::default(), &image),
            Ok("app:staff".into())
        );
    }

    #[test]
    fn supplemental_groups_policy_merge_and_strict() {
        let resolved = user(1000, 1001, &[10, 29]);
        let cases = [
            (
                SupplementalGroupsPolicy::Merge,
                vec![5, 10],
                Ok(vec![5, 10, 29, 1001]),
            ),
            (
                SupplementalGroupsPolicy::Strict,
                vec![5, 10],
                Ok(vec![5, 10, 1001]),
            ),
            (SupplementalGroupsPolicy::Strict, vec![], Ok(vec![1001])),
            (
                SupplementalGroupsPolicy::Merge,
                vec![-1],
                Err(SpecError::InvalidGid(-1)),
            ),
        ];
        for (policy, groups, want) in cases {
            let cfg = config(LinuxContainerSecurityContext {
                supplemental_groups: groups.clone(),
                supplemental_groups_policy: policy as i32,
                ..Default::default()
            });
            assert_eq!(
                additional_gids(&resolved, &cfg),
                want,
                "{policy:?} {groups:?}"
            );
        }
        let unknown = config(LinuxContainerSecurityContext {
            supplemental_groups_policy: 7,
            ..Default::default()
        });
        assert_eq!(
            additional_gids(&resolved, &unknown),
            Err(SpecError::SupplementalGroupsPolicy(7))
        );
        assert_eq!(
            additional_gids(&resolved, &ContainerConfig::default()),
            Ok(vec![10, 29, 1001]),
            "no security context merges the image's groups"
        );
    }
}
