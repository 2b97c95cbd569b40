//! The steps that make a layer: RUN (through the executor), COPY and ADD (into a fresh upper
//! dir), and WORKDIR when its directory does not exist yet. Each works in a scratch dir under
//! `<root_dir>/build` that is removed whatever happens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::BuildError;
use super::copy::{self, Apply};
use super::dockerfile::{Args, Instruction};
use super::expand::expand;
use super::layer::{self, Layer};
use super::plan::Plan;
use super::run::{self, RunStep};
use super::space::Reserve;
use super::stage::{Built, Run};
use crate::image::digest::Digest;
use crate::snapshot::mount::{mount_readonly_layers, unmount_path};

/// A scratch dir, removed (after unmounting what is mounted in it) on drop.
struct Scratch {
    path: PathBuf,
    mounted: Vec<PathBuf>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for m in self.mounted.iter().rev() {
            let _ = unmount_path(m);
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn step_error(ins: &Instruction, reason: impl Into<String>) -> BuildError {
    BuildError::Step {
        line: ins.line,
        instruction: ins.keyword.clone(),
        reason: reason.into(),
    }
}

/// The words of a COPY/ADD: sources, then the destination.
fn copy_words(ins: &Instruction, vars: &BTreeMap<String, String>) -> Vec<String> {
    match &ins.args {
        Args::Exec(v) => v.iter().map(|w| expand(w, vars)).collect(),
        Args::Shell(s) => {
            let text = expand(s, vars);
            shlex::split(&text)
                .unwrap_or_else(|| text.split_whitespace().map(str::to_string).collect())
        }
    }
}

impl Run<'_> {
    /// What the sources of a COPY/ADD are, for the cache: the content digest of context files,
    /// or the key of the stage (the id of the image) they come from.
    pub fn source_digest(
        &self,
        _built: &Built,
        ins: &Instruction,
        vars: &BTreeMap<String, String>,
    ) -> Result<String, BuildError> {
        if let Some(from) = ins.flag("from") {
            return Ok(match self.stage_by_name(from) {
                Some(stage) => format!("stage {:?}", stage.key),
                None => format!("image {}", self.image(from)?.key_text()),
            });
        }
        let words = copy_words(ins, vars);
        if words.len() < 2 {
            return Err(step_error(
                ins,
                "needs at least one source and a destination",
            ));
        }
        let mut all = Vec::new();
        for source in &words[..words.len() - 1] {
            if source.contains("://") {
                return Err(step_error(ins, "sources from URLs are not supported"));
            }
            all.extend(self.context.sources(source)?);
        }
        self.context.digest(&all)
    }

    fn stage_by_name(&self, name: &str) -> Option<&Built> {
        let names = &self.stage_names;
        let index = names
            .iter()
            .position(|n| n.as_deref() == Some(&name.to_ascii_lowercase()))
            .or_else(|| name.parse().ok().filter(|i: &usize| *i < self.stages.len()))?;
        self.stages.get(index)?.as_ref()
    }

    /// Runs a layer step for real; returns the layer and its chain id.
    pub async fn make_layer(
        &self,
        _plan: &Plan,
        _stage: usize,
        built: &Built,
        ins: &Instruction,
        vars: &BTreeMap<String, String>,
    ) -> Result<(Layer, Digest), BuildError> {
        let path = self
            .builder
            .dir
            .join(format!("step-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&path)
            .map_err(|e| BuildError::Store(format!("{}: {e}", path.display())))?;
        let mut scratch = Scratch {
            path,
            mounted: Vec::new(),
        };
        let lowers = self.lowers(built.chain.as_ref())?;
        let upper = scratch.path.join("upper");
        std::fs::create_dir_all(&upper).map_err(|e| BuildError::Store(e.to_string()))?;
        match ins.keyword.as_str() {
            "RUN" => self.run(built, ins, &lowers, &scratch.path).await?,
            "WORKDIR" => {
                let rel = built
                    .config
                    .config
                    .working_dir
                    .trim_start_matches('/')
                    .to_string();
                copy::make_parents(&upper, &lowers, &format!("{rel}/x"))?;
            }
            _ => self.copy(built, ins, vars, &lowers, &upper, &mut scratch)?,
        }
        let reserve = &self.reserve;
        reserve.check(&format!("{} step", ins.keyword), 0)?;
        let tar = scratch.path.join("layer.tar");
        let diff_id = layer::tar_upper(&upper, &tar, reserve)?;
        layer::commit(
            self.builder.images.store(),
            &tar,
            &diff_id,
            built.chain.as_ref(),
            reserve,
        )
    }

    async fn run(
        &self,
        built: &Built,
        ins: &Instruction,
        lowers: &[PathBuf],
        dir: &Path,
    ) -> Result<(), BuildError> {
        let config = &built.config.config;
        let mut env = config.env.clone();
        for (k, v) in &built.args {
            if !env
                .iter()
                .any(|e| e.split_once('=').map(|(n, _)| n) == Some(k))
            {
                env.push(format!("{k}={v}"));
            }
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={}", crate::spec::DEFAULT_PATH));
        }
        let step = RunStep {
            shim: &self.builder.shim,
            lowers: lowers.to_vec(),
            dir,
            args: built.command(ins),
            env,
            cwd: config.working_dir.clone(),
            user: config.user.clone(),
            limits: &self.builder.limits,
            driver: self.builder.driver,
            network_host: self.request.network_host,
        };
        let output = self.output.clone();
        let code = run::run(step, &move |line| output(format!("  | {line}"))).await?;
        if code != 0 {
            return Err(BuildError::RunFailed {
                line: ins.line,
                command: ins.raw(),
                code,
            });
        }
        Ok(())
    }

    fn copy(
        &self,
        built: &Built,
        ins: &Instruction,
        vars: &BTreeMap<String, String>,
        lowers: &[PathBuf],
        upper: &Path,
        scratch: &mut Scratch,
    ) -> Result<(), BuildError> {
        let words = copy_words(ins, vars);
        let (sources, dest) = words.split_at(words.len() - 1);
        let dest = &dest[0];
        let dest_abs = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!(
                "{}/{dest}",
                built.config.config.working_dir.trim_end_matches('/')
            )
        };
        let dest_rel = super::context::normalize(&dest_abs).unwrap_or_default();
        // Where the files come from, as (root, root-relative paths).
        let (root, rels): (PathBuf, Vec<String>) = match ins.flag("from") {
            Some(from) => {
                let chain = match self.stage_by_name(from) {
                    Some(stage) => stage.chain.clone(),
                    None => self.image(from)?.chain,
                };
                let mount = scratch.path.join("from");
                std::fs::create_dir_all(&mount).map_err(|e| BuildError::Store(e.to_string()))?;
                let from_lowers = self.lowers(chain.as_ref())?;
                if !from_lowers.is_empty() {
                    mount_readonly_layers(&from_lowers, &mount)
                        .map_err(|e| BuildError::Copy(e.to_string()))?;
                    scratch.mounted.push(mount.clone());
                }
                (mount, sources.to_vec())
            }
            None => {
                let mut rels = Vec::new();
                for s in sources {
                    rels.extend(self.context.sources(s)?);
                }
                (self.context.root.clone(), rels)
            }
        };
        let apply = Apply {
            owner: match ins.flag("chown") {
                Some(spec) => Some(self.owner(ins, spec, lowers)?),
                None => None,
            },
            mode: match ins.flag("chmod") {
                Some(m) => Some(
                    u32::from_str_radix(m, 8)
                        .map_err(|_| step_error(ins, format!("--chmod={m}: not an octal mode")))?,
                ),
                None => None,
            },
        };
        let many = rels.len() > 1 || dest.ends_with('/');
        let from_context = ins.flag("from").is_none();
        for rel in &rels {
            let src = copy::Source::open_in(&root, rel)?;
            let name = Path::new(rel)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            let is_dir = src.is_dir();
            let archive = ins.keyword == "ADD" && !is_dir && is_tar(&src.path);
            let target_rel = if is_dir
                || archive
                || !(many
                    || copy::is_dir_below(lowers, &dest_rel)
                    || copy::is_dir_in(upper, &dest_rel))
            {
                dest_rel.clone()
            } else {
                format!("{dest_rel}/{}", name.unwrap_or_default())
            };
            if is_dir || archive {
                copy::make_parents(upper, lowers, &format!("{target_rel}/x"))?;
            } else {
                copy::make_parents(upper, lowers, &target_rel)?;
            }
            if archive {
                let unpacked = scratch
                    .path
                    .join(format!("archive-{:08x}", rand::random::<u32>()));
                std::fs::create_dir_all(&unpacked).map_err(|e| BuildError::Copy(e.to_string()))?;
                extract(&src, &unpacked, &self.reserve)?;
                copy::copy_tree(
                    &copy::Source::open_in(&unpacked, "")?,
                    upper,
                    &target_rel,
                    Apply::default(),
                    &|_| false,
                    &self.reserve,
                )?;
            } else if from_context {
                let context = self.context;
                let skip = |p: &Path| {
                    p.strip_prefix(&context.root)
                        .is_ok_and(|rel| context.ignored(&rel.to_string_lossy()))
                };
                copy::copy_tree(&src, upper, &target_rel, apply, &skip, &self.reserve)?;
            } else {
                copy::copy_tree(&src, upper, &target_rel, apply, &|_| false, &self.reserve)?;
            }
        }
        Ok(())
    }

    /// `--chown=user[:group]` resolved against the stage's `/etc/passwd` and `/etc/group`.
    fn owner(
        &self,
        ins: &Instruction,
        spec: &str,
        lowers: &[PathBuf],
    ) -> Result<(u32, u32), BuildError> {
        let read = |file: &str| {
            lowers
                .iter()
                .map(|l| crate::runtime::image_etc::read_in_root(l, file).unwrap_or_default())
                .find(|t| !t.is_empty())
                .unwrap_or_default()
        };
        let user = crate::spec::resolve_user(spec, &read("etc/passwd"), &read("etc/group"))
            .map_err(|e| step_error(ins, format!("--chown={spec}: {e}")))?;
        Ok((user.uid, user.gid))
    }
}

/// Whether ADD should unpack `path`: a tar, gzip-compressed or not.
fn is_tar(path: &Path) -> bool {
    let name = path.to_string_lossy();
    [".tar", ".tar.gz", ".tgz"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Unpacks a local tar archive with the hardened layer unpacker.
fn extract(source: &copy::Source, into: &Path, reserve: &Reserve) -> Result<(), BuildError> {
    let file = source.open_file()?;
    let archive = &source.path;
    let name = archive.to_string_lossy();
    let limits = reserve.limits();
    let result = if name.ends_with(".tar") {
        crate::image::unpack::unpack_layer(file, into, &limits)
    } else {
        crate::image::unpack::unpack_layer(flate2::read::GzDecoder::new(file), into, &limits)
    };
    result.map(|_| ()).map_err(|e| match e {
        crate::image::unpack::UnpackError::DiskReserve(reason) => {
            BuildError::DiskReserve(format!("ADD {}: {reason}", archive.display()))
        }
        e => BuildError::Copy(format!("ADD {}: {e}", archive.display())),
    })
}
