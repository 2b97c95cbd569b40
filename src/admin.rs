//! berth's own operator API (`proto/berth/v1/admin.proto`), served beside CRI on the same socket:
//! what the `berth` CLI needs that CRI cannot say, such as live pull progress, and what it
//! cannot do: push, tag (`images.rs`) and build (`build.rs`).

mod build;
mod images;

pub use images::Images;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status};

use crate::image::ImageRef;
use crate::image::service::ImageService;

pub mod proto {
    tonic::include_proto!("berth.v1");
}

/// How often a watched pull's progress is sent.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

pub struct Admin {
    images: Arc<ImageService>,
}

impl Admin {
    pub fn new(images: Arc<ImageService>) -> Admin {
        Admin { images }
    }
}

type ProgressStream = Pin<Box<dyn Stream<Item = Result<proto::PullProgress, Status>> + Send>>;

#[tonic::async_trait]
impl proto::admin_server::Admin for Admin {
    type WatchPullStream = ProgressStream;

    async fn watch_pull(
        &self,
        request: Request<proto::WatchPullRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        let spec = request.into_inner().image;
        let image: ImageRef = spec
            .parse()
            .map_err(|e| Status::invalid_argument(format!("{e}")))?;
        let images = self.images.clone();
        let stream = async_stream::stream! {
            while let Some(progress) = images.progress(&image) {
                let layers = progress
                    .layers()
                    .into_iter()
                    .map(|l| proto::LayerProgress {
                        digest: l.digest.to_string(),
                        size: l.size,
                        done: l.done,
                        state: l.state.as_str().to_string(),
                    })
                    .collect();
                yield Ok(proto::PullProgress { layers });
                tokio::time::sleep(WATCH_INTERVAL).await;
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}
