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
    let chunks = async_stream::stream! {
        loop {
            match stream.message().await.context("export") {
                Ok(Some(chunk)) => yield Ok(chunk.data),
                Ok(None) => break,
                Err(e) => {
                    yield Err(e);
                    break;
                }
            }
        }
    };
    write_file(file, Box::pin(chunks)).await
}

/// Writes what `chunks` yields to `file` through a partial file beside it, renamed when
/// complete; a failure removes the partial file. The partial file is new, with a random name
/// (`.FILE.<random>.partial`, created with `O_EXCL`, which never follows a symlink): the CLI
/// often runs as root in a shared directory, where a fixed name could be a symlink another
/// user planted.
async fn write_file(
    file: &Path,
    mut chunks: std::pin::Pin<Box<dyn futures::Stream<Item = anyhow::Result<Vec<u8>>> + Send>>,
) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = dir.join(format!(".{name}.{:016x}.partial", rand::random::<u64>()));
    let mut out = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(&partial)
        .await
        .with_context(|| format!("create {}", partial.display()))?;
    let written = async {
        while let Some(data) = chunks.next().await {
            out.write_all(&data?).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(
        items: Vec<anyhow::Result<Vec<u8>>>,
    ) -> std::pin::Pin<Box<dyn futures::Stream<Item = anyhow::Result<Vec<u8>>> + Send>> {
        Box::pin(futures::stream::iter(items))
    }

    /// `berth export` is run as root, often into a shared directory such as /tmp: a symlink
    /// another user planted where the partial file goes must not make it write (or truncate)
    /// the file the symlink names.
    #[tokio::test]
    async fn export_never_writes_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("shadow");
        std::fs::write(&victim, "root:secret\n").unwrap();
        let file = dir.path().join("images.tar");
        for planted in [
            file.with_extension("partial"),
            dir.path().join("images.tar.partial"),
        ] {
            std::os::unix::fs::symlink(&victim, &planted).unwrap();
        }
        write_file(
            &file,
            chunks(vec![Ok(b"tar".to_vec()), Ok(b"ball".to_vec())]),
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:secret\n");
        assert_eq!(std::fs::read(&file).unwrap(), b"tarball");

        // A failed export leaves neither the file nor a partial file of its own.
        let failed = dir.path().join("failed.tar");
        let err = write_file(
            &failed,
            chunks(vec![Ok(b"x".to_vec()), Err(anyhow::anyhow!("gone"))]),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
        assert!(!failed.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("failed") || n.starts_with(".failed"))
            .collect();
        assert_eq!(left, Vec::<String>::new());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:secret\n");
    }
}
