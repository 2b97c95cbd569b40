//! The admin API's `Build`: runs `berth build` in berthd and streams its progress lines.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::Status;

use super::proto;
use crate::build::{BuildRequest, Builder};
use crate::error::to_status;
use crate::image::ImageRef;

pub type BuildStream = Pin<Box<dyn Stream<Item = Result<proto::BuildOutput, Status>> + Send>>;

/// Checks the request, starts the build on a task (aborted when the caller goes away) and
/// returns its output as a stream.
pub fn start(builder: Arc<Builder>, request: proto::BuildRequest) -> Result<BuildStream, Status> {
    let context = std::path::PathBuf::from(&request.context);
    if !context.is_absolute() {
        return Err(Status::invalid_argument(format!(
            "build context {:?} must be an absolute path",
            request.context
        )));
    }
    let tags = request
        .tags
        .iter()
        .map(|t| {
            t.parse::<ImageRef>()
                .map_err(|e| Status::invalid_argument(format!("tag {t:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let build = BuildRequest {
        context,
        dockerfile: (!request.dockerfile.is_empty()).then(|| request.dockerfile.clone().into()),
        tags,
        target: (!request.target.is_empty()).then(|| request.target.clone()),
        build_args: request.build_args.into_iter().collect(),
        no_cache: request.no_cache,
        network_host: match request.network.as_str() {
            "" | "none" => false,
            "host" => true,
            other => {
                return Err(Status::invalid_argument(format!(
                    "build network {other:?} is neither \"none\" nor \"host\""
                )));
            }
        },
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<proto::BuildOutput, Status>>();
    let lines = tx.clone();
    let output: crate::build::Output = Arc::new(move |line: String| {
        let _ = lines.send(Ok(proto::BuildOutput {
            line,
            image_id: String::new(),
        }));
    });
    let task = tokio::spawn(async move {
        let result = builder.build(&build, output).await;
        let message = match result {
            Ok(id) => Ok(proto::BuildOutput {
                line: String::new(),
                image_id: id,
            }),
            Err(e) => {
                tracing::info!(error = %e, "build failed");
                Err(to_status(&e))
            }
        };
        let _ = tx.send(message);
    });
    let guard = AbortOnDrop(task);
    Ok(Box::pin(async_stream::stream! {
        let _guard = guard;
        while let Some(message) = rx.recv().await {
            let last = message.as_ref().map_or(true, |m| !m.image_id.is_empty());
            yield message;
            if last {
                break;
            }
        }
    }))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
