//! The ImageService trait: each method hands its request to the file that implements the RPC.

use tonic::{Request, Response, Status};

use super::list_stream::{self, Replies};
use super::{Cri, api, image_pull, image_query, image_remove, reply};

type ImageReplies = Replies<api::StreamImagesResponse>;

#[tonic::async_trait]
impl api::image_service_server::ImageService for Cri {
    type StreamImagesStream = ImageReplies;

    async fn stream_images(
        &self,
        request: Request<api::StreamImagesRequest>,
    ) -> Result<Response<ImageReplies>, Status> {
        list_stream::images(&self.ctx, request.into_inner())
    }

    async fn list_images(
        &self,
        request: Request<api::ListImagesRequest>,
    ) -> Result<Response<api::ListImagesResponse>, Status> {
        reply(image_query::list_images(
            &self.ctx.images,
            request.into_inner(),
        ))
    }

    async fn image_status(
        &self,
        request: Request<api::ImageStatusRequest>,
    ) -> Result<Response<api::ImageStatusResponse>, Status> {
        reply(image_query::image_status(
            &self.ctx.images,
            request.into_inner(),
        ))
    }

    async fn pull_image(
        &self,
        request: Request<api::PullImageRequest>,
    ) -> Result<Response<api::PullImageResponse>, Status> {
        let (metadata, _, req) = request.into_parts();
        reply(image_pull::pull_image(&self.ctx.images, &metadata, req).await)
    }

    async fn remove_image(
        &self,
        request: Request<api::RemoveImageRequest>,
    ) -> Result<Response<api::RemoveImageResponse>, Status> {
        reply(image_remove::remove_image(&self.ctx.images, request.into_inner()).await)
    }

    async fn image_fs_info(
        &self,
        _request: Request<api::ImageFsInfoRequest>,
    ) -> Result<Response<api::ImageFsInfoResponse>, Status> {
        reply(image_query::image_fs_info(
            &self.ctx.images,
            &self.ctx.config.root_dir,
        ))
    }
}
