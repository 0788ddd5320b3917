//! gRPC health checking and server reflection, so `grpcurl` works without the `.proto` files.

use rill_tests::TestBroker;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::{health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest};

#[tokio::test]
async fn health_reports_every_rill_service_serving() {
    let broker = TestBroker::start().await;
    let url = broker.handle.as_ref().unwrap().url();
    let mut health = HealthClient::new(Channel::from_shared(url).unwrap().connect().await.unwrap());
    for service in ["", "rill.v1.TopicAdmin", "rill.v1.Records", "rill.v1.ConsumerGroups"] {
        let request = HealthCheckRequest { service: service.into() };
        let status = health.check(request).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
}

/// One test per reflection protocol version: the generated types differ, the conversation does not.
macro_rules! reflection_test {
    ($name:ident, $version:ident) => {
        #[tokio::test]
        async fn $name() {
            use tonic_reflection::pb::$version::{
                server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse, ServerReflectionRequest,
            };
            let broker = TestBroker::start().await;
            let url = broker.handle.as_ref().unwrap().url();
            let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
            let mut reflection = ServerReflectionClient::new(channel);
            let requests = tokio_stream::iter([
                ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(MessageRequest::ListServices(String::new())),
                },
                ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(MessageRequest::FileContainingSymbol("rill.v1.ProduceRequest".into())),
                },
            ]);
            let mut responses = reflection.server_reflection_info(requests).await.unwrap().into_inner();
            let listed = responses.next().await.unwrap().unwrap().message_response;
            let Some(MessageResponse::ListServicesResponse(listed)) = listed else { panic!("expected a service list") };
            let names: Vec<_> = listed.service.iter().map(|s| s.name.as_str()).collect();
            for expected in ["rill.v1.TopicAdmin", "rill.v1.Records", "rill.v1.ConsumerGroups", "grpc.health.v1.Health"]
            {
                assert!(names.contains(&expected), "{expected} missing from {names:?}");
            }
            let file = responses.next().await.unwrap().unwrap().message_response;
            let Some(MessageResponse::FileDescriptorResponse(file)) = file else {
                panic!("expected a file descriptor")
            };
            assert!(!file.file_descriptor_proto.is_empty());
        }
    };
}

reflection_test!(reflection_lists_the_rill_services_and_describes_their_messages, v1);
// grpcio-reflection, grpcui, Postman, evans and older grpcurl speak the v1alpha protocol.
reflection_test!(reflection_v1alpha_lists_the_rill_services_and_describes_their_messages, v1alpha);
