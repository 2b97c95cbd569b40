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
use crate::image::archive::ArchiveError;
use crate::image::archive::export::Format;
use crate::image::service::{ImageError, ImageService};

pub mod proto {
    tonic::include_proto!("berth.v1");
}

/// How often a watched pull's progress is sent.
const WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Bytes per chunk of an exported archive.
const EXPORT_CHUNK: usize = 1 << 20;

pub struct Admin {
    images: Arc<ImageService>,
}

/// The `Transfer` service: import and export of image tarballs.
pub struct Transfer {
    images: Arc<ImageService>,
    /// `image.max_import_bytes`: the largest upload an import spools.
    max_import_bytes: u64,
}

/// Bytes spooled between two looks at the free space.
const SPOOL_CHECK_EVERY: u64 = 8 * 1024 * 1024;

impl Transfer {
    pub fn new(images: Arc<ImageService>, max_import_bytes: u64) -> Transfer {
        Transfer {
            images,
            max_import_bytes,
        }
    }
}

fn status(error: ImageError) -> Status {
    crate::error::to_status(&error)
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

type ExportStream = Pin<Box<dyn Stream<Item = Result<proto::ExportChunk, Status>> + Send>>;

#[tonic::async_trait]
impl proto::transfer_server::Transfer for Transfer {
    type ExportStream = ExportStream;

    /// Spools the upload into the content store's ingest area, then imports it.
    async fn import(
        &self,
        request: Request<tonic::Streaming<proto::ImportChunk>>,
    ) -> Result<Response<proto::ImportResponse>, Status> {
        use tokio::io::AsyncWriteExt as _;
        let mut upload = request.into_inner();
        let scratch = self
            .images
            .store()
            .content
            .scratch()
            .map_err(|e| status(ImageError::Store(e.into())))?;
        let spool_error = |e: std::io::Error| status(ArchiveError::Spool(e).into());
        let mut file = tokio::io::BufWriter::new(tokio::fs::File::from_std(
            scratch.file.try_clone().map_err(spool_error)?,
        ));
        let reserve = self.images.disk_reserve();
        let (mut written, mut unchecked) = (0u64, 0u64);
        while let Some(chunk) = upload.message().await? {
            let len = chunk.data.len() as u64;
            written += len;
            if written > self.max_import_bytes {
                let limit = self.max_import_bytes;
                return Err(status(ArchiveError::SpoolTooLarge { limit }.into()));
            }
            if len > unchecked {
                unchecked = SPOOL_CHECK_EVERY.max(len);
                reserve
                    .room_for(&scratch.path, unchecked)
                    .map_err(|reason| status(ArchiveError::DiskReserve(reason).into()))?;
            }
            unchecked -= len;
            file.write_all(&chunk.data).await.map_err(spool_error)?;
        }
        file.flush().await.map_err(spool_error)?;
        drop(file);
        let records = self.images.import(&scratch.path).await.map_err(status)?;
        let images = records
            .into_iter()
            .map(|r| proto::ImportedImage {
                id: r.id.to_string(),
                repo_tags: r.repo_tags,
                repo_digests: r.repo_digests,
            })
            .collect();
        Ok(Response::new(proto::ImportResponse { images }))
    }

    async fn export(
        &self,
        request: Request<proto::ExportRequest>,
    ) -> Result<Response<ExportStream>, Status> {
        let request = request.into_inner();
        let format = match request.format.as_str() {
            "" | "oci" => Format::Oci,
            "docker" => Format::Docker,
            other => {
                return Err(Status::invalid_argument(format!(
                    "export: format {other:?} is neither \"oci\" nor \"docker\""
                )));
            }
        };
        if request.images.is_empty() {
            return Err(Status::invalid_argument("export: no image named"));
        }
        let job = self
            .images
            .export(&request.images, format)
            .await
            .map_err(status)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let sender = ChunkSender(tx.clone());
            let out = std::io::BufWriter::with_capacity(EXPORT_CHUNK, sender);
            if let Err(e) = job.write(out) {
                let _ = tx.blocking_send(Err(status(e)));
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// A `Write` that sends what it is given as export chunks; fails once the client is gone.
struct ChunkSender(tokio::sync::mpsc::Sender<Result<proto::ExportChunk, Status>>);

impl std::io::Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let chunk = proto::ExportChunk { data: buf.to_vec() };
        self.0.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "export: the client went away",
            )
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
