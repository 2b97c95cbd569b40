//! The node's pods and containers as the CLI sees them: one listing of each, the pod a container
//! belongs to (kubelet's labels first), and id prefixes resolved like crictl does.

use std::collections::HashMap;

use anyhow::bail;

use crate::client::CriClient;
use crate::cri::api;

const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";

/// Every container and pod berthd knows, listed once.
pub struct Inventory {
    pub containers: Vec<api::Container>,
    pub pods: Vec<api::PodSandbox>,
}

impl Inventory {
    pub async fn list(client: &CriClient) -> anyhow::Result<Inventory> {
        let mut runtime = client.runtime.clone();
        let containers = runtime
            .list_containers(api::ListContainersRequest { filter: None })
            .await?
            .into_inner()
            .containers;
        let pods = runtime
            .list_pod_sandbox(api::ListPodSandboxRequest { filter: None })
            .await?
            .into_inner()
            .items;
        Ok(Inventory { containers, pods })
    }

    /// `(namespace, name)` of a container's pod: kubelet's labels on the container when present,
    /// else the pod's metadata, else empty.
    pub fn pod_of(&self, pod_id: &str, labels: &HashMap<String, String>) -> (String, String) {
        if let Some(name) = labels.get(POD_NAME_LABEL) {
            let namespace = labels.get(POD_NAMESPACE_LABEL).cloned().unwrap_or_default();
            return (namespace, name.clone());
        }
        self.pods
            .iter()
            .find(|p| p.id == pod_id)
            .and_then(|p| p.metadata.as_ref())
            .map(|m| (m.namespace.clone(), m.name.clone()))
            .unwrap_or_default()
    }

    /// The one container whose id starts with `prefix`.
    pub fn container(&self, prefix: &str) -> anyhow::Result<&api::Container> {
        let ids: Vec<&str> = self.containers.iter().map(|c| c.id.as_str()).collect();
        let id = resolve("container", prefix, &ids)?;
        Ok(self
            .containers
            .iter()
            .find(|c| c.id == id)
            .expect("resolved among these"))
    }

    /// The one pod whose id starts with `prefix`.
    pub fn pod(&self, prefix: &str) -> anyhow::Result<&api::PodSandbox> {
        let ids: Vec<&str> = self.pods.iter().map(|p| p.id.as_str()).collect();
        let id = resolve("pod", prefix, &ids)?;
        Ok(self
            .pods
            .iter()
            .find(|p| p.id == id)
            .expect("resolved among these"))
    }
}

/// The one id in `ids` equal to `prefix` or starting with it; none or several is an error that
/// says which.
pub fn resolve<'a>(kind: &str, prefix: &str, ids: &[&'a str]) -> anyhow::Result<&'a str> {
    if prefix.is_empty() {
        bail!("no {kind} id given");
    }
    if let Some(exact) = ids.iter().find(|id| **id == prefix) {
        return Ok(exact);
    }
    let matches: Vec<&str> = ids
        .iter()
        .copied()
        .filter(|id| id.starts_with(prefix))
        .collect();
    match matches.as_slice() {
        [] => bail!("no {kind} with an id starting with {prefix:?}"),
        [one] => Ok(one),
        several => bail!(
            "{kind} id prefix {prefix:?} is ambiguous: it matches {} ({}); give more characters",
            several.len(),
            several
                .iter()
                .map(|id| super::short_id(id))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::resolve;

    const IDS: &[&str] = &["abc123", "abd456", "ffff00"];

    #[test]
    fn a_unique_prefix_resolves() {
        assert_eq!(resolve("container", "abc", IDS).unwrap(), "abc123");
        assert_eq!(resolve("container", "f", IDS).unwrap(), "ffff00");
        assert_eq!(resolve("container", "abd456", IDS).unwrap(), "abd456");
    }

    #[test]
    fn an_ambiguous_prefix_names_the_candidates() {
        let e = resolve("container", "ab", IDS).unwrap_err().to_string();
        assert!(e.contains("ambiguous"), "{e}");
        assert!(e.contains("abc123") && e.contains("abd456"), "{e}");
    }

    #[test]
    fn no_match_and_empty_are_errors() {
        let e = resolve("pod", "zz", IDS).unwrap_err().to_string();
        assert!(e.contains("no pod with an id starting with \"zz\""), "{e}");
        assert!(resolve("pod", "", IDS).is_err());
    }

    #[test]
    fn an_exact_id_wins_over_longer_ones() {
        assert_eq!(resolve("pod", "ab", &["ab", "abc"]).unwrap(), "ab");
    }
}
