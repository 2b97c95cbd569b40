//! `berth pull IMAGE`: pulls through CRI while drawing one progress bar per layer from the
//! admin API's `WatchPull` stream, like `docker pull`.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::admin::proto::{PullProgress, WatchPullRequest};
use crate::client::CriClient;
use crate::cri::api;
use crate::image::ImageRef;

pub async fn pull(client: &CriClient, image: &str) -> anyhow::Result<()> {
    let reference: ImageRef = image.parse()?;
    let mut cri = client.image.clone();
    let request = api::PullImageRequest {
        image: Some(api::ImageSpec {
            image: reference.to_string(),
            ..Default::default()
        }),
        auth: None,
        sandbox_config: None,
    };
    let mut pull = tokio::spawn(async move { cri.pull_image(request).await });
    let bars = Bars::new();
    let result = loop {
        tokio::select! {
            result = &mut pull => break result.context("pull task")?,
            _ = watch(client, &reference, &bars) => {
                // No pull visible yet (or it just ended): look again shortly.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    bars.finish();
    let id = result
        .with_context(|| format!("pull {reference}"))?
        .into_inner()
        .image_ref;
    println!("{reference}: pulled {id}");
    Ok(())
}

async fn watch(client: &CriClient, image: &ImageRef, bars: &Bars) {
    let mut admin = client.admin.clone();
    let request = WatchPullRequest {
        image: image.to_string(),
    };
    let Ok(response) = admin.watch_pull(request).await else {
        return;
    };
    let mut stream = response.into_inner();
    while let Ok(Some(progress)) = stream.message().await {
        bars.update(&progress);
    }
}

struct Bars {
    multi: MultiProgress,
    bars: std::sync::Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::new(),
            bars: Default::default(),
        }
    }

    fn update(&self, progress: &PullProgress) {
        let style = ProgressStyle::with_template(
            "{prefix}: {msg:<12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        let mut bars = self.bars.lock().expect("bars lock");
        for layer in &progress.layers {
            let bar = bars.entry(layer.digest.clone()).or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new(layer.size));
                bar.set_style(style.clone());
                let short = layer.digest.trim_start_matches("sha256:");
                bar.set_prefix(short[..12.min(short.len())].to_string());
                bar
            });
            bar.set_position(layer.done);
            let message = match layer.state.as_str() {
                "exists" => "Already exists",
                "done" => "Pull complete",
                "downloading" => "Downloading",
                _ => "Waiting",
            };
            bar.set_message(message);
            if matches!(layer.state.as_str(), "exists" | "done") && !bar.is_finished() {
                if layer.state == "exists" {
                    bar.set_position(layer.size);
                }
                bar.finish();
            }
        }
    }

    fn finish(&self) {
        for bar in self.bars.lock().expect("bars lock").values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}
