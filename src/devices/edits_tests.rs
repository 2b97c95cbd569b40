//! Applying CDI edits to an OCI spec.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxDeviceType, Spec};

use super::*;
use crate::devices::schema::{
    ContainerEdits, Hook as CdiHook, IntelRdt, Mount as CdiMount, NetDevice,
};

fn node(path: &str, major: i64, minor: i64, access: Option<&str>) -> HostNode {
    HostNode {
        path: PathBuf::from(path),
        typ: LinuxDeviceType::C,
        major,
        minor,
        file_mode: Some(0o666),
        uid: None,
        gid: None,
        access: access.map(Into::into),
    }
}

fn step(device: &str, edits: ContainerEdits, nodes: Vec<HostNode>) -> Step {
    Step {
        device: device.into(),
        edits,
        nodes,
    }
}

fn bind(host: &str, inside: &str) -> CdiMount {
    CdiMount {
        host_path: host.into(),
        container_path: inside.into(),
        options: vec!["ro".into(), "bind".into()],
        typ: None,
    }
}

fn hook(name: &str) -> CdiHook {
    CdiHook {
        hook_name: name.into(),
        path: "/usr/bin/vendor-hook".into(),
        args: vec!["vendor-hook".into(), name.into()],
        env: vec![],
        timeout: Some(5),
    }
}

#[test]
fn nodes_env_mounts_and_groups_are_applied() {
    let mut spec = Spec::default();
    let before_rules = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default()
        .len();
    let edits = ContainerEdits {
        env: vec!["VENDOR=1".into(), "TERM=vt100".into()],
        mounts: vec![
            bind("/opt/vendor/lib", "/usr/lib/vendor"),
            bind("/opt/vendor", "/opt"),
        ],
        additional_gids: vec![0, 44, 44],
        ..Default::default()
    };
    let nodes = vec![
        node("/dev/vendor0", 1, 3, Some("rw")),
        node("/dev/quiet", 1, 5, None),
    ];
    apply(
        &mut spec,
        &[step("v.com/c=0", edits, nodes)],
        Handler::BuiltIn,
    )
    .unwrap();

    let env = spec.process().as_ref().unwrap().env().clone().unwrap();
    assert!(env.contains(&"VENDOR=1".to_string()), "{env:?}");
    assert!(env.contains(&"TERM=vt100".to_string()), "{env:?}");
    assert_eq!(
        env.iter().filter(|e| e.starts_with("TERM=")).count(),
        1,
        "{env:?}"
    );

    let linux = spec.linux().as_ref().unwrap();
    let devices = linux.devices().clone().unwrap();
    let vendor = devices
        .iter()
        .find(|d| d.path() == &PathBuf::from("/dev/vendor0"))
        .unwrap();
    assert_eq!(
        (vendor.typ(), vendor.major(), vendor.minor()),
        (LinuxDeviceType::C, 1, 3)
    );
    assert!(
        devices
            .iter()
            .any(|d| d.path() == &PathBuf::from("/dev/quiet"))
    );
    let rules = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .clone()
        .unwrap();
    assert_eq!(
        rules.len(),
        before_rules + 1,
        "only the node with permissions gets a rule"
    );
    let rule = rules.last().unwrap();
    assert_eq!(
        (
            rule.allow(),
            rule.typ(),
            rule.major(),
            rule.minor(),
            rule.access().as_deref()
        ),
        (true, Some(LinuxDeviceType::C), Some(1), Some(3), Some("rw"))
    );

    let mounts = spec.mounts().clone().unwrap();
    let at = |dest: &str| {
        mounts
            .iter()
            .position(|m| m.destination() == &PathBuf::from(dest))
    };
    let lib = &mounts[at("/usr/lib/vendor").unwrap()];
    assert_eq!(lib.typ().as_deref(), Some("bind"));
    assert_eq!(
        lib.source().as_deref(),
        Some(std::path::Path::new("/opt/vendor/lib"))
    );
    assert!(at("/opt").unwrap() < at("/usr/lib/vendor").unwrap());
    assert!(at("/proc").unwrap() < at("/usr/lib/vendor").unwrap());

    let gids = spec
        .process()
        .as_ref()
        .unwrap()
        .user()
        .additional_gids()
        .clone()
        .unwrap();
    assert_eq!(gids.iter().filter(|g| **g == 44).count(), 1, "{gids:?}");
    assert!(!gids.contains(&0) || spec.process().as_ref().unwrap().user().gid() == 0);
}

#[test]
fn a_node_replaces_one_at_its_path_and_a_mount_one_at_its_destination() {
    let mut spec = Spec::default();
    let first = step(
        "v.com/c=a",
        ContainerEdits {
            mounts: vec![bind("/a", "/dev/shm")],
            ..Default::default()
        },
        vec![node("/dev/x", 1, 3, Some("r"))],
    );
    let second = step(
        "v.com/c=b",
        ContainerEdits::default(),
        vec![node("/dev/x", 1, 5, Some("r"))],
    );
    apply(&mut spec, &[first, second], Handler::BuiltIn).unwrap();
    let devices = spec.linux().as_ref().unwrap().devices().clone().unwrap();
    let x: Vec<_> = devices
        .iter()
        .filter(|d| d.path() == &PathBuf::from("/dev/x"))
        .collect();
    assert_eq!(x.len(), 1);
    assert_eq!(x[0].minor(), 5);
    let shm: Vec<_> = spec
        .mounts()
        .clone()
        .unwrap()
        .into_iter()
        .filter(|m| m.destination() == &PathBuf::from("/dev/shm"))
        .collect();
    assert_eq!(shm.len(), 1);
    assert_eq!(shm[0].source().as_deref(), Some(std::path::Path::new("/a")));
}

#[test]
fn node_owner_defaults_to_the_container_user() {
    let mut spec = Spec::default();
    let mut process = spec.process().clone().unwrap();
    let mut user = process.user().clone();
    user.set_uid(1000).set_gid(2000);
    process.set_user(user);
    spec.set_process(Some(process));
    let mut owned = node("/dev/owned", 1, 3, Some("rw"));
    owned.uid = Some(7);
    let nodes = vec![node("/dev/plain", 1, 5, Some("rw")), owned];
    apply(
        &mut spec,
        &[step("v.com/c=a", ContainerEdits::default(), nodes)],
        Handler::BuiltIn,
    )
    .unwrap();
    let devices = spec.linux().as_ref().unwrap().devices().clone().unwrap();
    let get = |p: &str| {
        devices
            .iter()
            .find(|d| d.path() == &PathBuf::from(p))
            .unwrap()
            .clone()
    };
    assert_eq!(
        (get("/dev/plain").uid(), get("/dev/plain").gid()),
        (Some(1000), Some(2000))
    );
    assert_eq!(
        (get("/dev/owned").uid(), get("/dev/owned").gid()),
        (Some(7), Some(2000))
    );
}

#[test]
fn hooks_and_rdt_go_to_an_external_runtime_and_are_refused_by_the_built_in_one() {
    let edits = ContainerEdits {
        hooks: vec![hook("createContainer"), hook("poststop"), hook("prestart")],
        intel_rdt: Some(IntelRdt {
            clos_id: Some("gold".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let steps = [step("v.com/c=hooked", edits, vec![])];
    let mut spec = Spec::default();
    let err = apply(&mut spec, &steps, Handler::BuiltIn).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("v.com/c=hooked") && text.contains("built-in"),
        "{text}"
    );
    assert_eq!(
        crate::error::Classify::kind(&err),
        crate::error::Kind::InvalidArgument
    );
    assert_eq!(
        spec,
        Spec::default(),
        "nothing is applied when a step is refused"
    );

    apply(&mut spec, &steps, Handler::External("runc")).unwrap();
    let hooks = spec.hooks().clone().unwrap();
    let create = hooks.create_container().clone().unwrap();
    assert_eq!(create[0].path(), &PathBuf::from("/usr/bin/vendor-hook"));
    assert_eq!(create[0].timeout(), Some(5));
    assert_eq!(hooks.poststop().as_ref().unwrap().len(), 1);
    #[allow(deprecated)]
    let prestart = hooks.prestart().as_ref().unwrap().len();
    assert_eq!(prestart, 1);
    let rdt = spec.linux().as_ref().unwrap().intel_rdt().clone().unwrap();
    assert_eq!(rdt.clos_id().as_deref(), Some("gold"));
}

#[test]
fn what_no_handler_can_do_is_refused() {
    let net = ContainerEdits {
        net_devices: vec![NetDevice {
            host_interface_name: "eth1".into(),
            name: "net1".into(),
        }],
        ..Default::default()
    };
    let schemata = ContainerEdits {
        intel_rdt: Some(IntelRdt {
            schemata: Some(vec!["L3:0=f".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    for (edits, why) in [(net, "netDevices"), (schemata, "schemata")] {
        let mut spec = Spec::default();
        let err = apply(
            &mut spec,
            &[step("v.com/c=x", edits, vec![])],
            Handler::External("runc"),
        )
        .unwrap_err();
        assert!(err.to_string().contains(why), "{err}");
    }
}

#[test]
fn env_reaches_the_exact_bytes_annotation_too() {
    let mut spec = Spec::default();
    let raw = vec![b"A=\xff".to_vec(), b"B=1".to_vec()];
    let (env, exact) = raw_env::split(&raw);
    let mut process = spec.process().clone().unwrap();
    process.set_env(Some(env));
    spec.set_process(Some(process));
    spec.set_annotations(Some(
        [(raw_env::ANNOTATION.to_string(), exact.unwrap())].into(),
    ));
    let edits = ContainerEdits {
        env: vec!["B=2".into(), "C=3".into()],
        ..Default::default()
    };
    apply(
        &mut spec,
        &[step("v.com/c=x", edits, vec![])],
        Handler::BuiltIn,
    )
    .unwrap();
    let annotation = spec.annotations().as_ref().unwrap()[raw_env::ANNOTATION].clone();
    let decoded = raw_env::decode(&annotation).unwrap();
    assert_eq!(
        decoded,
        [b"A=\xff".to_vec(), b"B=2".to_vec(), b"C=3".to_vec()]
    );
}
