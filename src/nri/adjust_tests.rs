//! Adjustments on a spec: each kind applied, removals, and conflicts between plugins.

use std::collections::HashMap;

use oci_spec::runtime::{ProcessBuilder, Spec};
use protobuf::MessageField;

use super::*;

fn spec() -> Spec {
    let mut spec = Spec::default();
    let process = ProcessBuilder::default()
        .args(vec!["/app".to_string()])
        .env(vec!["PATH=/bin".to_string(), "GONE=1".to_string()])
        .build()
        .unwrap();
    spec.set_process(Some(process));
    spec.set_annotations(Some(HashMap::from([("old".to_string(), "1".to_string())])));
    spec
}

fn kv(key: &str, value: &str) -> api::KeyValue {
    let mut kv = api::KeyValue::new();
    kv.key = key.into();
    kv.value = value.into();
    kv
}

#[test]
fn annotations_env_args_mounts_and_rlimits_are_applied() {
    let mut adj = api::ContainerAdjustment::new();
    adj.annotations.insert("added".into(), "yes".into());
    adj.annotations.insert("-old".into(), String::new());
    adj.env = vec![kv("NEW", "v"), kv("-GONE", "")];
    adj.args = vec![String::new(), "/other".into(), "-x".into()];
    let mut mount = api::Mount::new();
    mount.destination = "/data".into();
    mount.source = "/srv".into();
    mount.type_ = "bind".into();
    mount.options = vec!["rbind".into(), "ro".into()];
    adj.mounts.push(mount);
    let mut rlimit = api::POSIXRlimit::new();
    rlimit.type_ = "RLIMIT_NOFILE".into();
    rlimit.hard = 2048;
    rlimit.soft = 1024;
    adj.rlimits.push(rlimit);
    let mut spec = spec();
    Adjuster::new("c1", false)
        .apply("10-a", &adj, &mut spec)
        .unwrap();

    let annotations = spec.annotations().clone().unwrap();
    assert_eq!(annotations.get("added").map(String::as_str), Some("yes"));
    assert!(!annotations.contains_key("old"));
    let process = spec.process().clone().unwrap();
    assert_eq!(
        process.env().clone().unwrap(),
        vec!["PATH=/bin".to_string(), "NEW=v".to_string()]
    );
    assert_eq!(process.args().clone().unwrap(), vec!["/other", "-x"]);
    let limits = process.rlimits().clone().unwrap();
    assert_eq!((limits[0].hard(), limits[0].soft()), (2048, 1024));
    let mounts = spec.mounts().clone().unwrap();
    let data = mounts
        .iter()
        .find(|m| m.destination().to_str() == Some("/data"))
        .expect("the mount was added");
    assert_eq!(data.source().as_deref(), Some(std::path::Path::new("/srv")));
}

#[test]
fn linux_resources_oom_score_and_cgroups_path_are_applied() {
    let mut cpu = api::LinuxCPU::new();
    cpu.cpus = "0-1".into();
    let mut shares = api::OptionalUInt64::new();
    shares.value = 512;
    cpu.shares = MessageField::some(shares);
    let mut memory = api::LinuxMemory::new();
    let mut limit = api::OptionalInt64::new();
    limit.value = 64 << 20;
    memory.limit = MessageField::some(limit);
    let mut resources = api::LinuxResources::new();
    resources.cpu = MessageField::some(cpu);
    resources.memory = MessageField::some(memory);
    let mut linux = api::LinuxContainerAdjustment::new();
    linux.resources = MessageField::some(resources);
    linux.cgroups_path = "/custom/c1".into();
    let mut oom = api::OptionalInt::new();
    oom.value = 500;
    linux.oom_score_adj = MessageField::some(oom);
    let mut device = api::LinuxDevice::new();
    device.path = "/dev/fake".into();
    device.type_ = "c".into();
    device.major = 1;
    device.minor = 3;
    linux.devices.push(device);
    let mut adj = api::ContainerAdjustment::new();
    adj.linux = MessageField::some(linux);
    let mut spec = spec();
    Adjuster::new("c1", false)
        .apply("10-a", &adj, &mut spec)
        .unwrap();

    let l = spec.linux().clone().unwrap();
    let r = l.resources().clone().unwrap();
    assert_eq!(r.cpu().clone().unwrap().cpus().as_deref(), Some("0-1"));
    assert_eq!(r.cpu().clone().unwrap().shares(), Some(512));
    assert_eq!(r.memory().unwrap().limit(), Some(64 << 20));
    assert_eq!(
        l.cgroups_path().as_deref(),
        Some(std::path::Path::new("/custom/c1"))
    );
    assert_eq!(l.devices().clone().unwrap()[0].major(), 1);
    assert_eq!(spec.process().clone().unwrap().oom_score_adj(), Some(500));
}

#[test]
fn two_plugins_adjusting_the_same_thing_conflict() {
    let mut first = api::ContainerAdjustment::new();
    first.env = vec![kv("SHARED", "a")];
    let mut second = api::ContainerAdjustment::new();
    second.env = vec![kv("SHARED", "b")];
    let mut spec = spec();
    let mut adjuster = Adjuster::new("c1", false);
    adjuster.apply("10-a", &first, &mut spec).unwrap();
    let err = adjuster.apply("20-b", &second, &mut spec).unwrap_err();
    assert!(matches!(err, NriError::Conflict { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("10-a") && message.contains("20-b") && message.contains("SHARED"),
        "{message}"
    );
    assert_eq!(
        crate::error::Classify::kind(&err),
        crate::error::Kind::FailedPrecondition
    );

    // Different items from two plugins are fine.
    let mut third = api::ContainerAdjustment::new();
    third.annotations.insert("k".into(), "v".into());
    adjuster.apply("30-c", &third, &mut spec).unwrap();
}

#[test]
fn what_berth_cannot_adjust_is_refused_by_name() {
    let mut linux = api::LinuxContainerAdjustment::new();
    linux
        .sysctl
        .insert("net.core.somaxconn".into(), "1024".into());
    let mut adj = api::ContainerAdjustment::new();
    adj.linux = MessageField::some(linux);
    let err = Adjuster::new("c1", false)
        .apply("10-a", &adj, &mut spec())
        .unwrap_err();
    assert!(err.to_string().contains("sysctls"), "{err}");
    assert_eq!(
        crate::error::Classify::kind(&err),
        crate::error::Kind::InvalidArgument
    );
}

#[test]
fn hooks_and_a_cgroups_path_are_refused_for_the_built_in_executor_only() {
    let mut hook = api::Hook::new();
    hook.path = "/usr/local/bin/hook".into();
    let mut hooks = api::Hooks::new();
    hooks.create_runtime = vec![hook];
    let mut with_hooks = api::ContainerAdjustment::new();
    with_hooks.hooks = MessageField::some(hooks);
    let mut linux = api::LinuxContainerAdjustment::new();
    linux.cgroups_path = "/elsewhere".into();
    let mut with_cgroups = api::ContainerAdjustment::new();
    with_cgroups.linux = MessageField::some(linux);

    for (adj, what) in [(&with_hooks, "OCI hooks"), (&with_cgroups, "cgroups path")] {
        let mut spec = spec();
        let err = Adjuster::new("c1", true)
            .apply("10-a", adj, &mut spec)
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(what) && message.contains("10-a") && message.contains("built-in"),
            "{message}"
        );
        assert_eq!(
            crate::error::Classify::kind(&err),
            crate::error::Kind::InvalidArgument
        );
        assert!(
            spec.hooks().is_none(),
            "nothing of a refused adjustment lands"
        );
    }

    // An external runtime (runc, crun) gets both.
    let mut spec = spec();
    let mut adjuster = Adjuster::new("c1", false);
    adjuster.apply("10-a", &with_hooks, &mut spec).unwrap();
    adjuster.apply("10-a", &with_cgroups, &mut spec).unwrap();
    let runtime_hooks = spec
        .hooks()
        .clone()
        .unwrap()
        .create_runtime()
        .clone()
        .unwrap();
    assert_eq!(
        runtime_hooks[0].path().to_str(),
        Some("/usr/local/bin/hook")
    );
    let cgroups = spec.linux().clone().unwrap().cgroups_path().clone();
    assert_eq!(cgroups.unwrap().to_str(), Some("/elsewhere"));
}
