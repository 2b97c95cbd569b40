//! The `Stream*` list RPCs (KEP-5825, CRIListStreaming): the same lists as their `List*`
//! counterparts, sent as a server stream of chunks so a node with many objects never needs one
//! message above the gRPC size limit. Each item is in exactly one chunk, every chunk holds at least
//! one item (an empty list is a stream with no message), and the stream ends after the last chunk.

use std::pin::Pin;

use futures::Stream;
use prost::Message;
use tonic::{Response, Status};

use super::{Context, api, container, image_query, metrics, reply, sandbox, stats};

/// A server-streaming reply.
pub type Replies<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Splits `items` into chunks whose encoded size stays within `budget` bytes; an item larger
/// than the budget travels alone (and fails only if it exceeds the gRPC limit by itself).
pub fn chunks<T: Message>(items: Vec<T>, budget: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut size = 0;
    for item in items {
        // A repeated field costs the item, a tag byte and the length prefix.
        let cost = item.encoded_len() + 1 + prost::length_delimiter_len(item.encoded_len());
        match out.last_mut() {
            Some(chunk) if size + cost <= budget => {
                chunk.push(item);
                size += cost;
            }
            _ => {
                out.push(vec![item]);
                size = cost;
            }
        }
    }
    out
}

/// Room for one chunk: half the configured message limit leaves margin for framing.
fn budget(ctx: &Context) -> usize {
    ctx.config.grpc.max_message_bytes / 2
}

/// Answers a list (or its error) as a stream of chunk messages built by `wrap`.
fn stream<T, R, E>(
    list: Result<Vec<T>, E>,
    budget: usize,
    wrap: fn(Vec<T>) -> R,
) -> Result<Response<Replies<R>>, Status>
where
    T: Message,
    R: Send + 'static,
    E: crate::error::Classify + std::fmt::Display,
{
    let result = list.map(|items| {
        let replies: Vec<Result<R, Status>> = chunks(items, budget)
            .into_iter()
            .map(wrap)
            .map(Ok)
            .collect();
        Box::pin(futures::stream::iter(replies)) as Replies<R>
    });
    reply(result)
}

pub fn pod_sandboxes(
    ctx: &Context,
    req: api::StreamPodSandboxesRequest,
) -> Result<Response<Replies<api::StreamPodSandboxesResponse>>, Status> {
    let list = sandbox::list(
        &ctx.runtime,
        api::ListPodSandboxRequest { filter: req.filter },
    );
    stream(list.map(|r| r.items), budget(ctx), |pod_sandboxes| {
        api::StreamPodSandboxesResponse { pod_sandboxes }
    })
}

pub fn containers(
    ctx: &Context,
    req: api::StreamContainersRequest,
) -> Result<Response<Replies<api::StreamContainersResponse>>, Status> {
    let list = container::list(
        &ctx.runtime,
        api::ListContainersRequest { filter: req.filter },
    );
    stream(list.map(|r| r.containers), budget(ctx), |containers| {
        api::StreamContainersResponse { containers }
    })
}

pub fn container_stats(
    ctx: &Context,
    req: api::StreamContainerStatsRequest,
) -> Result<Response<Replies<api::StreamContainerStatsResponse>>, Status> {
    let list = stats::list_containers(
        &ctx.runtime,
        api::ListContainerStatsRequest { filter: req.filter },
    );
    stream(list.map(|r| r.stats), budget(ctx), |container_stats| {
        api::StreamContainerStatsResponse { container_stats }
    })
}

pub fn pod_sandbox_stats(
    ctx: &Context,
    req: api::StreamPodSandboxStatsRequest,
) -> Result<Response<Replies<api::StreamPodSandboxStatsResponse>>, Status> {
    let list = stats::list_pods(
        &ctx.runtime,
        api::ListPodSandboxStatsRequest { filter: req.filter },
    );
    stream(list.map(|r| r.stats), budget(ctx), |pod_sandbox_stats| {
        api::StreamPodSandboxStatsResponse { pod_sandbox_stats }
    })
}

pub fn pod_sandbox_metrics(
    ctx: &Context,
) -> Result<Response<Replies<api::StreamPodSandboxMetricsResponse>>, Status> {
    let list = metrics::list(&ctx.runtime);
    stream(
        list.map(|r| r.pod_metrics),
        budget(ctx),
        |pod_sandbox_metrics| api::StreamPodSandboxMetricsResponse {
            pod_sandbox_metrics,
        },
    )
}

pub fn images(
    ctx: &Context,
    req: api::StreamImagesRequest,
) -> Result<Response<Replies<api::StreamImagesResponse>>, Status> {
    let list = image_query::list_images(&ctx.images, api::ListImagesRequest { filter: req.filter });
    stream(list.map(|r| r.images), budget(ctx), |images| {
        api::StreamImagesResponse { images }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(n: usize) -> api::KeyValue {
        api::KeyValue {
            key: "k".into(),
            value: vec![b'x'; n],
        }
    }

    #[test]
    fn every_item_lands_in_exactly_one_non_empty_chunk_within_budget() {
        let items: Vec<api::KeyValue> = (0..50).map(|i| kv(i * 7)).collect();
        let budget = 200;
        let chunks = chunks(items.clone(), budget);
        assert!(chunks.len() > 1, "the budget forces several chunks");
        assert!(chunks.iter().all(|c| !c.is_empty()));
        for chunk in &chunks {
            let encoded = api::StreamImagesResponse::default().encoded_len()
                + chunk
                    .iter()
                    .map(|i| i.encoded_len() + 1 + prost::length_delimiter_len(i.encoded_len()))
                    .sum::<usize>();
            assert!(
                encoded <= budget || chunk.len() == 1,
                "{encoded} > {budget}"
            );
        }
        assert_eq!(chunks.concat(), items, "same items, same order, none twice");
    }

    #[test]
    fn an_oversized_item_travels_alone_and_nothing_yields_no_chunk() {
        let chunks = chunks(vec![kv(1), kv(500), kv(1)], 100);
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
        assert!(super::chunks(Vec::<api::KeyValue>::new(), 100).is_empty());
    }
}
