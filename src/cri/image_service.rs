//! The ImageService trait: each method hands its request to the file that implements the RPC.

use tonic::{Request, Response, Status};

use super::{Cri, api, unimplemented};

#[tonic::async_trait]
impl api::image_service_server::ImageService for Cri {
    async fn list_images(
        &self,
        _request: Request<api::ListImagesRequest>,
    ) -> Result<Response<api::ListImagesResponse>, Status> {
        unimplemented("ListImages")
    }

    async fn image_status(
        &self,
        _request: Request<api::ImageStatusRequest>,
    ) -> Result<Response<api::ImageStatusResponse>, Status> {
        unimplemented("ImageStatus")
    }

    async fn pull_image(
        &self,
        _request: Request<api::PullImageRequest>,
    ) -> Result<Response<api::PullImageResponse>, Status> {
        unimplemented("PullImage")
    }

    async fn remove_image(
        &self,
        _request: Request<api::RemoveImageRequest>,
    ) -> Result<Response<api::RemoveImageResponse>, Status> {
        unimplemented("RemoveImage")
    }

    async fn image_fs_info(
        &self,
        _request: Request<api::ImageFsInfoRequest>,
    ) -> Result<Response<api::ImageFsInfoResponse>, Status> {
        unimplemented("ImageFsInfo")
    }
}
