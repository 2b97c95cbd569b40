//! The cap on a pod's or container's labels and annotations. Kubernetes lets a pod carry 256 KiB
//! of annotations and short labels; berth takes 1 MiB of both together (keys and values) per
//! object, so a CRI client cannot store megabytes that every list, status and record write then
//! carries (two 9 MiB pods would make ListPodSandbox's reply outgrow the 16 MiB gRPC limit).

use std::collections::HashMap;

use crate::runtime::RuntimeError;

/// The most bytes of label and annotation keys and values one pod or container may carry.
pub const MAX_METADATA_BYTES: usize = 1 << 20;

/// Refuses `labels` and `annotations` of `what` above [`MAX_METADATA_BYTES`].
pub fn check(
    what: &str,
    labels: &HashMap<String, String>,
    annotations: &HashMap<String, String>,
) -> Result<(), RuntimeError> {
    let size: usize = (labels.iter().chain(annotations))
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > MAX_METADATA_BYTES {
        return Err(RuntimeError::InvalidArgument(format!(
            "{what}: labels and annotations hold {size} bytes, more than {MAX_METADATA_BYTES}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_keys_and_values_of_both() {
        let labels = HashMap::from([("k".to_string(), "v".repeat(MAX_METADATA_BYTES / 2))]);
        let mut annotations =
            HashMap::from([("a".to_string(), "w".repeat(MAX_METADATA_BYTES / 2 - 2))]);
        check("pod", &labels, &annotations).unwrap();
        annotations.insert("b".into(), String::new());
        let err = check("pod", &labels, &annotations).unwrap_err();
        assert!(err.to_string().contains("labels and annotations"), "{err}");
        assert_eq!(
            crate::error::Classify::kind(&err),
            crate::error::Kind::InvalidArgument
        );
    }
}
