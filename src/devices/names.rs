//! CDI device names: `vendor/class=name` ("fully qualified"), their parts' character rules, and
//! the names a container asks for through `ContainerConfig.cdi_devices` and `cdi.k8s.io/*`
//! annotations.

use std::collections::HashMap;

use super::error::CdiError;

/// The annotation key prefix under which kubelet's device plugins (before CRI's `cdi_devices`)
/// pass comma-separated device names.
pub const ANNOTATION_PREFIX: &str = "cdi.k8s.io/";

/// Longest qualified name accepted (a DNS subdomain, a 63-byte class and a device name fit).
const MAX_NAME: usize = 512;

/// A checked `vendor/class=name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    pub vendor: String,
    pub class: String,
    pub name: String,
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}={}", self.vendor, self.class, self.name)
    }
}

impl QualifiedName {
    /// Parses and checks `vendor/class=name`.
    pub fn parse(text: &str) -> Result<QualifiedName, CdiError> {
        let bad = |why: String| CdiError::BadName {
            name: text.chars().take(MAX_NAME).collect(),
            why,
        };
        if text.len() > MAX_NAME {
            return Err(bad(format!("longer than {MAX_NAME} bytes")));
        }
        let (kind, name) = text
            .split_once('=')
            .ok_or_else(|| bad("not of the form vendor/class=name".into()))?;
        let (vendor, class) = kind
            .split_once('/')
            .ok_or_else(|| bad("not of the form vendor/class=name".into()))?;
        check_vendor_or_class("vendor", vendor).map_err(bad)?;
        check_vendor_or_class("class", class).map_err(bad)?;
        check_device_name(name).map_err(bad)?;
        Ok(QualifiedName {
            vendor: vendor.into(),
            class: class.into(),
            name: name.into(),
        })
    }
}

/// Splits a spec's `kind` (`vendor/class`) and checks both parts.
pub fn parse_kind(kind: &str) -> Result<(String, String), String> {
    let (vendor, class) = kind
        .split_once('/')
        .ok_or_else(|| format!("kind {kind:?} is not of the form vendor/class"))?;
    check_vendor_or_class("vendor", vendor)?;
    check_vendor_or_class("class", class)?;
    Ok((vendor.into(), class.into()))
}

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// A vendor or class: starts with a letter, ends with a letter or digit, with letters, digits,
/// `_`, `-` and `.` between; at most 253 bytes for a vendor (a DNS subdomain), 63 for a class.
fn check_vendor_or_class(what: &str, s: &str) -> Result<(), String> {
    let max = if what == "vendor" { 253 } else { 63 };
    let Some(first) = s.chars().next() else {
        return Err(format!("empty {what}"));
    };
    if s.len() > max {
        return Err(format!("{what} {s:?} is longer than {max} bytes"));
    }
    if !first.is_ascii_alphabetic() {
        return Err(format!("{what} {s:?} must start with a letter"));
    }
    if !s.ends_with(alnum) {
        return Err(format!("{what} {s:?} must end with a letter or digit"));
    }
    match s.chars().find(|&c| !(alnum(c) || "_-.".contains(c))) {
        Some(c) => Err(format!("{what} {s:?} has the invalid character {c:?}")),
        None => Ok(()),
    }
}

/// A device name: starts and ends with a letter or digit, with letters, digits, `_`, `-`, `.`
/// and `:` between.
pub fn check_device_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty device name".into());
    }
    if !s.starts_with(alnum) || !s.ends_with(alnum) {
        return Err(format!(
            "device name {s:?} must start and end with a letter or digit"
        ));
    }
    match s.chars().find(|&c| !(alnum(c) || "_-.:".contains(c))) {
        Some(c) => Err(format!("device name {s:?} has the invalid character {c:?}")),
        None => Ok(()),
    }
}

/// The CDI devices a container asks for: `cdi_devices` first, then the annotations' (keys in
/// sorted order, each value comma-separated), without repeats. Every name is checked.
pub fn requested(
    cdi_devices: &[String],
    annotations: &HashMap<String, String>,
) -> Result<Vec<QualifiedName>, CdiError> {
    let mut keys: Vec<&String> = annotations
        .keys()
        .filter(|k| k.starts_with(ANNOTATION_PREFIX))
        .collect();
    keys.sort();
    let from_annotations = keys
        .into_iter()
        .flat_map(|k| annotations[k].split(','))
        .map(str::trim);
    let mut out: Vec<QualifiedName> = Vec::new();
    for text in cdi_devices
        .iter()
        .map(String::as_str)
        .chain(from_annotations)
    {
        let name = QualifiedName::parse(text)?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names_parse_and_bad_ones_are_refused() {
        let n = QualifiedName::parse("vendor.com/gpu=0").unwrap();
        assert_eq!(
            (n.vendor.as_str(), n.class.as_str(), n.name.as_str()),
            ("vendor.com", "gpu", "0")
        );
        assert_eq!(n.to_string(), "vendor.com/gpu=0");
        QualifiedName::parse("foo.bar.baz/foo-bar123.B_az=dev:1").unwrap();
        for bad in [
            "",
            "vendor.com/gpu",
            "gpu=0",
            "vendor.com/gpu=",
            "/gpu=0",
            "vendor.com/=0",
            "1vendor.com/gpu=0",
            "vendor.com/gpu-=0",
            "vendor.com/gpu=-0",
            "vendor.com/gpu=0/../x",
            "vendor.com/g/pu=0",
            "vendor com/gpu=0",
        ] {
            let err = QualifiedName::parse(bad).unwrap_err();
            assert!(matches!(err, CdiError::BadName { .. }), "{bad:?}: {err}");
        }
        let long = format!("v.com/c={}", "a".repeat(600));
        assert!(QualifiedName::parse(&long).is_err());
    }

    #[test]
    fn requested_devices_come_from_the_field_then_the_annotations() {
        let annotations = HashMap::from([
            (
                "cdi.k8s.io/b_plugin".to_string(),
                "v.com/c=2, v.com/c=0".to_string(),
            ),
            ("cdi.k8s.io/a_plugin".to_string(), "v.com/c=1".to_string()),
            ("other.io/x".to_string(), "not a device".to_string()),
        ]);
        let names = requested(&["v.com/c=0".into()], &annotations).unwrap();
        let names: Vec<String> = names.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["v.com/c=0", "v.com/c=1", "v.com/c=2"]);

        let bad = HashMap::from([("cdi.k8s.io/p".to_string(), "v.com/c=1,oops".to_string())]);
        let err = requested(&[], &bad).unwrap_err().to_string();
        assert!(err.contains("oops"), "{err}");
        assert!(requested(&[], &HashMap::new()).unwrap().is_empty());
    }
}
