//! Environment entries that are not UTF-8. CRI v0.34 made `KeyValue.value` bytes, but an OCI
//! spec's `process.env` is JSON strings. When an entry is not UTF-8, `process.env` holds it with
//! U+FFFD replacements and the annotation [`ANNOTATION`] holds the exact environment: each entry
//! base64-encoded, comma-separated. The built-in executor execs with the exact bytes; an external
//! OCI runtime (runc, crun) would see only `process.env`, so such a container is refused for it
//! (docs/runtime-handlers.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// The annotation with the exact environment, present only when some entry is not UTF-8.
pub const ANNOTATION: &str = "io.berth.process.env-raw";

/// The JSON-safe `process.env` and, when an entry is not UTF-8, the annotation's value.
pub fn split(entries: &[Vec<u8>]) -> (Vec<String>, Option<String>) {
    let lossy = entries
        .iter()
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    let exact = entries.iter().any(|e| std::str::from_utf8(e).is_err());
    let annotation = exact.then(|| {
        entries
            .iter()
            .map(|e| STANDARD.encode(e))
            .collect::<Vec<_>>()
            .join(",")
    });
    (lossy, annotation)
}

/// The exact environment from the annotation's value; `None` when it is malformed.
pub fn decode(value: &str) -> Option<Vec<Vec<u8>>> {
    if value.is_empty() {
        return Some(Vec::new());
    }
    value.split(',').map(|e| STANDARD.decode(e).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_needs_no_annotation_and_raw_bytes_round_trip() {
        let utf8 = vec![b"A=1".to_vec(), "B=grüß".as_bytes().to_vec()];
        assert_eq!(split(&utf8), (vec!["A=1".into(), "B=grüß".into()], None));

        let raw = vec![b"A=1".to_vec(), b"B=\xff\xfe,x".to_vec(), b"C=".to_vec()];
        let (env, annotation) = split(&raw);
        assert_eq!(env, ["A=1", "B=\u{fffd}\u{fffd},x", "C="]);
        assert_eq!(decode(&annotation.unwrap()).unwrap(), raw);
        assert_eq!(decode("not base64!"), None);
    }
}
