//! `Records`: the trait glue; the work is in `produce.rs` and `read.rs`.

use rill_protocol::hops::{self, Hop};
use rill_protocol::v1::{self, records_server::Records};
use tonic::{Request, Response, Status};

use super::{principal_of, RillService};
use crate::auth::acl::{Operation, Resource};

#[tonic::async_trait]
impl Records for RillService {
    async fn produce(&self, request: Request<v1::ProduceRequest>) -> Result<Response<v1::ProduceResponse>, Status> {
        let principal = principal_of(&request);
        self.node.authorize(&principal, Operation::Write, &Resource::topic(&request.get_ref().topic))?;
        Ok(Response::new(super::produce::produce(&self.node, request.into_inner()).await?))
    }

    type ProduceStreamStream = tokio_stream::Empty<Result<v1::ProduceStreamResponse, Status>>;

    /// Served by `RecordsRoute` (`produce_stream.rs`), which takes the call before the generated server.
    async fn produce_stream(
        &self,
        _request: Request<tonic::Streaming<v1::ProduceStreamRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        Err(Status::internal("ProduceStream is served by the records route"))
    }

    async fn fetch(&self, request: Request<v1::FetchRequest>) -> Result<Response<v1::FetchResponse>, Status> {
        let principal = principal_of(&request);
        self.node.authorize(&principal, Operation::Read, &Resource::topic(&request.get_ref().topic))?;
        Ok(Response::new(super::read::fetch(&self.node, request.into_inner()).await?))
    }

    type SubscribeStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::SubscribeResponse, Status>> + Send + 'static>>;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let principal = principal_of(&request);
        self.node.authorize(&principal, Operation::Read, &Resource::topic(&request.get_ref().topic))?;
        let client = super::stream_quota_client(&request.metadata().clone().into_headers(), request.extensions());
        let mut subscribe = request.into_inner();
        if let Some(bound) = client.fetch_bytes_bound(&self.node) {
            subscribe.max_bytes = subscribe.max_bytes.min(bound);
        }
        let pushes = super::read::subscribe(&self.node, subscribe).await?;
        // Sampled hops (`rill bench e2e --breakdown`): a push is marked when tonic takes it to encode for HTTP/2.
        let marked = tokio_stream::StreamExt::map(pushes, |push: Result<v1::SubscribeResponse, Status>| {
            if let Ok(push) = &push {
                hops::mark_batches(&push.record_batches, Hop::ResponseWritten);
            }
            push
        });
        // Over a fetch quota (one set while the subscription lasts too), each push waits out the throttle time its
        // bytes earned before the next is taken.
        let node = std::sync::Arc::clone(&self.node);
        let client = std::sync::Arc::new(client);
        let held = futures_util::StreamExt::then(marked, move |push| {
            let (node, client) = (std::sync::Arc::clone(&node), std::sync::Arc::clone(&client));
            async move {
                if let Ok(push) = &push {
                    let bytes = push.record_batches.len() as u64;
                    client.wait_out(&node, crate::quotas::QuotaKey::ConsumerByteRate, bytes).await;
                }
                push
            }
        });
        Ok(Response::new(Box::pin(held)))
    }

    async fn init_producer_id(
        &self,
        request: Request<v1::InitProducerIdRequest>,
    ) -> Result<Response<v1::InitProducerIdResponse>, Status> {
        let principal = principal_of(&request);
        self.node.authorizer.check_idempotent_write(&principal).map_err(crate::error::BrokerError::from)?;
        let producer_id = self.node.producer_ids.issue().await?;
        tracing::debug!(producer_id, "issued a producer id");
        Ok(Response::new(v1::InitProducerIdResponse { producer_id, producer_epoch: 0 }))
    }

    async fn list_offsets(
        &self,
        request: Request<v1::ListOffsetsRequest>,
    ) -> Result<Response<v1::ListOffsetsResponse>, Status> {
        // Kafka's ListOffsets asks DESCRIBE (which READ implies): offsets are metadata, not records.
        let principal = principal_of(&request);
        self.node.authorize(&principal, Operation::Describe, &Resource::topic(&request.get_ref().topic))?;
        Ok(Response::new(super::read::list_offsets(&self.node, request.into_inner()).await?))
    }
}
