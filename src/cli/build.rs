//! `berth build`: builds a Dockerfile in berthd (admin API `Build`) and prints its progress:
//! each step, `CACHED` or the time it took, and RUN output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::admin::proto::BuildRequest;
use crate::client::CriClient;

/// `berth build`'s flags.
pub struct BuildArgs {
    pub context: PathBuf,
    pub file: Option<PathBuf>,
    pub tags: Vec<String>,
    pub target: Option<String>,
    pub build_args: Vec<String>,
    pub no_cache: bool,
    /// `none` or `host`.
    pub network: String,
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(path).with_context(|| format!("{}", path.display()))
}

pub async fn build(client: &CriClient, args: BuildArgs) -> anyhow::Result<()> {
    let mut build_args = HashMap::new();
    for pair in &args.build_args {
        let (k, v) = match pair.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            // `--build-arg NAME` takes the value from the environment, as docker does.
            None => (pair.clone(), std::env::var(pair).unwrap_or_default()),
        };
        build_args.insert(k, v);
    }
    let request = BuildRequest {
        context: absolute(&args.context)?.display().to_string(),
        dockerfile: match &args.file {
            Some(f) => absolute(f)?.display().to_string(),
            None => String::new(),
        },
        tags: args.tags.clone(),
        target: args.target.clone().unwrap_or_default(),
        build_args,
        no_cache: args.no_cache,
        network: args.network.clone(),
    };
    let mut images = client.images.clone();
    let mut stream = images.build(request).await.context("build")?.into_inner();
    loop {
        match stream.message().await {
            Ok(Some(out)) if !out.image_id.is_empty() => {
                println!("built {}", out.image_id);
                return Ok(());
            }
            Ok(Some(out)) => println!("{}", out.line),
            Ok(None) => anyhow::bail!("build: berthd ended the stream without a result"),
            Err(status) => anyhow::bail!("build failed: {}", status.message()),
        }
    }
}

/// `berth builder prune`.
pub async fn prune(client: &CriClient) -> anyhow::Result<()> {
    let mut images = client.images.clone();
    let response = images
        .prune_build_cache(crate::admin::proto::PruneBuildCacheRequest {})
        .await
        .context("builder prune")?
        .into_inner();
    println!(
        "removed {} build cache entries; freed {} blob(s) and {} snapshot(s)",
        response.entries, response.blobs, response.snapshots
    );
    Ok(())
}
