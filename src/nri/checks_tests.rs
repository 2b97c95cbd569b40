//! Hostile adjustments: each is refused as `InvalidArgument`, naming the plugin and the item,
//! before anything of it reaches the spec.

use oci_spec::runtime::{ProcessBuilder, Spec};
use protobuf::MessageField;

use crate::error::{Classify, Kind};
use crate::nri::adjust::Adjuster;
use crate::nri::api;

fn spec() -> Spec {
    let mut spec = Spec::default();
    let process = ProcessBuilder::default()
        .args(vec!["/app".to_string()])
        .env(vec!["PATH=/bin".to_string(), "SECRET=1".to_string()])
        .build()
        .unwrap();
    spec.set_process(Some(process));
    spec
}

fn env(key: &str, value: &str) -> api::ContainerAdjustment {
    let mut kv = api::KeyValue::new();
    kv.key = key.into();
    kv.value = value.into();
    let mut adj = api::ContainerAdjustment::new();
    adj.env.push(kv);
    adj
}

fn mount(destination: &str) -> api::ContainerAdjustment {
    let mut m = api::Mount::new();
    m.destination = destination.into();
    m.source = "/srv".into();
    m.type_ = "bind".into();
    m.options = vec!["rbind".into()];
    let mut adj = api::ContainerAdjustment::new();
    adj.mounts.push(m);
    adj
}

fn linux(f: impl FnOnce(&mut api::LinuxContainerAdjustment)) -> api::ContainerAdjustment {
    let mut linux = api::LinuxContainerAdjustment::new();
    f(&mut linux);
    let mut adj = api::ContainerAdjustment::new();
    adj.linux = MessageField::some(linux);
    adj
}

fn resources(f: impl FnOnce(&mut api::LinuxResources)) -> api::ContainerAdjustment {
    linux(|l| {
        let mut r = api::LinuxResources::new();
        f(&mut r);
        l.resources = MessageField::some(r);
    })
}

fn device(path: &str) -> api::ContainerAdjustment {
    linux(|l| {
        let mut d = api::LinuxDevice::new();
        d.path = path.into();
        d.type_ = "c".into();
        d.major = 1;
        d.minor = 3;
        l.devices.push(d);
    })
}

fn oom(value: i64) -> api::ContainerAdjustment {
    linux(|l| {
        let mut v = api::OptionalInt::new();
        v.value = value;
        l.oom_score_adj = MessageField::some(v);
    })
}

fn hook(path: &str) -> api::ContainerAdjustment {
    let mut h = api::Hook::new();
    h.path = path.into();
    let mut hooks = api::Hooks::new();
    hooks.create_runtime = vec![h];
    let mut adj = api::ContainerAdjustment::new();
    adj.hooks = MessageField::some(hooks);
    adj
}

fn hostile() -> Vec<(&'static str, api::ContainerAdjustment)> {
    let mut args = api::ContainerAdjustment::new();
    args.args = vec!["/bin/sh".into(), "-c\0rm".into()];
    let mut rlimit = api::POSIXRlimit::new();
    rlimit.type_ = "RLIMIT_NOFILE".into();
    rlimit.soft = 1 << 20;
    rlimit.hard = 1024;
    let mut rlimits = api::ContainerAdjustment::new();
    rlimits.rlimits.push(rlimit);
    vec![
        ("env", env("A", "x\0y")),
        ("env", env("A\0", "x")),
        // `SECRET=` as a name: it would own "SECRET=" rather than "SECRET" and override it.
        ("env", env("SECRET=", "stolen")),
        ("env", env("", "x")),
        ("args", args),
        ("mount", mount("data")),
        ("mount", mount("/data/../../etc")),
        ("mount", mount("/da\0ta")),
        ("device", device("dev/null2")),
        ("device", device("/dev/../etc/shadow")),
        ("rlimit", rlimits),
        ("oom_score_adj", oom(-1001)),
        ("oom_score_adj", oom(5000)),
        ("hook", hook("relative/hook")),
        ("cgroups path", linux(|l| l.cgroups_path = "/a\0b".into())),
        (
            "cpuset",
            resources(|r| {
                let mut cpu = api::LinuxCPU::new();
                cpu.cpus = "0-1\n+memory".into();
                r.cpu = MessageField::some(cpu);
            }),
        ),
        (
            "unified",
            resources(|r| {
                r.unified.insert("../cgroup.procs".into(), "1".into());
            }),
        ),
        (
            "memory limit",
            resources(|r| {
                let mut m = api::LinuxMemory::new();
                let mut v = api::OptionalInt64::new();
                v.value = -5;
                m.limit = MessageField::some(v);
                r.memory = MessageField::some(m);
            }),
        ),
    ]
}

#[test]
fn hostile_adjustments_are_refused_before_reaching_the_spec() {
    for (what, adj) in hostile() {
        let mut spec = spec();
        let before = serde_json::to_string(&spec).unwrap();
        let err = Adjuster::new("c1", false)
            .apply("10-evil", &adj, &mut spec)
            .expect_err(what);
        let message = err.to_string();
        assert!(
            message.contains("10-evil") && message.contains(what),
            "{what}: {message}"
        );
        assert_eq!(err.kind(), Kind::InvalidArgument, "{what}: {message}");
        assert_eq!(serde_json::to_string(&spec).unwrap(), before, "{what}");
    }
}

#[test]
fn values_at_the_edges_are_accepted() {
    let mut spec = spec();
    let mut adjuster = Adjuster::new("c1", false);
    for adj in [
        env("EMPTY", ""),
        env("-SECRET", ""),
        mount("/data/"),
        mount("-/gone"),
        device("/dev/fuse"),
        oom(-1000),
        hook("/usr/bin/hook"),
    ] {
        adjuster.apply("10-a", &adj, &mut spec).unwrap();
    }
    let env = spec.process().clone().unwrap().env().clone().unwrap();
    assert_eq!(env, vec!["PATH=/bin", "EMPTY="]);
}
