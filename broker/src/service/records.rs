//! `Records`: the trait glue; the work is in `produce.rs` and `read.rs`.

use rill_protocol::v1::{self, records_server::Records};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::RillService;

#[tonic::async_trait]
impl Records for RillService {
    async fn produce(&self, request: Request<v1::ProduceRequest>) -> Result<Response<v1::ProduceResponse>, Status> {
        Ok(Response::new(super::produce::produce(&self.node, request.into_inner()).await?))
    }

    async fn fetch(&self, request: Request<v1::FetchRequest>) -> Result<Response<v1::FetchResponse>, Status> {
        Ok(Response::new(super::read::fetch(&self.node, request.into_inner()).await?))
    }

    type SubscribeStream = ReceiverStream<Result<v1::SubscribeResponse, Status>>;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Ok(Response::new(super::read::subscribe(&self.node, request.into_inner()).await?))
    }

    async fn init_producer_id(
        &self,
        _request: Request<v1::InitProducerIdRequest>,
    ) -> Result<Response<v1::InitProducerIdResponse>, Status> {
        let producer_id = self.node.producer_ids.issue().await?;
        tracing::debug!(producer_id, "issued a producer id");
        Ok(Response::new(v1::InitProducerIdResponse { producer_id, producer_epoch: 0 }))
    }

    async fn list_offsets(
        &self,
        request: Request<v1::ListOffsetsRequest>,
    ) -> Result<Response<v1::ListOffsetsResponse>, Status> {
        Ok(Response::new(super::read::list_offsets(&self.node, request.into_inner()).await?))
    }
}
