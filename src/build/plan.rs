//! Splitting a Dockerfile into stages: the global ARGs before the first FROM (with
//! `--build-arg` applied), each stage's base, and which stages the target needs.

use std::collections::BTreeMap;

use super::dockerfile::Instruction;
use super::expand::{expand, pairs};
use super::{BuildError, BuildRequest};

/// One `FROM` and the instructions after it.
#[derive(Debug)]
pub struct StagePlan {
    pub name: Option<String>,
    pub from: String,
    pub steps: Vec<Instruction>,
}

/// The Dockerfile split into stages, with the global ARGs resolved.
#[derive(Debug)]
pub struct Plan {
    pub stages: Vec<StagePlan>,
    pub needed: Vec<bool>,
    pub target: usize,
    pub meta_args: BTreeMap<String, String>,
}

impl Plan {
    pub(super) fn stage_index(&self, name: &str, before: usize) -> Option<usize> {
        let by_name = self.stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(&name.to_ascii_lowercase()));
        by_name.or_else(|| name.parse::<usize>().ok().filter(|i| *i < before))
    }

    /// Images (not stages) the needed stages start from or copy from.
    pub fn bases(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, stage) in self
            .stages
            .iter()
            .enumerate()
            .filter(|(i, _)| self.needed[*i])
        {
            if stage.from != "scratch" && self.stage_index(&stage.from, i).is_none() {
                out.push(stage.from.clone());
            }
            for step in &stage.steps {
                if let Some(from) = step.flag("from")
                    && self.stage_index(from, i).is_none()
                {
                    out.push(from.to_string());
                }
            }
        }
        out.dedup();
        out
    }

    pub fn step_count(&self) -> usize {
        let needed = self
            .stages
            .iter()
            .enumerate()
            .filter(|(i, _)| self.needed[*i]);
        needed.map(|(_, s)| s.steps.len() + 1).sum()
    }
}

/// Splits `instructions` into stages and works out which ones `request.target` needs.
pub fn plan(instructions: &[Instruction], request: &BuildRequest) -> Result<Plan, BuildError> {
    let mut meta_args = BTreeMap::new();
    let mut stages: Vec<StagePlan> = Vec::new();
    for ins in instructions {
        match (ins.keyword.as_str(), stages.last_mut()) {
            ("ARG", None) => {
                for (name, default) in pairs(&ins.raw(), false) {
                    let value = request.build_args.get(&name).cloned().or(default);
                    meta_args.insert(name, value.unwrap_or_default());
                }
            }
            ("FROM", _) => {
                let text = expand(&ins.raw(), &meta_args);
                let words: Vec<&str> = text.split_whitespace().collect();
                let (from, name) = match words.as_slice() {
                    [from] => (*from, None),
                    [from, kw, name] if kw.eq_ignore_ascii_case("as") => {
                        (*from, Some(name.to_ascii_lowercase()))
                    }
                    _ => return Err(step_error(ins, "expected FROM IMAGE [AS NAME]")),
                };
                if ins.flag("platform").is_some() {
                    return Err(step_error(ins, "--platform is not supported"));
                }
                stages.push(StagePlan {
                    name,
                    from: from.to_string(),
                    steps: Vec::new(),
                });
            }
            (_, None) => return Err(step_error(ins, "the first instruction must be FROM or ARG")),
            (_, Some(stage)) => stage.steps.push(ins.clone()),
        }
    }
    if stages.is_empty() {
        return Err(BuildError::parse(1, "no FROM instruction".into()));
    }
    let target = match &request.target {
        None => stages.len() - 1,
        Some(t) => stages
            .iter()
            .position(|s| s.name.as_deref() == Some(&t.to_ascii_lowercase()))
            .ok_or_else(|| BuildError::Context(format!("target stage {t:?} not found")))?,
    };
    let mut plan = Plan {
        needed: vec![false; stages.len()],
        stages,
        target,
        meta_args,
    };
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut plan.needed[i], true) {
            continue;
        }
        let stage = &plan.stages[i];
        let mut deps: Vec<usize> = plan.stage_index(&stage.from, i).into_iter().collect();
        for step in &stage.steps {
            deps.extend(step.flag("from").and_then(|f| plan.stage_index(f, i)));
        }
        todo.extend(deps);
    }
    Ok(plan)
}

pub(super) fn step_error(ins: &Instruction, reason: impl Into<String>) -> BuildError {
    BuildError::Step {
        line: ins.line,
        instruction: ins.keyword.clone(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::dockerfile::parse;

    fn request(target: Option<&str>, args: &[(&str, &str)]) -> BuildRequest {
        BuildRequest {
            target: target.map(str::to_string),
            build_args: args
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    const FILE: &str = "ARG BASE=img:1\nFROM ${BASE} AS deps\nRUN a\nFROM other AS unused\nRUN b\nFROM deps AS build\nRUN c\nFROM scratch\nCOPY --from=build /x /x\n";

    #[test]
    fn only_the_stages_the_target_needs_are_built() {
        let instructions = parse(FILE).unwrap();
        let plan = plan(&instructions, &request(None, &[])).unwrap();
        assert_eq!(plan.target, 3);
        assert_eq!(plan.needed, [true, false, true, true]);
        assert_eq!(plan.bases(), ["img:1"]);
        let plan = plan_for(Some("deps"), &[("BASE", "img:2")]);
        assert_eq!(plan.needed, [true, false, false, false]);
        assert_eq!(
            plan.stages[0].from, "img:2",
            "a build arg overrides the global default"
        );
    }

    fn plan_for(target: Option<&str>, args: &[(&str, &str)]) -> Plan {
        plan(&parse(FILE).unwrap(), &request(target, args)).unwrap()
    }

    #[test]
    fn bad_stage_structure_is_an_error_with_the_line() {
        let err = plan(&parse("RUN x\n").unwrap(), &request(None, &[])).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let err = plan(&parse(FILE).unwrap(), &request(Some("nope"), &[])).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
