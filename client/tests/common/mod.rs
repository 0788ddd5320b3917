//! An embedded broker on a free port and a temp dir, and waits with deadlines (never fixed sleeps).

use std::net::SocketAddr;
use std::time::Duration;

use rill_broker::{Broker, BrokerConfig, BrokerHandle};

pub mod group;
use rill_client::{Admin, Client, ConsumedRecord, Consumer, TopicConfig};

/// How long a test waits for something that should happen well within it.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub struct TestBroker {
    pub handle: Option<BrokerHandle>,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let handle = Broker::start(BrokerConfig::for_tests(dir.path())).await.expect("broker starts");
        Self { handle: Some(handle), dir }
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.as_ref().expect("running").addr()
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr().to_string()).await.expect("client connects")
    }

    pub async fn stop(&mut self) -> SocketAddr {
        let handle = self.handle.take().expect("running");
        let addr = handle.addr();
        handle.shutdown().await;
        addr
    }

    /// Starts a new node on the same data dir and address.
    pub async fn restart_on(&mut self, addr: SocketAddr) {
        let config = BrokerConfig { listen: addr, ..BrokerConfig::for_tests(self.dir.path()) };
        self.handle = Some(Broker::start(config).await.expect("broker restarts on its old address"));
    }

    pub async fn shutdown(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }
}

pub async fn create_topic(client: &Client, name: &str, partitions: u32) {
    Admin::new(client.clone()).create_topic(name, partitions, TopicConfig::default()).await.expect("topic created");
}

/// Polls until `n` records arrived (more may come in the last poll), failing the test at the deadline.
pub async fn consume(consumer: &mut Consumer, n: usize) -> Vec<ConsumedRecord> {
    let mut records = Vec::new();
    let collect = async {
        while records.len() < n {
            records.extend(consumer.poll().await.expect("poll"));
        }
    };
    if tokio::time::timeout(DEADLINE, collect).await.is_err() {
        panic!("only {} of {n} records arrived within {DEADLINE:?}", records.len());
    }
    records
}

pub fn value_str(record: &ConsumedRecord) -> &str {
    std::str::from_utf8(record.value.as_deref().expect("a value")).expect("UTF-8 value")
}
