//! `TopicAdmin`: create, delete, list, describe topics; add partitions.

use rill_protocol::v1::{self, topic_admin_server::TopicAdmin};
use tonic::{Request, Response, Status};

use super::RillService;
use crate::error::Result;

#[tonic::async_trait]
impl TopicAdmin for RillService {
    async fn create_topic(
        &self,
        request: Request<v1::CreateTopicRequest>,
    ) -> Result<Response<v1::CreateTopicResponse>, Status> {
        let request = request.into_inner();
        let config = request.config.unwrap_or_default();
        let topic = self.node.registry.create(&request.name, request.partition_count, &config).await?;
        Ok(Response::new(v1::CreateTopicResponse { topic: Some(topic.info()) }))
    }

    async fn delete_topic(
        &self,
        request: Request<v1::DeleteTopicRequest>,
    ) -> Result<Response<v1::DeleteTopicResponse>, Status> {
        self.node.registry.delete(&request.into_inner().name).await?;
        Ok(Response::new(v1::DeleteTopicResponse {}))
    }

    async fn list_topics(
        &self,
        _request: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        let topics = self.node.registry.list().iter().map(|t| t.info()).collect();
        Ok(Response::new(v1::ListTopicsResponse { topics }))
    }

    async fn describe_topic(
        &self,
        request: Request<v1::DescribeTopicRequest>,
    ) -> Result<Response<v1::DescribeTopicResponse>, Status> {
        Ok(Response::new(self.describe(&request.into_inner().name)?))
    }

    async fn add_partitions(
        &self,
        request: Request<v1::AddPartitionsRequest>,
    ) -> Result<Response<v1::AddPartitionsResponse>, Status> {
        let request = request.into_inner();
        let topic = self.node.registry.add_partitions(&request.name, request.new_partition_count).await?;
        Ok(Response::new(v1::AddPartitionsResponse { topic: Some(topic.info()) }))
    }
}

impl RillService {
    fn describe(&self, name: &str) -> Result<v1::DescribeTopicResponse> {
        let topic = self.node.registry.topic(name)?;
        // These getters read in-memory state kept by the log; none touches the disk.
        let partitions = topic
            .partitions()
            .iter()
            .map(|p| {
                let log = p.log();
                v1::PartitionInfo {
                    partition: p.index,
                    log_start_offset: log.log_start_offset(),
                    high_watermark: log.high_watermark(),
                    size_bytes: log.size_bytes(),
                    segment_count: log.segment_count() as u64,
                }
            })
            .collect();
        Ok(v1::DescribeTopicResponse { topic: Some(topic.info()), partitions })
    }
}
