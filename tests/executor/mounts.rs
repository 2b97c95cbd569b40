//! Executor tests of the mount namespace: spec mounts and their options, devices, masked and
//! read-only paths, read-only root, symlink containment, step-named mount errors.

use oci_spec::runtime::MountBuilder;

use crate::container_support::{Bundle, run, spec_for, stdio_pipes};

#[test]
fn proc_and_dev_work() {
    let bundle = Bundle::new();
    let script = "echo gone > /dev/null && test -c /dev/zero && readlink /dev/stdout && \
                  cat /proc/1/cmdline && echo && grep -c . /proc/mounts";
    let out = run(&bundle, spec_for(&bundle, &["sh", "-c", script]));
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "/proc/self/fd/1");
    assert!(lines[1].starts_with("sh\0-c\0"), "{:?}", lines[1]);
}

#[test]
fn read_only_bind_mount_from_the_host() {
    let bundle = Bundle::new();
    let host = tempfile::tempdir().expect("host dir");
    std::fs::write(host.path().join("f"), "hello\n").unwrap();
    let mut spec = spec_for(
        &bundle,
        &["sh", "-c", "cat /data/f; touch /data/new; echo rc=$?"],
    );
    let mut mounts = spec.mounts().clone().unwrap();
    let bind = |dest: &str, ro: bool| {
        let mut options = vec!["rbind".to_string(), "nosuid".to_string()];
        if ro {
            options.push("ro".to_string());
        }
        MountBuilder::default()
            .destination(dest)
            .typ("bind")
            .source(host.path())
            .options(options)
            .build()
            .unwrap()
    };
    mounts.push(bind("/data", true));
    spec.set_mounts(Some(mounts));
    let out = run(&bundle, spec);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello\nrc=1\n");
    assert!(out.stderr.contains("Read-only file system"), "{out:?}");
    assert!(!host.path().join("new").exists());
}

#[test]
fn readonly_root() {
    let bundle = Bundle::new();
    let mut spec = spec_for(&bundle, &["sh", "-c", "touch /x; echo rc=$?; pwd"]);
    let mut root = spec.root().clone().unwrap();
    root.set_readonly(Some(true));
    spec.set_root(Some(root));
    let mut process = spec.process().clone().unwrap();
    process.set_cwd("/not/yet".into());
    spec.set_process(Some(process));
    let out = run(&bundle, spec);
    assert_eq!(out.stdout, "rc=1\n/not/yet\n", "{out:?}");
    assert!(!bundle.rootfs().join("x").exists());
}

#[test]
fn masked_paths_are_empty() {
    let bundle = Bundle::new();
    let host_firmware = std::fs::read_dir("/sys/firmware")
        .expect("/sys/firmware")
        .count();
    assert!(
        host_firmware > 0,
        "the host's /sys/firmware must not be empty for this test"
    );
    let script = "cat /proc/kcore; ls -A /sys/firmware; echo end";
    let out = run(&bundle, spec_for(&bundle, &["sh", "-c", script]));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout, "end\n",
        "/proc/kcore and /sys/firmware are masked"
    );
}

#[test]
fn setup_errors_name_the_step() {
    let bundle = Bundle::new();
    let mut spec = spec_for(&bundle, &["true"]);
    let mut mounts = spec.mounts().clone().unwrap();
    let bogus = MountBuilder::default()
        .destination("/bogus")
        .typ("nosuchfs")
        .source("x")
        .build()
        .unwrap();
    mounts.push(bogus);
    spec.set_mounts(Some(mounts));
    let (stdio, _out, _err) = stdio_pipes();
    let err = bundle
        .executor()
        .create(bundle.path(), &spec, stdio)
        .expect_err("create must fail");
    let msg = err.to_string();
    assert!(msg.contains("mount nosuchfs on /bogus"), "{msg}");
    assert!(msg.contains("ENODEV"), "{msg}");
}

#[test]
fn symlinks_in_the_image_cannot_redirect_mounts_outside() {
    let bundle = Bundle::new();
    let outside = tempfile::tempdir().expect("outside dir");
    std::os::unix::fs::symlink(outside.path(), bundle.rootfs().join("escape")).unwrap();
    let mut spec = spec_for(&bundle, &["grep", "-c", " tmpfs ", "/proc/self/mountinfo"]);
    let mut mounts = spec.mounts().clone().unwrap();
    let tmpfs = MountBuilder::default()
        .destination("/escape/sub")
        .typ("tmpfs")
        .source("tmpfs")
        .build()
        .unwrap();
    mounts.push(tmpfs);
    spec.set_mounts(Some(mounts));
    let out = run(&bundle, spec);
    assert_eq!(out.code, 0, "{out:?}");
    // The absolute symlink was resolved inside the rootfs: the directories were created there.
    let inside = bundle
        .rootfs()
        .join(outside.path().strip_prefix("/").unwrap())
        .join("sub");
    assert!(inside.is_dir(), "mount point not created inside the rootfs");
    assert!(
        !outside.path().join("sub").exists(),
        "mount point created outside the rootfs"
    );
}

#[test]
fn recursive_read_only_binds_tmpfs_options_and_readonly_paths() {
    let bundle = Bundle::new();
    let host = tempfile::tempdir().expect("host dir");
    let script = "touch /rro/x; echo rro=$?; stat -c %a /scratch; touch /scratch/ok && echo tmpfs-rw; \
                  grep -c ' /proc/sys ro,' /proc/self/mountinfo";
    let mut spec = spec_for(&bundle, &["sh", "-c", script]);
    let mut mounts = spec.mounts().clone().unwrap();
    let opts = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    mounts.push(
        MountBuilder::default()
            .destination("/rro")
            .typ("bind")
            .source(host.path())
            .options(opts(&["rbind", "rro"]))
            .build()
            .unwrap(),
    );
    mounts.push(
        MountBuilder::default()
            .destination("/scratch")
            .typ("tmpfs")
            .source("tmpfs")
            .options(opts(&["nosuid", "nodev", "size=1m", "mode=1777"]))
            .build()
            .unwrap(),
    );
    spec.set_mounts(Some(mounts));
    let out = run(&bundle, spec);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "rro=1\n1777\ntmpfs-rw\n1\n", "{out:?}");
    assert!(!host.path().join("x").exists());
}

#[test]
fn spec_devices_and_dev_symlinks() {
    use oci_spec::runtime::{LinuxDeviceBuilder, LinuxDeviceType};
    let bundle = Bundle::new();
    let script = "stat -c '%t:%T %a %u %g' /dev/berth-null; echo x > /dev/berth-null; \
                  readlink /dev/fd; readlink /dev/ptmx; stat -c %F /dev/pts/ptmx";
    let mut spec = spec_for(&bundle, &["sh", "-c", script]);
    let device = LinuxDeviceBuilder::default()
        .path("/dev/berth-null")
        .typ(LinuxDeviceType::C)
        .major(1)
        .minor(3)
        .file_mode(0o600u32)
        .uid(0u32)
        .gid(5u32)
        .build()
        .unwrap();
    let mut linux = spec.linux().clone().unwrap();
    linux.set_devices(Some(vec![device]));
    spec.set_linux(Some(linux));
    let out = run(&bundle, spec);
    assert_eq!(out.code, 0, "{out:?}");
    let expected = "1:3 600 0 5\n/proc/self/fd\npts/ptmx\ncharacter special file\n";
    assert_eq!(out.stdout, expected, "{out:?}");
}
