//! The cgroup v2 device policy: checked rules compiled into a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program, loaded and attached to the cgroup (`BPF_CGROUP_DEVICE`, `BPF_F_ALLOW_MULTI`, as runc
//! does), and, for tests, a tiny interpreter of the instructions it emits.
//!
//! The kernel calls the program with `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }`, `access_type` being `(access << 16) | type`; it returns 1 to allow, 0 to deny.
//! The program tests the rules from the last to the first and returns the decision of the first
//! that matches (a later OCI rule overrides an earlier one); none matching denies. An allow rule
//! matches when it grants every requested access, a deny rule when it denies any of them. Rights
//! to one device are not summed across allow rules (`c 1:3 r` and `c 1:3 w` do not allow an
//! `rw` open); runtimes send one rule per device. Hand-assembled (ADR 0005): eight-byte
//! instructions of a handful of opcodes, no BPF toolchain or crate needed.

use std::os::fd::AsFd;

use super::devices::{ACC_ALL, Checked, DeviceRule, check_all};
use super::fs::Result;
use super::{Cgroup, CgroupError};

// Opcodes (linux/bpf_common.h, linux/bpf.h): class | op | source.
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const JMP_JNE_K: u8 = 0x55;
const JMP_JEQ_K: u8 = 0x15;
const JMP_EXIT: u8 = 0x95;

// Registers: r0 result, r1 context, then what the prologue loads.
const R0: u8 = 0;
const R1: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;
const SCRATCH: u8 = 6;

/// One instruction: `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    /// The kernel's little-endian layout: code, dst (low nibble) and src (high nibble), off, imm.
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.dst & 0xf) | (self.src << 4);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }

    #[cfg(test)]
    pub fn decode(b: [u8; 8]) -> Insn {
        Insn {
            code: b[0],
            dst: b[1] & 0xf,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// The program for `rules` (already checked), as instructions.
pub(crate) fn program(rules: &[Checked]) -> Vec<Insn> {
    let mut p = vec![
        Insn::new(LDX_MEM_W, TYPE, R1, 0, 0),
        Insn::new(ALU64_MOV_X, ACCESS, TYPE, 0, 0),
        Insn::new(ALU64_RSH_K, ACCESS, 0, 0, 16),
        Insn::new(ALU64_AND_K, TYPE, 0, 0, 0xffff),
        Insn::new(LDX_MEM_W, MAJOR, R1, 4, 0),
        Insn::new(LDX_MEM_W, MINOR, R1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        if rule.is_catch_all() {
            p.extend(decide(rule.allow));
            return p;
        }
        // Each test jumps past this rule's block (its tests and its decision) when it fails.
        let mut tests = Vec::new();
        if let Some(kind) = rule.kind {
            tests.push(Insn::new(JMP_JNE_K, TYPE, 0, 0, kind as i32));
        }
        if rule.access != ACC_ALL || !rule.allow {
            tests.push(Insn::new(ALU64_MOV_X, SCRATCH, ACCESS, 0, 0));
            if rule.allow {
                // Matches when nothing outside the rule's access is asked for.
                let outside = !rule.access & ACC_ALL;
                tests.push(Insn::new(ALU64_AND_K, SCRATCH, 0, 0, outside as i32));
                tests.push(Insn::new(JMP_JNE_K, SCRATCH, 0, 0, 0));
            } else {
                // Matches when any denied access is asked for.
                tests.push(Insn::new(ALU64_AND_K, SCRATCH, 0, 0, rule.access as i32));
                tests.push(Insn::new(JMP_JEQ_K, SCRATCH, 0, 0, 0));
            }
        }
        if let Some(major) = rule.major {
            tests.push(Insn::new(JMP_JNE_K, MAJOR, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            tests.push(Insn::new(JMP_JNE_K, MINOR, 0, 0, minor as i32));
        }
        let len = tests.len() + 2;
        for (i, mut insn) in tests.into_iter().enumerate() {
            if insn.code == JMP_JNE_K || insn.code == JMP_JEQ_K {
                insn.off = (len - i - 1) as i16;
            }
            p.push(insn);
        }
        p.extend(decide(rule.allow));
    }
    p.extend(decide(false));
    p
}

fn decide(allow: bool) -> [Insn; 2] {
    [
        Insn::new(ALU64_MOV_K, R0, 0, 0, i32::from(allow)),
        Insn::new(JMP_EXIT, 0, 0, 0, 0),
    ]
}

/// The program's bytes, as `BPF_PROG_LOAD` takes them.
pub(crate) fn bytes(program: &[Insn]) -> Vec<u8> {
    program.iter().flat_map(Insn::encode).collect()
}

/// cgroup v2: loads the rules' program and attaches it to the cgroup. Nothing is attached when the
/// rules allow everything (a privileged container), so no program runs for it.
pub(crate) fn apply_v2(cg: &Cgroup, rules: &[DeviceRule]) -> Result<()> {
    let checked = check_all(cg, rules)?;
    if checked.last().is_some_and(|r| r.allow && r.is_catch_all()) {
        return Ok(());
    }
    let code = bytes(&program(&checked));
    let fail = |what: &str, e: String| CgroupError::Unsupported {
        cgroup: cg.path(),
        what: format!("the device policy ({what}: {e})"),
    };
    let prog = crate::sys::bpf::load_cgroup_device_program(&code)
        .map_err(|e| fail("load the BPF program", e))?;
    let dir = std::fs::File::open(cg.v2_dir()).map_err(|source| CgroupError::Read {
        path: cg.v2_dir(),
        source,
    })?;
    crate::sys::bpf::attach_cgroup_device_program(dir.as_fd(), prog.as_fd())
        .map_err(|e| fail("attach the BPF program", e.to_string()))
}

/// Runs `program` on one request the way the kernel would (only the opcodes [`program`] emits).
#[cfg(test)]
pub(crate) fn run(code: &[u8], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
    let insns: Vec<Insn> = code
        .chunks(8)
        .map(|c| Insn::decode(c.try_into().unwrap()))
        .collect();
    let ctx = [(access << 16) | kind, major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    loop {
        let i = insns[pc];
        let (d, s, imm) = (usize::from(i.dst), usize::from(i.src), i.imm as i64 as u64);
        let mut next = pc + 1;
        match i.code {
            LDX_MEM_W => {
                assert_eq!(s, 1, "loads only from the context");
                r[d] = u64::from(ctx[i.off as usize / 4]);
            }
            ALU64_MOV_K => r[d] = imm,
            ALU64_MOV_X => r[d] = r[s],
            ALU64_AND_K => r[d] &= imm,
            ALU64_RSH_K => r[d] >>= imm,
            JMP_JNE_K if r[d] != imm => next = (pc as i64 + 1 + i64::from(i.off)) as usize,
            JMP_JEQ_K if r[d] == imm => next = (pc as i64 + 1 + i64::from(i.off)) as usize,
            JMP_JNE_K | JMP_JEQ_K => {}
            JMP_EXIT => return r[0],
            other => panic!("opcode {other:#x} at {pc}"),
        }
        pc = next;
    }
}
