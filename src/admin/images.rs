//! The admin API's `Images` service: pushing and tagging stored images (and building them,
//! `build.rs`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::proto;
use crate::error::to_status;
use crate::image::ImageRef;
use crate::image::push::BlobProgress;
use crate::image::registry::Credentials;
use crate::image::service::ImageService;

/// How often a running push's progress is sent.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

pub struct Images {
    images: Arc<ImageService>,
    builder: Arc<crate::build::Builder>,
}

impl Images {
    pub fn new(images: Arc<ImageService>, builder: Arc<crate::build::Builder>) -> Images {
        Images { images, builder }
    }
}

type PushStream = Pin<Box<dyn Stream<Item = Result<proto::PushProgress, Status>> + Send>>;

fn parse(what: &str, spec: &str) -> Result<ImageRef, Status> {
    spec.parse()
        .map_err(|e| Status::invalid_argument(format!("{what} {spec:?}: {e}")))
}

fn blobs(plan: &[Arc<BlobProgress>]) -> Vec<proto::BlobProgress> {
    plan.iter()
        .map(|b| proto::BlobProgress {
            digest: b.digest.to_string(),
            size: b.size,
            sent: b.sent.load(Ordering::Relaxed).min(b.size),
            state: b.state().as_str().to_string(),
        })
        .collect()
}

/// Aborts its task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[tonic::async_trait]
impl proto::images_server::Images for Images {
    type PushStream = PushStream;
    type BuildStream = super::build::BuildStream;

    async fn build(
        &self,
        request: Request<proto::BuildRequest>,
    ) -> Result<Response<Self::BuildStream>, Status> {
        let stream = super::build::start(self.builder.clone(), request.into_inner())?;
        Ok(Response::new(stream))
    }

    async fn push(
        &self,
        request: Request<proto::PushRequest>,
    ) -> Result<Response<PushStream>, Status> {
        let request = request.into_inner();
        let destination = match request.destination.as_str() {
            "" => request.image.as_str(),
            d => d,
        };
        let dest = parse("destination", destination)?;
        let creds = match (request.username.as_str(), request.password) {
            ("", _) => None,
            (user, password) => Some(Credentials::Basic {
                username: user.to_string(),
                password,
            }),
        };
        let (record, plan) = self
            .images
            .push_plan(&request.image)
            .map_err(|e| to_status(&e))?;
        let images = self.images.clone();
        let (task_record, task_dest, task_plan) = (record.clone(), dest.clone(), plan.clone());
        // A task owns the push; it is aborted when the caller goes away (the stream is dropped).
        let task = tokio::spawn(async move {
            images
                .push(&task_record, &task_dest, creds.as_ref(), &task_plan)
                .await
        });
        let mut task = AbortOnDrop(task);
        let stream = async_stream::stream! {
            let mut ticker = tokio::time::interval(PROGRESS_INTERVAL);
            let result = loop {
                tokio::select! {
                    result = &mut task.0 => break result,
                    _ = ticker.tick() => {
                        yield Ok(proto::PushProgress { blobs: blobs(&plan), result: None });
                    }
                }
            };
            match result {
                Err(e) => yield Err(Status::internal(format!("push task: {e}"))),
                Ok(Ok(pushed)) => {
                    tracing::info!(image = %record.id, destination = %dest, digest = %pushed.digest,
                        uploaded = pushed.uploaded, "pushed");
                    yield Ok(proto::PushProgress {
                        blobs: blobs(&plan),
                        result: Some(proto::PushResult {
                            destination: dest.to_string(),
                            digest: pushed.digest.to_string(),
                            uploaded: pushed.uploaded as u32,
                            note: pushed.note.unwrap_or_default(),
                        }),
                    });
                }
                Ok(Err(e)) => {
                    tracing::warn!(destination = %dest, error = %e, "push failed");
                    yield Err(to_status(&e));
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }

    async fn prune_build_cache(
        &self,
        _request: Request<proto::PruneBuildCacheRequest>,
    ) -> Result<Response<proto::PruneBuildCacheResponse>, Status> {
        let entries = crate::build::cache::prune(&self.builder.dir.join("cache"));
        let swept = self.images.collect().await.map_err(|e| to_status(&e))?;
        tracing::info!(
            entries,
            blobs = swept.blobs,
            snapshots = swept.snapshots,
            "build cache pruned"
        );
        Ok(Response::new(proto::PruneBuildCacheResponse {
            entries: entries as u64,
            blobs: swept.blobs as u64,
            snapshots: swept.snapshots as u64,
        }))
    }

    async fn tag(
        &self,
        request: Request<proto::TagRequest>,
    ) -> Result<Response<proto::TagResponse>, Status> {
        let request = request.into_inner();
        let target = parse("target", &request.target)?;
        let record = self
            .images
            .tag(&request.source, &target)
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(proto::TagResponse {
            id: record.id.to_string(),
            target: target.to_string(),
        }))
    }
}
