//! Classic BPF code generation for seccomp: instructions with symbolic labels, resolved to
//! relative jumps at the end. Layout of a program:
//!
//! ```text
//!   ld arch; jeq NATIVE ? +1 : next; ret FOREIGN
//!   ld nr;  [jge FOREIGN_FROM ? next : +1; ret FOREIGN]
//!   binary search on nr (jge MID ? next : +1; ja RIGHT; LEFT...; RIGHT...) down to leaves of a
//!   few syscalls; a leaf:
//!     per syscall:  jeq NR ? body : skip   (unconditional: jeq NR ? next : +1; ret ACTION)
//!       body: per rule: conditions (each failing to the next rule); ret ACTION
//!             ret DEFAULT
//!       skip:
//!     ret DEFAULT
//! ```
//!
//! Arguments are 64-bit, compared as a high and a low 32-bit word (little-endian layout of
//! `struct seccomp_data`: nr at 0, arch at 4, args[i] at 16 + 8i).

use oci_spec::runtime::LinuxSeccompOperator as Op;

const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_ALU: u16 = 0x04;
const BPF_AND: u16 = 0x50;
const BPF_JMP: u16 = 0x05;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_K: u16 = 0x00;
const BPF_RET: u16 = 0x06;

/// Syscalls compared one after the other at a leaf of the search tree.
const LEAF_GROUPS: usize = 4;

/// The kernel's limit on a filter's length.
const MAX_INSTRUCTIONS: usize = 4096;

/// One argument condition, libseccomp's `scmp_arg_cmp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cond {
    pub index: u8,
    pub op: Op,
    pub value: u64,
    /// The expected value of `arg & value` for `SCMP_CMP_MASKED_EQ`.
    pub value_two: u64,
}

/// A rule: its conditions (all must hold) and the return value when they do.
pub(super) type Rule = (Vec<Cond>, u32);
/// A syscall number and its rules, in order.
pub(super) type Group = (u32, Vec<Rule>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label(usize);

#[derive(Debug, Clone, Copy)]
enum Target {
    Next,
    At(Label),
}

#[derive(Debug)]
enum Ins {
    Load(u32),
    And(u32),
    Jump {
        op: u16,
        k: u32,
        t: Target,
        f: Target,
    },
    Always(Label),
    Ret(u32),
    Mark(Label),
}

/// A program under construction.
#[derive(Default)]
pub(super) struct Program {
    code: Vec<Ins>,
    labels: usize,
}

impl Program {
    /// Builds the whole filter. `groups` are (syscall number, rules), each rule (conditions,
    /// return value).
    pub(super) fn build(
        arch: u32,
        foreign_from: Option<u32>,
        foreign: u32,
        groups: &[Group],
        default: u32,
    ) -> Result<Vec<libc::sock_filter>, String> {
        let mut p = Program::default();
        let native = p.label();
        p.code.push(Ins::Load(4));
        p.jump(BPF_JEQ, arch, Target::At(native), Target::Next);
        p.code.push(Ins::Ret(foreign));
        p.code.push(Ins::Mark(native));
        p.code.push(Ins::Load(0));
        if let Some(from) = foreign_from {
            let same_abi = p.label();
            p.jump(BPF_JGE, from, Target::Next, Target::At(same_abi));
            p.code.push(Ins::Ret(foreign));
            p.code.push(Ins::Mark(same_abi));
        }
        // Each syscall number has one group, so their order does not matter: search them.
        let mut sorted: Vec<&Group> = groups.iter().collect();
        sorted.sort_by_key(|(nr, _)| *nr);
        p.tree(&sorted, default);
        p.resolve()
    }

    fn label(&mut self) -> Label {
        self.labels += 1;
        Label(self.labels - 1)
    }

    fn jump(&mut self, op: u16, k: u32, t: Target, f: Target) {
        self.code.push(Ins::Jump { op, k, t, f });
    }

    /// A binary search over the sorted `groups` (the accumulator holds the syscall number), with
    /// short linear runs at the leaves, each ending in the default action.
    fn tree(&mut self, groups: &[&Group], default: u32) {
        if groups.len() <= LEAF_GROUPS {
            for (nr, rules) in groups {
                self.syscall(*nr, rules, default);
            }
            self.code.push(Ins::Ret(default));
            return;
        }
        let (low, high) = groups.split_at(groups.len() / 2);
        let (left, right) = (self.label(), self.label());
        self.jump(BPF_JGE, high[0].0, Target::Next, Target::At(left));
        self.code.push(Ins::Always(right));
        self.code.push(Ins::Mark(left));
        self.tree(low, default);
        self.code.push(Ins::Mark(right));
        self.tree(high, default);
    }

    fn syscall(&mut self, nr: u32, rules: &[Rule], default: u32) {
        if let Some((conds, action)) = rules.first()
            && conds.is_empty()
        {
            // The first rule always matches: the rest cannot be reached.
            let skip = self.label();
            self.jump(BPF_JEQ, nr, Target::Next, Target::At(skip));
            self.code.push(Ins::Ret(*action));
            self.code.push(Ins::Mark(skip));
            return;
        }
        let skip = self.label();
        let body = self.label();
        self.jump(BPF_JEQ, nr, Target::At(body), Target::Next);
        self.code.push(Ins::Always(skip));
        self.code.push(Ins::Mark(body));
        for (conds, action) in rules {
            let next_rule = self.label();
            for cond in conds {
                self.condition(cond, next_rule);
            }
            self.code.push(Ins::Ret(*action));
            self.code.push(Ins::Mark(next_rule));
        }
        self.code.push(Ins::Ret(default));
        self.code.push(Ins::Mark(skip));
    }

    /// Code that falls through when `cond` holds and jumps to `fail` otherwise.
    fn condition(&mut self, cond: &Cond, fail: Label) {
        let lo_off = 16 + 8 * u32::from(cond.index);
        let hi_off = lo_off + 4;
        let hi = (cond.value >> 32) as u32;
        let lo = cond.value as u32;
        let pass = self.label();
        let (fail, pass_t) = (Target::At(fail), Target::At(pass));
        let next = Target::Next;
        self.code.push(Ins::Load(hi_off));
        match cond.op {
            Op::ScmpCmpEq => {
                self.jump(BPF_JEQ, hi, next, fail);
                self.code.push(Ins::Load(lo_off));
                self.jump(BPF_JEQ, lo, next, fail);
            }
            Op::ScmpCmpNe => {
                self.jump(BPF_JEQ, hi, next, pass_t);
                self.code.push(Ins::Load(lo_off));
                self.jump(BPF_JEQ, lo, fail, next);
            }
            Op::ScmpCmpMaskedEq => {
                let (want_hi, want_lo) = ((cond.value_two >> 32) as u32, cond.value_two as u32);
                self.code.push(Ins::And(hi));
                self.jump(BPF_JEQ, want_hi, next, fail);
                self.code.push(Ins::Load(lo_off));
                self.code.push(Ins::And(lo));
                self.jump(BPF_JEQ, want_lo, next, fail);
            }
            Op::ScmpCmpGt | Op::ScmpCmpGe => {
                self.jump(BPF_JGT, hi, pass_t, next);
                self.jump(BPF_JEQ, hi, next, fail);
                self.code.push(Ins::Load(lo_off));
                let op = if cond.op == Op::ScmpCmpGt {
                    BPF_JGT
                } else {
                    BPF_JGE
                };
                self.jump(op, lo, next, fail);
            }
            Op::ScmpCmpLt | Op::ScmpCmpLe => {
                self.jump(BPF_JGT, hi, fail, next);
                self.jump(BPF_JEQ, hi, next, pass_t);
                self.code.push(Ins::Load(lo_off));
                // arg < v  <=>  !(arg >= v);  arg <= v  <=>  !(arg > v).
                let op = if cond.op == Op::ScmpCmpLt {
                    BPF_JGE
                } else {
                    BPF_JGT
                };
                self.jump(op, lo, fail, next);
            }
        }
        self.code.push(Ins::Mark(pass));
    }

    /// Replaces labels by relative offsets.
    fn resolve(self) -> Result<Vec<libc::sock_filter>, String> {
        let mut at = vec![0usize; self.labels];
        let mut pc = 0;
        for ins in &self.code {
            match ins {
                Ins::Mark(Label(l)) => at[*l] = pc,
                _ => pc += 1,
            }
        }
        if pc > MAX_INSTRUCTIONS {
            return Err(format!(
                "{pc} BPF instructions, over the kernel's limit of {MAX_INSTRUCTIONS}"
            ));
        }
        let mut out = Vec::with_capacity(pc);
        for ins in &self.code {
            let here = out.len();
            let offset = |t: Target| -> Result<u8, String> {
                let to = match t {
                    Target::Next => return Ok(0),
                    Target::At(Label(l)) => at[l],
                };
                u8::try_from(to - here - 1)
                    .map_err(|_| format!("jump of {} instructions is too far", to - here - 1))
            };
            let ins = match *ins {
                Ins::Mark(_) => continue,
                Ins::Load(off) => stmt(BPF_LD | BPF_W | BPF_ABS, off),
                Ins::And(k) => stmt(BPF_ALU | BPF_AND | BPF_K, k),
                Ins::Ret(k) => stmt(BPF_RET | BPF_K, k),
                Ins::Always(Label(l)) => stmt(BPF_JMP | BPF_JA, (at[l] - here - 1) as u32),
                Ins::Jump { op, k, t, f } => libc::sock_filter {
                    code: BPF_JMP | op | BPF_K,
                    jt: offset(t)?,
                    jf: offset(f)?,
                    k,
                },
            };
            out.push(ins);
        }
        Ok(out)
    }
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}
