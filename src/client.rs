//! A CRI client over berthd's unix socket, used by the `berth` CLI and the integration tests.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// berth's admin API messages, for callers of [`CriClient::admin`], [`CriClient::images`] and
/// [`CriClient::transfer`].
pub use crate::admin::proto;
use crate::admin::proto::admin_client::AdminClient;
use crate::admin::proto::images_client::ImagesClient;
use crate::admin::proto::transfer_client::TransferClient;

use crate::cri::api::image_service_client::ImageServiceClient;
use crate::cri::api::runtime_service_client::RuntimeServiceClient;

/// Both CRI clients and berth's admin client on one connection.
#[derive(Clone)]
pub struct CriClient {
    pub runtime: RuntimeServiceClient<Channel>,
    pub image: ImageServiceClient<Channel>,
    pub admin: AdminClient<Channel>,
    /// Image import and export.
    pub transfer: TransferClient<Channel>,
    /// berth's push, tag and build service.
    pub images: ImagesClient<Channel>,
}

/// Connects to the CRI socket at `path`.
pub async fn connect(path: &Path) -> Result<CriClient, tonic::transport::Error> {
    let path: PathBuf = path.to_path_buf();
    // The URI is required by tonic but unused: the connector always dials the socket.
    let channel = Endpoint::from_static("http://berth.sock")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await?;
    let limit = 16 * 1024 * 1024;
    Ok(CriClient {
        runtime: RuntimeServiceClient::new(channel.clone())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit),
        image: ImageServiceClient::new(channel.clone())
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit),
        admin: AdminClient::new(channel.clone()),
        transfer: TransferClient::new(channel.clone()),
        images: ImagesClient::new(channel),
    })
}
