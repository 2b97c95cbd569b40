//! Pod user namespaces (`hostUsers: false`): the CRI `userns_options` checked the way kubelet
//! expects (mode NODE or unset = the host's, POD = one new namespace for the whole pod with exactly
//! one uid and one gid mapping that maps container id 0; CONTAINER and TARGET are errors), and the
//! mappings as OCI `linux.uidMappings` / `gidMappings`.

use crate::cri_api::{IdMapping, NamespaceMode, NamespaceOption};
use oci_spec::runtime::{LinuxIdMapping, LinuxIdMappingBuilder};

use super::SpecError;
use super::sandbox::mode;

/// One id range of a user namespace: container ids `container..container+size` are host ids
/// `host..host+size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

impl IdMap {
    /// The host id of container id `id`, if mapped.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        let offset = id.checked_sub(self.container)?;
        (offset < self.size).then(|| self.host + offset)
    }

    /// The line for `/proc/<pid>/uid_map` or `gid_map`.
    pub fn proc_line(&self) -> String {
        format!("{} {} {}\n", self.container, self.host, self.size)
    }

    /// `container:host:size`, the shim's flag syntax.
    pub fn to_flag(&self) -> String {
        format!("{}:{}:{}", self.container, self.host, self.size)
    }

    /// Parses [`IdMap::to_flag`]'s syntax.
    pub fn parse_flag(s: &str) -> Result<IdMap, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let [c, h, n] = parts[..] else {
            return Err(format!("id map {s:?}: want container:host:size"));
        };
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|e| format!("id map {s:?}: {v:?}: {e}"))
        };
        checked(num(c)?, num(h)?, num(n)?).map_err(|r| format!("id map {s:?}: {r}"))
    }

    /// The OCI form.
    pub fn to_oci(self) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(self.container)
            .host_id(self.host)
            .size(self.size)
            .build()
            .expect("every field of an id mapping is set")
    }
}

/// The uid and gid mappings of a pod's user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserNamespaceMaps {
    pub uids: IdMap,
    pub gids: IdMap,
}

fn checked(container: u32, host: u32, size: u32) -> Result<IdMap, &'static str> {
    if size == 0 {
        return Err("length is 0");
    }
    if container.checked_add(size - 1).is_none() || host.checked_add(size - 1).is_none() {
        return Err("the range passes the last 32-bit id");
    }
    Ok(IdMap {
        container,
        host,
        size,
    })
}

/// The pod's user namespace from its namespace options: `None` for the host's.
pub fn pod_user_namespace(
    ns: Option<&NamespaceOption>,
) -> Result<Option<UserNamespaceMaps>, SpecError> {
    let Some(userns) = ns.and_then(|o| o.userns_options.as_ref()) else {
        return Ok(None);
    };
    match mode("user", userns.mode)? {
        NamespaceMode::Node => {
            if !userns.uids.is_empty() || !userns.gids.is_empty() {
                return Err(invalid("mode NODE takes no uid or gid mappings".into()));
            }
            Ok(None)
        }
        NamespaceMode::Pod => Ok(Some(UserNamespaceMaps {
            uids: one_mapping("uid", &userns.uids)?,
            gids: one_mapping("gid", &userns.gids)?,
        })),
        other => Err(invalid(format!(
            "mode {} is not supported: a user namespace is the pod's (POD) or the host's (NODE)",
            other.as_str_name()
        ))),
    }
}

/// A container's user namespace options must agree with its pod's: unset, or the pod's mode
/// (kubelet repeats the pod's options on each container).
pub fn check_container(
    ns: Option<&NamespaceOption>,
    pod: Option<&UserNamespaceMaps>,
) -> Result<(), SpecError> {
    let Some(userns) = ns.and_then(|o| o.userns_options.as_ref()) else {
        return Ok(());
    };
    match (mode("user", userns.mode)?, pod) {
        (NamespaceMode::Node, None) => Ok(()),
        (NamespaceMode::Pod, Some(pod)) => {
            let own = pod_user_namespace(ns)?;
            if own.is_some_and(|own| own != *pod) {
                return Err(invalid(
                    "the container's mappings differ from its pod's".into(),
                ));
            }
            Ok(())
        }
        (NamespaceMode::Pod, None) => Err(invalid(
            "mode POD for a container whose pod uses the host's user namespace".into(),
        )),
        (NamespaceMode::Node, Some(_)) => Err(invalid(
            "mode NODE for a container whose pod has its own user namespace".into(),
        )),
        (other, _) => Err(invalid(format!(
            "mode {} is not supported for a container",
            other.as_str_name()
        ))),
    }
}

fn one_mapping(kind: &'static str, maps: &[IdMapping]) -> Result<IdMap, SpecError> {
    let [m] = maps else {
        return Err(invalid(format!(
            "exactly one {kind} mapping is supported, got {}",
            maps.len()
        )));
    };
    let map = checked(m.container_id, m.host_id, m.length)
        .map_err(|reason| invalid(format!("{kind} mapping: {reason}")))?;
    if map.container != 0 {
        return Err(invalid(format!(
            "{kind} mapping must map container id 0, it starts at {}",
            map.container
        )));
    }
    Ok(map)
}

fn invalid(reason: String) -> SpecError {
    SpecError::UserNamespace(reason)
}

#[cfg(test)]
mod tests {
    use crate::cri_api::UserNamespace;

    use super::*;

    fn opts(mode: NamespaceMode, uids: &[(u32, u32, u32)]) -> NamespaceOption {
        let maps: Vec<IdMapping> = uids
            .iter()
            .map(|&(container_id, host_id, length)| IdMapping {
                container_id,
                host_id,
                length,
            })
            .collect();
        NamespaceOption {
            userns_options: Some(UserNamespace {
                mode: mode as i32,
                uids: maps.clone(),
                gids: maps,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn pod_mode_gives_the_mappings() {
        let got = pod_user_namespace(Some(&opts(NamespaceMode::Pod, &[(0, 100000, 65536)])));
        let map = IdMap {
            container: 0,
            host: 100000,
            size: 65536,
        };
        assert_eq!(
            got,
            Ok(Some(UserNamespaceMaps {
                uids: map,
                gids: map
            }))
        );
        assert_eq!(map.to_host(0), Some(100000));
        assert_eq!(map.to_host(65536), None);
        assert_eq!(IdMap::parse_flag(&map.to_flag()), Ok(map));
    }

    #[test]
    fn node_or_unset_is_the_host() {
        assert_eq!(pod_user_namespace(None), Ok(None));
        assert_eq!(
            pod_user_namespace(Some(&opts(NamespaceMode::Node, &[]))),
            Ok(None)
        );
    }

    #[test]
    fn bad_options_are_invalid() {
        let cases = [
            opts(NamespaceMode::Container, &[]),
            opts(NamespaceMode::Target, &[]),
            opts(NamespaceMode::Pod, &[]),
            opts(NamespaceMode::Pod, &[(0, 1000, 100000), (0, 2000, 100000)]),
            opts(NamespaceMode::Pod, &[(1, 1000, 100000)]),
            opts(NamespaceMode::Pod, &[(0, 1000, 0)]),
            opts(NamespaceMode::Pod, &[(0, u32::MAX, 2)]),
            opts(NamespaceMode::Node, &[(0, 1000, 10)]),
        ];
        for case in cases {
            let got = pod_user_namespace(Some(&case));
            assert!(
                matches!(got, Err(SpecError::UserNamespace(_))),
                "{case:?}: {got:?}"
            );
        }
    }

    #[test]
    fn containers_follow_their_pod() {
        let pod = pod_user_namespace(Some(&opts(NamespaceMode::Pod, &[(0, 1000, 10)])))
            .expect("valid")
            .expect("a user namespace");
        let same = opts(NamespaceMode::Pod, &[(0, 1000, 10)]);
        assert_eq!(check_container(Some(&same), Some(&pod)), Ok(()));
        assert_eq!(check_container(None, Some(&pod)), Ok(()));
        let node = opts(NamespaceMode::Node, &[]);
        assert_eq!(check_container(Some(&node), None), Ok(()));
        assert!(check_container(Some(&node), Some(&pod)).is_err());
        assert!(check_container(Some(&same), None).is_err());
        let other = opts(NamespaceMode::Pod, &[(0, 2000, 10)]);
        assert!(check_container(Some(&other), Some(&pod)).is_err());
    }
}
