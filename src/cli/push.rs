//! `berth push IMAGE [DEST]` and `berth tag SOURCE TARGET`, through the admin API's `Images`
//! service: berthd reads its own content store and talks to the registry.

use std::collections::HashMap;

use anyhow::Context as _;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::admin::proto::{PushProgress, PushRequest, TagRequest};
use crate::client::CriClient;

/// Credentials for `berth push`, from `--username` and the `BERTH_REGISTRY_PASSWORD` variable.
pub struct PushAuth {
    pub username: Option<String>,
    pub password: Option<String>,
}

pub async fn push(
    client: &CriClient,
    image: &str,
    destination: Option<&str>,
    auth: PushAuth,
) -> anyhow::Result<()> {
    let mut images = client.images.clone();
    let request = PushRequest {
        image: image.to_string(),
        destination: destination.unwrap_or_default().to_string(),
        username: auth.username.unwrap_or_default(),
        password: auth.password.unwrap_or_default(),
    };
    let shown = destination.unwrap_or(image);
    let mut stream = images
        .push(request)
        .await
        .with_context(|| format!("push {shown}"))?
        .into_inner();
    let bars = Bars::default();
    loop {
        let message = stream.message().await;
        let progress = match message {
            Ok(Some(progress)) => progress,
            Ok(None) => anyhow::bail!("push {shown}: berthd ended the stream without a result"),
            Err(status) => {
                bars.abandon();
                return Err(status).with_context(|| format!("push {shown}"));
            }
        };
        bars.update(&progress);
        if let Some(result) = progress.result {
            bars.abandon();
            if !result.note.is_empty() {
                eprintln!("note: {}", result.note);
            }
            println!(
                "{}: pushed {} ({} blob(s) uploaded)",
                result.destination, result.digest, result.uploaded
            );
            return Ok(());
        }
    }
}

pub async fn tag(client: &CriClient, source: &str, target: &str) -> anyhow::Result<()> {
    let mut images = client.images.clone();
    let request = TagRequest {
        source: source.to_string(),
        target: target.to_string(),
    };
    let response = images
        .tag(request)
        .await
        .with_context(|| format!("tag {source} {target}"))?
        .into_inner();
    println!("{} -> {}", response.target, response.id);
    Ok(())
}

/// One line per blob, like `docker push`.
#[derive(Default)]
struct Bars {
    multi: MultiProgress,
    bars: std::sync::Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn update(&self, progress: &PushProgress) {
        let style = ProgressStyle::with_template(
            "{prefix}: {msg:<16} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        let mut bars = self.bars.lock().expect("bars lock");
        for blob in &progress.blobs {
            let bar = bars.entry(blob.digest.clone()).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(blob.size));
                bar.set_style(style.clone());
                let short = blob.digest.trim_start_matches("sha256:");
                bar.set_prefix(short[..12.min(short.len())].to_string());
                bar
            });
            if bar.is_finished() {
                continue;
            }
            bar.set_position(blob.sent);
            let (message, done) = match blob.state.as_str() {
                "exists" => ("Layer already exists", true),
                "mounted" => ("Mounted", true),
                "pushed" => ("Pushed", true),
                "pushing" => ("Pushing", false),
                _ => ("Waiting", false),
            };
            bar.set_message(message);
            if done {
                bar.set_position(blob.size);
                bar.finish();
            }
        }
    }

    fn abandon(&self) {
        for bar in self.bars.lock().expect("bars lock").values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}
