//! The build loop: stages in order (only those the target needs), each instruction applied to
//! the stage's image config, and the cache consulted for every step that makes a layer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use super::cache::{self, Key};
use super::context::Context;
use super::dockerfile::{Args, Instruction};
use super::expand::{expand, pairs};
use super::layer::Layer;
use super::plan::{Plan, step_error};
use super::{BuildError, BuildRequest, Builder, Output};
use crate::image::digest::Digest;
use crate::image::manifest::{History, ImageConfig, Manifest, Platform, RootFs};

/// A stage's image as it is built.
#[derive(Clone)]
pub struct Built {
    pub config: ImageConfig,
    pub layers: Vec<Layer>,
    /// The chain id of the top layer.
    pub chain: Option<Digest>,
    /// The cache key of everything so far.
    pub key: Key,
    /// Build args declared in this stage, with their values.
    pub args: BTreeMap<String, String>,
    /// `SHELL`, when set.
    pub shell: Option<Vec<String>>,
    cmd_set: bool,
}

/// One build in progress.
pub struct Run<'a> {
    pub builder: &'a Builder,
    pub request: &'a BuildRequest,
    pub context: &'a Context,
    pub output: Output,
    pub stages: Vec<Option<Built>>,
    /// Every stage's `AS` name, by index.
    pub stage_names: Vec<Option<String>>,
    pub step: usize,
    pub steps: usize,
    /// The disk reserve every layer written leaves free.
    pub reserve: super::space::Reserve,
}

impl Run<'_> {
    pub async fn all(&mut self, plan: &Plan) -> Result<Built, BuildError> {
        for (i, stage) in plan.stages.iter().enumerate() {
            if !plan.needed[i] {
                self.stages.push(None);
                continue;
            }
            self.announce(&format!("FROM {}", stage.from));
            let mut built = self.from(plan, i)?;
            for ins in &stage.steps {
                built = self.instruction(plan, i, built, ins).await?;
            }
            self.stages.push(Some(built));
        }
        Ok(self.stages[plan.target]
            .clone()
            .expect("target stage built"))
    }

    fn announce(&mut self, text: &str) {
        self.step += 1;
        (self.output)(format!(
            "#{} [{}/{}] {text}",
            self.step, self.step, self.steps
        ));
    }

    /// The starting point of stage `i`: an earlier stage, an image, or scratch.
    fn from(&self, plan: &Plan, i: usize) -> Result<Built, BuildError> {
        let stage = &plan.stages[i];
        if let Some(j) = plan.stage_index(&stage.from, i) {
            let mut built = self.stages[j].clone().expect("dependency built first");
            built.args.clear();
            built.cmd_set = false;
            return Ok(built);
        }
        if stage.from == "scratch" {
            let host = Platform::host();
            let config = ImageConfig {
                architecture: host.architecture,
                os: host.os,
                rootfs: RootFs {
                    kind: "layers".into(),
                    diff_ids: Vec::new(),
                },
                ..Default::default()
            };
            return Ok(Built {
                config,
                layers: Vec::new(),
                chain: None,
                key: Key::start("scratch"),
                args: BTreeMap::new(),
                shell: None,
                cmd_set: false,
            });
        }
        self.image(&stage.from)
    }

    /// A stored image as a starting point.
    pub fn image(&self, name: &str) -> Result<Built, BuildError> {
        let bad = |reason: String| BuildError::Store(format!("image {name}: {reason}"));
        let images = &self.builder.images;
        let record = images
            .status(name)
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| BuildError::Base {
                image: name.to_string(),
                reason: "not in the store".into(),
            })?;
        let content = &images.store().content;
        let config_bytes = content.read(&record.id).map_err(|e| bad(e.to_string()))?;
        let config =
            ImageConfig::parse(&record.id, &config_bytes).map_err(|e| bad(e.to_string()))?;
        let manifest_bytes = content
            .read(&record.manifest)
            .map_err(|e| bad(e.to_string()))?;
        let manifest =
            Manifest::parse(&record.manifest, &manifest_bytes).map_err(|e| bad(e.to_string()))?;
        let layers = manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(d, diff)| Layer {
                descriptor: d.clone(),
                diff_id: diff.clone(),
            })
            .collect();
        Ok(Built {
            config,
            layers,
            chain: record.chain_ids.last().cloned(),
            key: Key::start(record.id.as_str()),
            args: BTreeMap::new(),
            shell: None,
            cmd_set: false,
        })
    }

    /// Snapshot directories of `chain` and its parents, topmost first.
    pub fn lowers(&self, chain: Option<&Digest>) -> Result<Vec<PathBuf>, BuildError> {
        let snapshots = &self.builder.images.store().snapshots;
        let mut out = Vec::new();
        let mut next = chain.cloned();
        while let Some(id) = next {
            let record = snapshots
                .get(&id)
                .map_err(|e| BuildError::Store(e.to_string()))?
                .ok_or_else(|| BuildError::Store(format!("snapshot {id} is missing")))?;
            out.push(snapshots.dir(&record));
            next = record.parent;
        }
        Ok(out)
    }

    /// Variables for expansion: the stage's build args, overridden by its ENV.
    fn vars(built: &Built) -> BTreeMap<String, String> {
        let mut vars = built.args.clone();
        for entry in &built.config.config.env {
            if let Some((k, v)) = entry.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
        }
        vars
    }

    async fn instruction(
        &mut self,
        plan: &Plan,
        stage: usize,
        mut built: Built,
        ins: &Instruction,
    ) -> Result<Built, BuildError> {
        let vars = Self::vars(&built);
        let text = match ins.keyword.as_str() {
            "RUN" | "CMD" | "ENTRYPOINT" | "SHELL" => ins.text.clone(),
            _ => expand(&ins.text, &vars),
        };
        self.announce(&text);
        let started = Instant::now();
        let arg = |ins: &Instruction| expand(&ins.raw(), &vars);
        let mut layer_step = false;
        match ins.keyword.as_str() {
            "ENV" => {
                for (k, v) in pairs(&ins.raw(), true) {
                    let v = expand(&v.unwrap_or_default(), &vars);
                    built
                        .config
                        .config
                        .env
                        .retain(|e| e.split_once('=').map(|(n, _)| n) != Some(&k));
                    built.config.config.env.push(format!("{k}={v}"));
                }
            }
            "ARG" => {
                for (name, default) in pairs(&ins.raw(), false) {
                    let value = self
                        .request
                        .build_args
                        .get(&name)
                        .cloned()
                        .or(default.map(|d| expand(&d, &vars)))
                        .or_else(|| plan.meta_args.get(&name).cloned())
                        .unwrap_or_default();
                    built.args.insert(name, value);
                }
            }
            "LABEL" => {
                for (k, v) in pairs(&ins.raw(), true) {
                    built
                        .config
                        .config
                        .labels
                        .insert(expand(&k, &vars), expand(&v.unwrap_or_default(), &vars));
                }
            }
            "WORKDIR" => {
                let dir = arg(ins);
                let dir = if dir.starts_with('/') {
                    dir
                } else {
                    format!(
                        "{}/{dir}",
                        built.config.config.working_dir.trim_end_matches('/')
                    )
                };
                built.config.config.working_dir = super::context::normalize(&dir)
                    .map(|d| format!("/{d}"))
                    .unwrap_or_else(|| "/".into());
                layer_step = !super::copy::is_dir_below(
                    &self.lowers(built.chain.as_ref())?,
                    &built.config.config.working_dir,
                );
            }
            "USER" => built.config.config.user = arg(ins),
            "EXPOSE" => {
                for port in arg(ins).split_whitespace() {
                    let port = if port.contains('/') {
                        port.to_string()
                    } else {
                        format!("{port}/tcp")
                    };
                    built
                        .config
                        .config
                        .exposed_ports
                        .insert(port, serde_json::json!({}));
                }
            }
            "VOLUME" => {
                let list = match &ins.args {
                    Args::Exec(v) => v.clone(),
                    Args::Shell(s) => expand(s, &vars)
                        .split_whitespace()
                        .map(str::to_string)
                        .collect(),
                };
                for v in list {
                    built.config.config.volumes.insert(v, serde_json::json!({}));
                }
            }
            "STOPSIGNAL" => built.config.config.stop_signal = arg(ins),
            "CMD" => {
                built.config.config.cmd = built.command(ins);
                built.cmd_set = true;
            }
            "ENTRYPOINT" => {
                built.config.config.entrypoint = built.command(ins);
                if !built.cmd_set {
                    built.config.config.cmd.clear();
                }
            }
            "SHELL" => match &ins.args {
                Args::Exec(v) if !v.is_empty() => built.shell = Some(v.clone()),
                _ => {
                    return Err(step_error(
                        ins,
                        "SHELL needs the JSON form: SHELL [\"/bin/sh\", \"-c\"]",
                    ));
                }
            },
            "RUN" | "COPY" | "ADD" => layer_step = true,
            "MAINTAINER" => {
                built
                    .config
                    .config
                    .labels
                    .insert("maintainer".into(), arg(ins));
            }
            other => {
                return Err(step_error(
                    ins,
                    format!("{other} is not supported by berth build"),
                ));
            }
        }
        // Build args reach RUN as its environment; other steps see them only through expansion,
        // which is already in their text.
        let args_in_scope: Vec<String> = match ins.keyword.as_str() {
            "RUN" => built.args.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            _ => Vec::new(),
        };
        if !layer_step {
            built.key = built.key.next(&text, &args_in_scope, "");
            self.history(&mut built, &text, true, false);
            return Ok(built);
        }
        let sources = match ins.keyword.as_str() {
            "COPY" | "ADD" => self
                .source_digest(&built, ins, &vars)
                .map_err(|e| e.at(ins))?,
            _ => String::new(),
        };
        let key = built.key.next(&text, &args_in_scope, &sources);
        let cached = match self.request.no_cache {
            true => None,
            false => cache::lookup(self.builder, &key, built.chain.as_ref()),
        };
        let fresh = cached.is_none();
        let (layer, chain) = match cached {
            Some(hit) => {
                (self.output)("CACHED".to_string());
                hit
            }
            None => {
                let made = self
                    .make_layer(plan, stage, &built, ins, &vars)
                    .await
                    .map_err(|e| e.at(ins))?;
                cache::store(self.builder, &key, &made.0, &made.1);
                (self.output)(format!("DONE {:.1}s", started.elapsed().as_secs_f64()));
                made
            }
        };
        built.key = key;
        built.config.rootfs.diff_ids.push(layer.diff_id.clone());
        built.layers.push(layer);
        built.chain = Some(chain);
        self.history(&mut built, &text, false, fresh);
        Ok(built)
    }

    /// Adds the history entry of the step just done (its key is `built.key`).
    fn history(&self, built: &mut Built, text: &str, empty: bool, fresh: bool) {
        let fresh = fresh || self.request.no_cache;
        let created = cache::created(self.builder, &built.key, fresh);
        built.config.history.push(History {
            created: Some(created),
            created_by: Some(text.to_string()),
            comment: Some("berth build".into()),
            empty_layer: empty,
        });
    }
}

impl Built {
    /// The cache key as text.
    pub fn key_text(&self) -> String {
        format!("{:?}", self.key)
    }

    /// The shell for shell-form commands (`SHELL`, default `/bin/sh -c`).
    pub fn shell(&self) -> Vec<String> {
        self.shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    /// The argv of a RUN, CMD or ENTRYPOINT: the exec form as is, the shell form through the
    /// shell.
    pub fn command(&self, ins: &Instruction) -> Vec<String> {
        match &ins.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(s) => {
                let mut argv = self.shell();
                argv.push(s.clone());
                argv
            }
        }
    }
}
