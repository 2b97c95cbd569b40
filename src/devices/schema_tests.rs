//! Parsing and validation of CDI spec files.

use std::path::Path;

use super::*;

const YAML: &str = r#"
cdiVersion: "0.6.0"
kind: vendor.com/gpu
annotations: {note: x}
devices:
  - name: "0"
    containerEdits:
      deviceNodes:
        - path: /dev/vendor0
          hostPath: /dev/null
          permissions: rw
  - name: all
    containerEdits:
      env: [ALL=1]
containerEdits:
  env: [VENDOR=1]
  mounts:
    - hostPath: /usr/lib/vendor
      containerPath: /usr/lib/vendor
      options: [ro, nosuid, nodev, bind]
  hooks:
    - hookName: createContainer
      path: /usr/bin/vendor-hook
      args: [vendor-hook, update]
"#;

fn yaml(text: &str) -> Result<SpecFile, String> {
    parse(Path::new("/etc/cdi/x.yaml"), text)
}

fn json(text: &str) -> Result<SpecFile, String> {
    parse(Path::new("/etc/cdi/x.json"), text)
}

#[test]
fn a_yaml_spec_parses_with_its_devices_and_common_edits() {
    let spec = yaml(YAML).unwrap();
    assert_eq!(spec.kind, "vendor.com/gpu");
    assert_eq!(spec.devices.len(), 2);
    let node = &spec.devices[0].container_edits.device_nodes[0];
    assert_eq!(node.host_path.as_deref(), Some("/dev/null"));
    assert_eq!(node.permissions.as_deref(), Some("rw"));
    assert_eq!(spec.container_edits.env, ["VENDOR=1"]);
    assert_eq!(spec.container_edits.hooks[0].hook_name, "createContainer");
    assert!(is_bind(&spec.container_edits.mounts[0]));
}

#[test]
fn a_json_spec_of_the_current_version_parses() {
    let text = r#"{
        "cdiVersion": "1.1.0",
        "kind": "vendor.com/net",
        "devices": [{"name": "a", "containerEdits": {"additionalGids": [44, 0],
            "intelRdt": {"closID": "gold", "schemata": ["L3:0=f"]}}}]
    }"#;
    let spec = json(text).unwrap();
    let edits = &spec.devices[0].container_edits;
    assert_eq!(edits.additional_gids, [44, 0]);
    assert_eq!(
        edits.intel_rdt.as_ref().unwrap().clos_id.as_deref(),
        Some("gold")
    );
}

#[test]
fn unknown_fields_and_versions_are_refused() {
    let unknown = YAML.replace("permissions: rw", "permissions: rw\n          surprise: 1");
    let err = yaml(&unknown).unwrap_err();
    assert!(err.contains("surprise"), "{err}");
    let err = yaml(&YAML.replace("0.6.0", "9.9.9")).unwrap_err();
    assert!(err.contains("unknown cdiVersion"), "{err}");
    // Annotations and a hostPath need 0.6.0 and 0.5.0.
    let err = yaml(&YAML.replace("0.6.0", "0.3.0")).unwrap_err();
    assert!(err.contains("at least 0.6.0"), "{err}");
    assert!(yaml(&YAML.replace("0.6.0", "v1.0.0")).is_ok());
}

#[test]
fn version_requirements_follow_the_fields_used() {
    let base = |edits: &str| {
        format!(
            "{{\"cdiVersion\": \"0.3.0\", \"kind\": \"v.com/c\", \"devices\": [{{\"name\": \"a\", \"containerEdits\": {edits}}}]}}"
        )
    };
    for (edits, needed) in [
        (r#"{"env": ["A=1"]}"#, None),
        (
            r#"{"mounts": [{"hostPath": "/a", "containerPath": "/a", "type": "bind"}]}"#,
            Some("0.4.0"),
        ),
        (
            r#"{"deviceNodes": [{"path": "/dev/a", "hostPath": "/dev/b"}]}"#,
            Some("0.5.0"),
        ),
        (r#"{"additionalGids": [5]}"#, Some("0.7.0")),
        (r#"{"intelRdt": {"enableMonitoring": true}}"#, Some("1.1.0")),
        (
            r#"{"netDevices": [{"hostInterfaceName": "eth1", "name": "net1"}]}"#,
            Some("1.1.0"),
        ),
    ] {
        let result = json(&base(edits));
        match needed {
            None => assert!(result.is_ok(), "{edits}: {result:?}"),
            Some(v) => {
                let err = result.unwrap_err();
                assert!(err.contains(&format!("at least {v}")), "{edits}: {err}");
            }
        }
    }
    let cmt = r#"{"cdiVersion": "1.1.0", "kind": "v.com/c", "devices": [{"name": "a",
        "containerEdits": {"intelRdt": {"enableCMT": true}}}]}"#;
    assert!(json(cmt).unwrap_err().contains("removed in CDI 1.1.0"));
    assert!(json(&cmt.replace("1.1.0", "0.7.0")).is_ok());
}

/// Hostile specs: every field that reaches the OCI spec or the host is checked.
#[test]
fn hostile_specs_are_refused() {
    let with_edits = |edits: &str| {
        format!(
            "{{\"cdiVersion\": \"1.1.0\", \"kind\": \"v.com/c\", \"devices\": [{{\"name\": \"a\", \"containerEdits\": {edits}}}]}}"
        )
    };
    for (edits, why) in [
        (
            r#"{"deviceNodes": [{"path": "dev/x"}]}"#,
            "not an absolute path",
        ),
        (
            r#"{"deviceNodes": [{"path": "/dev/../../etc/shadow"}]}"#,
            "\"..\"",
        ),
        (
            r#"{"deviceNodes": [{"path": "/dev/x", "hostPath": "/dev/../etc"}]}"#,
            "\"..\"",
        ),
        (
            r#"{"deviceNodes": [{"path": "/dev/x", "type": "s"}]}"#,
            "invalid type",
        ),
        (
            r#"{"deviceNodes": [{"path": "/dev/x", "type": "a"}]}"#,
            "invalid type",
        ),
        (
            r#"{"deviceNodes": [{"path": "/dev/x", "permissions": "rwx"}]}"#,
            "invalid permissions",
        ),
        (
            r#"{"deviceNodes": [{"path": "/dev/x", "major": -1}]}"#,
            "out of range",
        ),
        (
            r#"{"deviceNodes": [{"path": "/dev/x", "minor": 4294967296}]}"#,
            "out of range",
        ),
        (
            r#"{"mounts": [{"hostPath": "/h", "containerPath": "/../../host", "options": ["bind"]}]}"#,
            "\"..\"",
        ),
        (
            r#"{"mounts": [{"hostPath": "relative", "containerPath": "/x", "options": ["rbind"]}]}"#,
            "not an absolute path",
        ),
        (
            r#"{"mounts": [{"hostPath": "/h", "containerPath": "/x"}]}"#,
            "neither a bind mount",
        ),
        (
            r#"{"mounts": [{"hostPath": "/dev/sda", "containerPath": "/x", "type": "ext4"}]}"#,
            "not allowed",
        ),
        (
            r#"{"hooks": [{"hookName": "whenever", "path": "/bin/true"}]}"#,
            "invalid hook name",
        ),
        (
            r#"{"hooks": [{"hookName": "poststop", "path": "true"}]}"#,
            "not an absolute path",
        ),
        (
            r#"{"hooks": [{"hookName": "poststop", "path": "/bin/true", "timeout": 0}]}"#,
            "timeout",
        ),
        (r#"{"env": ["=x"]}"#, "NAME=value"),
        (r#"{"env": ["NOEQUALS"]}"#, "NAME=value"),
        (r#"{"intelRdt": {"closID": "../x"}}"#, "closID"),
        (
            r#"{"netDevices": [{"hostInterfaceName": "eth1", "name": "a"}, {"hostInterfaceName": "eth1", "name": "b"}]}"#,
            "twice",
        ),
        (r#"{}"#, "no container edits"),
    ] {
        let err = json(&with_edits(edits)).unwrap_err();
        assert!(err.contains(why), "{edits}: {err}");
    }
    for (kind, name) in [
        ("vendor.com", "a"),
        ("vendor.com/c/d", "a"),
        ("v.com/c", "-a"),
        ("v.com/c", "a/b"),
    ] {
        let text = format!(
            "{{\"cdiVersion\": \"1.1.0\", \"kind\": \"{kind}\", \"devices\": [{{\"name\": \"{name}\", \"containerEdits\": {{\"env\": [\"A=1\"]}}}}]}}"
        );
        assert!(json(&text).is_err(), "{kind} {name}");
    }
    let twice = r#"{"cdiVersion": "1.1.0", "kind": "v.com/c", "devices": [
        {"name": "a", "containerEdits": {"env": ["A=1"]}},
        {"name": "a", "containerEdits": {"env": ["A=2"]}}]}"#;
    assert!(json(twice).unwrap_err().contains("defined twice"));
    let no_devices = r#"{"cdiVersion": "1.1.0", "kind": "v.com/c", "devices": []}"#;
    assert!(json(no_devices).unwrap_err().contains("no devices"));
}
