//! `berth build`: a Dockerfile built into an image in berth's store, with no other daemon.
//! Steps run through berth's own executor on overlay snapshots (`run.rs`), COPY/ADD write into
//! a fresh upper dir (`copy.rs`), each upper dir becomes an OCI layer (`layer.rs`), and a cache
//! keyed by parent, instruction text, build args in scope and source content (`cache.rs`) skips
//! steps whose inputs did not change. `stage.rs` is the per-instruction loop.

pub mod cache;
pub mod context;
mod copy;
pub mod dockerfile;
pub mod expand;
mod image;
mod layer;
mod output;
mod pattern;
mod plan;
mod run;
mod sandbox;
mod source;
mod space;
mod stage;
mod steps;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use run::runner_main;

use crate::error::{Classify, Kind};
use crate::image::ImageRef;
use crate::image::service::ImageService;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("Dockerfile line {line}: {reason}")]
    Parse { line: usize, reason: String },
    #[error("build context: {0}")]
    Context(String),
    #[error("Dockerfile line {line}: {instruction}: {reason}")]
    Step {
        line: usize,
        instruction: String,
        reason: String,
    },
    #[error("Dockerfile line {line}: RUN {command}: exited with code {code}")]
    RunFailed {
        line: usize,
        command: String,
        code: i32,
    },
    #[error("COPY/ADD source {0}")]
    Source(String),
    #[error("run: {0}")]
    Run(String),
    #[error("copy: {0}")]
    Copy(String),
    #[error("layer: {0}")]
    Layer(String),
    /// A base image (`FROM`, `COPY --from`) that is not in the store.
    #[error("image {image}: {reason}")]
    Base { image: String, reason: String },
    /// A base image name that does not parse.
    #[error("image {image}: {reason}")]
    BaseName { image: String, reason: String },
    /// Pulling a base image failed; its code is the pull's.
    #[error("image {image}: {source}")]
    Pull {
        image: String,
        source: Box<crate::image::service::ImageError>,
    },
    #[error("store: {0}")]
    Store(String),
    /// Going on would take the data filesystem's free space below `image.disk_reserve`.
    #[error("{0}")]
    DiskReserve(String),
}

impl BuildError {
    pub fn parse(line: usize, reason: String) -> BuildError {
        BuildError::Parse { line, reason }
    }

    /// A context or source error of instruction `ins` (a missing or escaping COPY source),
    /// with its line; other errors as they are.
    pub fn at(self, ins: &dockerfile::Instruction) -> BuildError {
        match self {
            BuildError::Context(reason) | BuildError::Source(reason) => BuildError::Step {
                line: ins.line,
                instruction: ins.keyword.clone(),
                reason,
            },
            other => other,
        }
    }
}

impl Classify for BuildError {
    fn kind(&self) -> Kind {
        match self {
            BuildError::Parse { .. }
            | BuildError::Context(_)
            | BuildError::Source(_)
            | BuildError::Step { .. } => Kind::InvalidArgument,
            BuildError::RunFailed { .. } => Kind::FailedPrecondition,
            BuildError::Base { .. } => Kind::NotFound,
            BuildError::BaseName { .. } => Kind::InvalidArgument,
            BuildError::Pull { source, .. } => source.kind(),
            BuildError::DiskReserve(_) => Kind::ResourceExhausted,
            BuildError::Run(_)
            | BuildError::Copy(_)
            | BuildError::Layer(_)
            | BuildError::Store(_) => Kind::Internal,
        }
    }
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub context: PathBuf,
    /// The Dockerfile; `<context>/Dockerfile` when None.
    pub dockerfile: Option<PathBuf>,
    pub tags: Vec<ImageRef>,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub no_cache: bool,
    /// RUN steps use the host's network instead of a namespace with only loopback.
    pub network_host: bool,
}

/// The builder berthd serves `Build` with.
pub struct Builder {
    pub images: Arc<ImageService>,
    /// `berth-shim`, whose `build-run` runs each RUN step.
    pub shim: PathBuf,
    /// `<root_dir>/build`: the layer cache and the steps' scratch dirs.
    pub dir: PathBuf,
    /// Limits of RUN steps and their output.
    pub limits: crate::config::BuildConfig,
    /// How RUN steps' cgroups are made.
    pub driver: crate::cgroup::Driver,
    /// Free space a build leaves on the data filesystem (`image.disk_reserve`).
    pub disk_reserve: crate::image::unpack::DiskReserve,
}

/// Progress lines of a build go here.
pub type Output = Arc<dyn Fn(String) + Send + Sync>;

impl Builder {
    /// Removes the scratch dirs of builds a crash interrupted (unmounting what is left mounted
    /// in them). Call at startup, before any build.
    pub fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("step-") {
                continue;
            }
            for mount in ["rootfs", "from"] {
                let _ = crate::snapshot::mount::unmount_path(&entry.path().join(mount));
            }
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }

    /// Builds `request`; returns the image id. Every step prints to `output`.
    pub async fn build(
        &self,
        request: &BuildRequest,
        output: Output,
    ) -> Result<String, BuildError> {
        let context = context::Context::open(&request.context)?;
        let text = context.dockerfile(request.dockerfile.as_deref())?;
        let instructions = dockerfile::parse(&text)?;
        let plan = plan::plan(&instructions, request)?;
        // Base images are pulled before the build holds the garbage-collection lock.
        for base in plan.bases() {
            self.base(&base, &output).await?;
        }
        let _gc = self.images.hold_gc().await;
        std::fs::create_dir_all(self.dir.join("cache"))
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| BuildError::Store(format!("{}: {e}", self.dir.display())))?;
        let mut run = stage::Run {
            builder: self,
            request,
            context: &context,
            output: output.clone(),
            stages: Vec::new(),
            stage_names: plan.stages.iter().map(|s| s.name.clone()).collect(),
            step: 0,
            steps: plan.step_count(),
            reserve: space::Reserve::new(self.dir.clone(), self.disk_reserve)?,
        };
        let built = run.all(&plan).await?;
        let id = image::commit(self, &built, &request.tags)?;
        output(format!("writing image {id}"));
        for tag in &request.tags {
            output(format!("naming to {tag}"));
        }
        Ok(id)
    }

    /// The stored image `name`, pulled when missing.
    async fn base(
        &self,
        name: &str,
        output: &Output,
    ) -> Result<crate::image::store::ImageRecord, BuildError> {
        if let Some(record) = self
            .images
            .status(name)
            .map_err(|e| BuildError::Store(format!("image {name}: {e}")))?
        {
            return Ok(record);
        }
        let reference: ImageRef = name.parse().map_err(|e| BuildError::BaseName {
            image: name.to_string(),
            reason: format!("{e}"),
        })?;
        output(format!("pulling {reference}"));
        self.images
            .pull(&reference, None)
            .await
            .map_err(|e| BuildError::Pull {
                image: name.to_string(),
                source: Box::new(e),
            })
    }
}
