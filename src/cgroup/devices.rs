//! The device policy of a cgroup: the OCI `linux.resources.devices` rules, checked, and written
//! as cgroup v1 `devices.deny`/`devices.allow` lines or compiled (see `device_bpf.rs`) into the
//! cgroup v2 device program.
//!
//! OCI semantics: rules apply in order and a later rule overrides an earlier one for the devices
//! both match. On v1 the kernel keeps a default (allow or deny all) plus exceptions; writing the
//! rules in order gives the same answer for the lists runtimes use (a leading `a` rule that sets
//! the default, then exceptions), which is what runc did before its emulator.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::Cgroup;
use super::CgroupError;
use super::fs::{Result, write};
use super::v1::dir as v1_dir_of;

/// `access` bits, as the kernel's device program sees them (`BPF_DEVCG_ACC_*`).
pub(crate) const ACC_MKNOD: u32 = 1;
pub(crate) const ACC_READ: u32 = 2;
pub(crate) const ACC_WRITE: u32 = 4;
pub(crate) const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One rule as the OCI spec gives it; [`DeviceRule::check`] validates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    /// `a` (all), `c` (character, also OCI `u`) or `b` (block); anything else is refused.
    pub kind: char,
    /// `None` matches every major (`*`).
    pub major: Option<i64>,
    pub minor: Option<i64>,
    /// A non-empty subset of `rwm`.
    pub access: String,
}

/// A checked rule in kernel terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    pub allow: bool,
    /// `None` for all types, else `BPF_DEVCG_DEV_BLOCK` (1) or `BPF_DEVCG_DEV_CHAR` (2).
    pub kind: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// `ACC_*` bits.
    pub access: u32,
}

impl Checked {
    /// Matches every device and every access.
    pub fn is_catch_all(&self) -> bool {
        self.kind.is_none()
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACC_ALL
    }
}

impl From<&LinuxDeviceCgroup> for DeviceRule {
    fn from(r: &LinuxDeviceCgroup) -> DeviceRule {
        DeviceRule {
            allow: r.allow(),
            kind: match r.typ().unwrap_or(LinuxDeviceType::A) {
                LinuxDeviceType::A => 'a',
                LinuxDeviceType::B => 'b',
                LinuxDeviceType::C | LinuxDeviceType::U => 'c',
                LinuxDeviceType::P => 'p',
            },
            major: r.major(),
            minor: r.minor(),
            access: r.access().clone().unwrap_or_else(|| "rwm".into()),
        }
    }
}

impl DeviceRule {
    /// The rule in kernel terms, or why it cannot be enforced.
    pub(crate) fn check(&self) -> std::result::Result<Checked, String> {
        let kind = match self.kind {
            'a' => None,
            'c' => Some(2),
            'b' => Some(1),
            other => return Err(format!("device type {other:?} cannot be in a device rule")),
        };
        let number = |n: Option<i64>, what: &str| match n {
            None => Ok(None),
            // Linux majors have 12 bits and minors 20; anything past i32 cannot be a device.
            Some(n) => i32::try_from(n)
                .ok()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| format!("device {what} number {n} is out of range")),
        };
        let mut access = 0;
        for c in self.access.chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => {
                    return Err(format!(
                        "device access {:?} is not a subset of rwm",
                        self.access
                    ));
                }
            };
        }
        if access == 0 {
            return Err("device access is empty".into());
        }
        Ok(Checked {
            allow: self.allow,
            kind,
            major: number(self.major, "major")?,
            minor: number(self.minor, "minor")?,
            access,
        })
    }
}

/// Checks every rule; the error names the cgroup and the first bad rule.
pub(crate) fn check_all(cg: &Cgroup, rules: &[DeviceRule]) -> Result<Vec<Checked>> {
    rules
        .iter()
        .map(|r| {
            r.check().map_err(|reason| CgroupError::InvalidResources {
                cgroup: cg.path(),
                reason,
            })
        })
        .collect()
}

/// The v1 file and lines of one rule: `("devices.deny", ["a"])`, `("devices.allow",
/// ["c 1:3 rwm"])`. A rule for all types that names numbers becomes a `c` and a `b` line (the
/// kernel reads any `a` line as "everything").
pub(crate) fn v1_lines(rule: &Checked) -> (&'static str, Vec<String>) {
    let file = if rule.allow {
        "devices.allow"
    } else {
        "devices.deny"
    };
    if rule.is_catch_all() {
        return (file, vec!["a".into()]);
    }
    let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |n| n.to_string());
    let mut access = String::new();
    for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
        if rule.access & bit != 0 {
            access.push(c);
        }
    }
    let kinds: &[char] = match rule.kind {
        None => &['c', 'b'],
        Some(1) => &['b'],
        Some(_) => &['c'],
    };
    let lines = kinds
        .iter()
        .map(|k| format!("{k} {}:{} {access}", num(rule.major), num(rule.minor)))
        .collect();
    (file, lines)
}

/// cgroup v1: writes the rules in order into the cgroup's `devices` hierarchy. Without that
/// hierarchy no policy can be enforced, which is an error.
pub(crate) fn apply_v1(cg: &Cgroup, rules: &[DeviceRule]) -> Result<()> {
    let checked = check_all(cg, rules)?;
    let dir = v1_dir_of(cg, "devices")?;
    for rule in &checked {
        let (file, lines) = v1_lines(rule);
        for line in lines {
            write(&dir.join(file), &line)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        kind: char,
        major: Option<i64>,
        minor: Option<i64>,
        a: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: a.into(),
        }
    }

    #[test]
    fn rules_become_v1_lines() {
        let cases = [
            (
                rule(false, 'a', None, None, "rwm"),
                "devices.deny",
                vec!["a"],
            ),
            (
                rule(true, 'a', None, None, "rwm"),
                "devices.allow",
                vec!["a"],
            ),
            (
                rule(true, 'c', None, None, "m"),
                "devices.allow",
                vec!["c *:* m"],
            ),
            (
                rule(true, 'c', Some(1), Some(3), "rwm"),
                "devices.allow",
                vec!["c 1:3 rwm"],
            ),
            (
                rule(true, 'c', Some(136), None, "wr"),
                "devices.allow",
                vec!["c 136:* rw"],
            ),
            (
                rule(false, 'b', Some(8), Some(0), "r"),
                "devices.deny",
                vec!["b 8:0 r"],
            ),
            (
                rule(true, 'a', Some(1), None, "r"),
                "devices.allow",
                vec!["c 1:* r", "b 1:* r"],
            ),
            (
                rule(true, 'a', None, None, "r"),
                "devices.allow",
                vec!["c *:* r", "b *:* r"],
            ),
        ];
        for (r, file, lines) in cases {
            let (f, l) = v1_lines(&r.check().unwrap());
            assert_eq!(
                (f, l),
                (file, lines.iter().map(|s| s.to_string()).collect()),
                "{r:?}"
            );
        }
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            rule(true, 'p', None, None, "rwm"),
            rule(true, 'c', Some(-1), None, "rwm"),
            rule(true, 'c', Some(1), Some(1 << 40), "rwm"),
            rule(true, 'c', None, None, ""),
            rule(true, 'c', None, None, "rwx"),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn oci_rules_convert_with_their_defaults() {
        let mut oci = LinuxDeviceCgroup::default();
        oci.set_allow(true).set_typ(Some(LinuxDeviceType::U));
        let r = DeviceRule::from(&oci);
        assert_eq!(r, rule(true, 'c', None, None, "rwm"));
        let oci = LinuxDeviceCgroup::default();
        assert_eq!(DeviceRule::from(&oci).kind, 'a');
    }
}
