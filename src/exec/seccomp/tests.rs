//! The compiled programs run in a small classic-BPF interpreter against syscall records.

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction as Act, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator as Op, LinuxSyscall,
};

use super::*;

/// Runs `prog` on a `seccomp_data` of (nr, arch, args).
fn run(prog: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::new();
    data.extend_from_slice(&nr.to_le_bytes());
    data.extend_from_slice(&arch.to_le_bytes());
    data.extend_from_slice(&0u64.to_le_bytes());
    for a in args {
        data.extend_from_slice(&a.to_le_bytes());
    }
    let word = |off: u32| {
        let o = off as usize;
        u32::from_le_bytes(data[o..o + 4].try_into().unwrap())
    };
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let ins = prog[pc];
        pc += 1;
        match ins.code {
            0x20 => acc = word(ins.k),
            0x54 => acc &= ins.k,
            0x06 => return ins.k,
            0x05 => pc += ins.k as usize,
            code => {
                let hit = match code & 0xf0 {
                    0x10 => acc == ins.k,
                    0x20 => acc > ins.k,
                    0x30 => acc >= ins.k,
                    other => panic!("unexpected jump {other:#x}"),
                };
                pc += usize::from(if hit { ins.jt } else { ins.jf });
            }
        }
    }
}

fn syscall(names: &[&str], action: Act, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| n.to_string()).collect())
        .set_action(action)
        .set_args((!args.is_empty()).then_some(args));
    s
}

fn arg(index: usize, op: Op, value: u64, value_two: u64) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value)
        .value_two(value_two)
        .build()
        .unwrap()
}

fn profile(default: Act, syscalls: Vec<LinuxSyscall>) -> LinuxSeccomp {
    let mut p = LinuxSeccomp::default();
    p.set_default_action(default).set_syscalls(Some(syscalls));
    p
}

fn nr(name: &str) -> u32 {
    number(name).unwrap()
}

const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;

#[test]
fn allow_list_with_default_errno() {
    let p = profile(
        Act::ScmpActErrno,
        vec![syscall(
            &["read", "write", "no_such_call"],
            Act::ScmpActAllow,
            vec![],
        )],
    );
    let prog = compile(&p).unwrap().program;
    let arch = NATIVE.audit_arch;
    assert_eq!(run(&prog, nr("read"), arch, [0; 6]), RET_ALLOW);
    assert_eq!(run(&prog, nr("write"), arch, [0; 6]), RET_ALLOW);
    assert_eq!(run(&prog, nr("mount"), arch, [0; 6]), EPERM);
    // Another ABI's call never reaches the table.
    assert_eq!(
        run(&prog, nr("read"), 0x4000_0003, [0; 6]),
        RET_ERRNO | libc::ENOSYS as u32
    );
}

#[test]
fn errno_ret_and_default_allow() {
    let mut clone3 = syscall(&["clone3"], Act::ScmpActErrno, vec![]);
    clone3.set_errno_ret(Some(libc::ENOSYS as u32));
    let p = profile(
        Act::ScmpActAllow,
        vec![clone3, syscall(&["sethostname"], Act::ScmpActErrno, vec![])],
    );
    let prog = compile(&p).unwrap().program;
    let arch = NATIVE.audit_arch;
    assert_eq!(
        run(&prog, nr("clone3"), arch, [0; 6]),
        RET_ERRNO | libc::ENOSYS as u32
    );
    assert_eq!(run(&prog, nr("sethostname"), arch, [0; 6]), EPERM);
    assert_eq!(run(&prog, nr("getpid"), arch, [0; 6]), RET_ALLOW);
}

#[test]
fn argument_conditions_compare_64_bits() {
    let big = 0x1_0000_0005u64;
    type Probes<'a> = &'a [(u64, bool)];
    let cases: [(Op, u64, Probes); 6] = [
        (
            Op::ScmpCmpEq,
            big,
            &[(big, true), (5, false), (big + 1, false)],
        ),
        (
            Op::ScmpCmpNe,
            big,
            &[(big, false), (5, true), (0x2_0000_0005, true)],
        ),
        (
            Op::ScmpCmpGt,
            big,
            &[
                (big, false),
                (big + 1, true),
                (0x2_0000_0000, true),
                (6, false),
            ],
        ),
        (
            Op::ScmpCmpGe,
            big,
            &[(big, true), (big - 1, false), (0x2_0000_0000, true)],
        ),
        (
            Op::ScmpCmpLt,
            big,
            &[
                (big, false),
                (big - 1, true),
                (0xffff_ffff, true),
                (0x2_0000_0000, false),
            ],
        ),
        (
            Op::ScmpCmpLe,
            big,
            &[(big, true), (big + 1, false), (7, true)],
        ),
    ];
    let arch = NATIVE.audit_arch;
    for (op, value, probes) in cases {
        let p = profile(
            Act::ScmpActErrno,
            vec![syscall(
                &["personality"],
                Act::ScmpActAllow,
                vec![arg(2, op, value, 0)],
            )],
        );
        let prog = compile(&p).unwrap().program;
        for (probe, allowed) in probes {
            let got = run(&prog, nr("personality"), arch, [0, 0, *probe, 0, 0, 0]);
            let want = if *allowed { RET_ALLOW } else { EPERM };
            assert_eq!(got, want, "{op:?} {value:#x} on {probe:#x}");
        }
    }
}

#[test]
fn masked_eq_and_alternatives() {
    // clone without namespace flags (containerd's rule for containers without CAP_SYS_ADMIN).
    let ns_flags = 0x7e02_0000u64;
    let masked = arg(0, Op::ScmpCmpMaskedEq, ns_flags, 0);
    // Two conditions on one argument are alternatives.
    let either = vec![arg(0, Op::ScmpCmpEq, 0, 0), arg(0, Op::ScmpCmpEq, 8, 0)];
    // Conditions on different arguments all hold.
    let both = vec![arg(0, Op::ScmpCmpEq, 1, 0), arg(1, Op::ScmpCmpEq, 2, 0)];
    let p = profile(
        Act::ScmpActErrno,
        vec![
            syscall(&["clone"], Act::ScmpActAllow, vec![masked]),
            syscall(&["personality"], Act::ScmpActAllow, either),
            syscall(&["socket"], Act::ScmpActAllow, both),
        ],
    );
    let prog = compile(&p).unwrap().program;
    let arch = NATIVE.audit_arch;
    let call = |name, a0, a1| run(&prog, nr(name), arch, [a0, a1, 0, 0, 0, 0]);
    assert_eq!(call("clone", libc::SIGCHLD as u64, 0), RET_ALLOW);
    assert_eq!(call("clone", libc::CLONE_NEWUSER as u64, 0), EPERM);
    assert_eq!(
        call("clone", (libc::CLONE_NEWNS | libc::CLONE_VM) as u64, 0),
        EPERM
    );
    assert_eq!(call("personality", 0, 0), RET_ALLOW);
    assert_eq!(call("personality", 8, 0), RET_ALLOW);
    assert_eq!(call("personality", 9, 0), EPERM);
    assert_eq!(call("socket", 1, 2), RET_ALLOW);
    assert_eq!(call("socket", 1, 3), EPERM);
}

#[test]
fn notify_and_bad_indexes_are_refused() {
    let p = profile(Act::ScmpActNotify, vec![]);
    assert!(compile(&p).unwrap_err().to_string().contains("NOTIFY"));
    let p = profile(
        Act::ScmpActAllow,
        vec![syscall(
            &["read"],
            Act::ScmpActErrno,
            vec![arg(6, Op::ScmpCmpEq, 0, 0)],
        )],
    );
    assert!(compile(&p).unwrap_err().to_string().contains("index 6"));
}

#[test]
fn a_large_allow_list_fits() {
    let names: Vec<&str> = NATIVE.table.iter().map(|(n, _)| *n).collect();
    let p = profile(
        Act::ScmpActErrno,
        vec![syscall(&names, Act::ScmpActAllow, vec![])],
    );
    let prog = compile(&p).unwrap().program;
    let arch = NATIVE.audit_arch;
    for (name, nr) in NATIVE.table {
        assert_eq!(run(&prog, *nr, arch, [0; 6]), RET_ALLOW, "{name}");
        assert_eq!(run(&prog, nr + 1000, arch, [0; 6]), EPERM, "{name} + 1000");
    }
}

#[test]
fn rules_keep_their_syscall_across_the_search_tree() {
    let others: Vec<&(&str, u32)> = NATIVE
        .table
        .iter()
        .filter(|(n, _)| !["personality", "clone3"].contains(n))
        .collect();
    let names: Vec<&str> = others.iter().map(|(n, _)| *n).collect();
    let mut entries = vec![syscall(&names, Act::ScmpActAllow, vec![])];
    let eight = vec![arg(0, Op::ScmpCmpEq, 8, 0)];
    entries.push(syscall(&["personality"], Act::ScmpActAllow, eight));
    entries.push(syscall(&["clone3"], Act::ScmpActTrap, vec![]));
    let prog = compile(&profile(Act::ScmpActErrno, entries))
        .unwrap()
        .program;
    let arch = NATIVE.audit_arch;
    let personality = |a0| run(&prog, nr("personality"), arch, [a0, 0, 0, 0, 0, 0]);
    assert_eq!(personality(8), RET_ALLOW);
    assert_eq!(personality(9), EPERM);
    assert_eq!(run(&prog, nr("clone3"), arch, [0; 6]), RET_TRAP);
    for (name, nr) in others {
        assert_eq!(run(&prog, *nr, arch, [0; 6]), RET_ALLOW, "{name}");
    }
}
