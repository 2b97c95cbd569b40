//! `berth import FILE` and `berth export FILE IMAGE...`: images to and from OCI image layout or
//! docker-archive tarballs, streamed through berthd's `Images` admin service.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::args::{ArchiveFormat, Output};
use crate::admin::proto::{ExportRequest, ImportChunk};
use crate::client::CriClient;

/// Bytes per uploaded chunk (under tonic's 4 MiB message limit).
const CHUNK: usize = 1 << 20;

#[derive(Serialize)]
struct Imported {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
}

/// Uploads `file` (`-` for stdin) and prints the images berthd imported from it.
pub async fn import(client: &CriClient, file: &Path, out: Output) -> anyhow::Result<()> {
    let mut reader: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if file == Path::new("-") {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(file)
                .await
                .with_context(|| format!("open {}", file.display()))?,
        )
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let name = file.display().to_string();
    let reading = tokio::spawn(async move {
        loop {
            let mut data = Vec::with_capacity(CHUNK);
            let n = (&mut reader)
                .take(CHUNK as u64)
                .read_to_end(&mut data)
                .await
                .with_context(|| format!("read {name}"))?;
            if n == 0 || tx.send(ImportChunk { data }).await.is_err() {
                return anyhow::Ok(());
            }
        }
    });
    let mut transfer = client.transfer.clone();
    let response = transfer
        .import(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    reading.await.context("reader task")??;
    let images = response
        .with_context(|| format!("import {}", file.display()))?
        .into_inner()
        .images;
    let images: Vec<Imported> = images
        .into_iter()
        .map(|i| Imported {
            id: i.id,
            repo_tags: i.repo_tags,
            repo_digests: i.repo_digests,
        })
        .collect();
    if out == Output::Json {
        return super::print_json(&images);
    }
    for image in &images {
        let names = if image.repo_tags.is_empty() {
            "<none>".to_string()
        } else {
            image.repo_tags.join(", ")
        };
        println!("imported {names} {}", image.id);
    }
    Ok(())
}

/// Writes `images` as one tarball to `file` (`-` for stdout). A failed export removes the
/// partial file.
pub async fn export(
    client: &CriClient,
    file: &Path,
    images: &[String],
    format: ArchiveFormat,
) -> anyhow::Result<()> {
    let request = ExportRequest {
        images: images.to_vec(),
        format: match format {
            ArchiveFormat::Oci => "oci",
            ArchiveFormat::Docker => "docker",
        }
        .to_string(),
    };
    let mut transfer = client.transfer.clone();
    let mut stream = transfer
        .export(request)
        .await
        .with_context(|| format!("export {}", images.join(" ")))?
        .into_inner();
    if file == Path::new("-") {
        let mut stdout = tokio::io::stdout();
        while let Some(chunk) = stream.message().await.context("export")? {
            stdout.write_all(&chunk.data).await?;
        }
        stdout.flush().await?;
        return Ok(());
    }
    let partial = file.with_extension("partial");
    let written = async {
        let mut out = tokio::fs::File::create(&partial)
            .await
            .with_context(|| format!("create {}", partial.display()))?;
        while let Some(chunk) = stream.message().await.context("export")? {
            out.write_all(&chunk.data).await?;
        }
        out.sync_all().await?;
        tokio::fs::rename(&partial, file)
            .await
            .with_context(|| format!("rename to {}", file.display()))
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    written
}
