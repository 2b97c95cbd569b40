//! `RemoveImage`: by id, tag or digest; all names of the image go; unknown images are fine.

use super::api;
use crate::image::service::{ImageError, ImageService};

pub async fn remove_image(
    images: &ImageService,
    req: api::RemoveImageRequest,
) -> Result<api::RemoveImageResponse, ImageError> {
    let spec = req.image.map(|i| i.image).unwrap_or_default();
    super::record("image", &spec);
    images.remove(&spec).await?;
    Ok(api::RemoveImageResponse {})
}
