//! `berth images`, `berth rmi`, `berth history` and `berth inspect`: image listing and detail
//! over CRI.

use anyhow::{Context as _, bail};

use crate::client::CriClient;
use crate::cri::api;

fn spec(image: &str) -> Option<api::ImageSpec> {
    Some(api::ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

/// Splits `registry/repo:tag` into (`registry/repo`, `tag`).
fn split_tag(name: &str) -> (&str, &str) {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, "<none>"),
    }
}

pub async fn images(client: &CriClient) -> anyhow::Result<()> {
    let mut cri = client.image.clone();
    let list = cri
        .list_images(api::ListImagesRequest { filter: None })
        .await?
        .into_inner()
        .images;
    println!(
        "{:<50} {:<16} {:<14} {:>10}",
        "IMAGE", "TAG", "IMAGE ID", "SIZE"
    );
    for image in list {
        let id = &image.id.trim_start_matches("sha256:")[..12];
        let size = super::human_bytes(image.size);
        if image.repo_tags.is_empty() {
            let repo = image
                .repo_digests
                .first()
                .map_or("<none>", |d| d.split('@').next().unwrap_or(""));
            println!("{repo:<50} {:<16} {id:<14} {size:>10}", "<none>");
        }
        for name in &image.repo_tags {
            let (repo, tag) = split_tag(name);
            println!("{repo:<50} {tag:<16} {id:<14} {size:>10}");
        }
    }
    Ok(())
}

pub async fn remove(client: &CriClient, names: &[String]) -> anyhow::Result<()> {
    let mut cri = client.image.clone();
    for name in names {
        let status = cri
            .image_status(api::ImageStatusRequest {
                image: spec(name),
                verbose: false,
            })
            .await?
            .into_inner();
        let Some(image) = status.image else {
            bail!("{name}: no such image");
        };
        cri.remove_image(api::RemoveImageRequest { image: spec(name) })
            .await
            .with_context(|| format!("remove {name}"))?;
        println!("Deleted: {}", image.id);
    }
    Ok(())
}

/// The verbose `ImageStatus` info (config, manifest, chain ids) of one image.
async fn verbose_info(client: &CriClient, name: &str) -> anyhow::Result<serde_json::Value> {
    let mut cri = client.image.clone();
    let status = cri
        .image_status(api::ImageStatusRequest {
            image: spec(name),
            verbose: true,
        })
        .await?
        .into_inner();
    if status.image.is_none() {
        bail!("{name}: no such image");
    }
    let info = status
        .info
        .get("info")
        .context("berthd sent no image info")?;
    Ok(serde_json::from_str(info)?)
}

pub async fn inspect(client: &CriClient, name: &str) -> anyhow::Result<()> {
    let info = verbose_info(client, name).await?;
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(())
}

/// Like `docker history`: newest step first.
pub async fn history(client: &CriClient, name: &str) -> anyhow::Result<()> {
    let info = verbose_info(client, name).await?;
    let steps = info["imageSpec"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    println!("{:<22} {:<6} CREATED BY", "CREATED", "LAYER");
    for step in steps.iter().rev() {
        let created = step["created"].as_str().unwrap_or("");
        let layer = if step["empty_layer"].as_bool().unwrap_or(false) {
            "-"
        } else {
            "yes"
        };
        let by = step["created_by"].as_str().unwrap_or("");
        println!("{:<22} {layer:<6} {by}", &created[..created.len().min(20)]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_tag_keeps_ports() {
        assert_eq!(
            super::split_tag("127.0.0.1:5000/library/debian:bookworm"),
            ("127.0.0.1:5000/library/debian", "bookworm")
        );
        assert_eq!(
            super::split_tag("host:5000/app"),
            ("host:5000/app", "<none>")
        );
    }
}
