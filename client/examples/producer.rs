//! Sends numbered records to a topic (created if missing) and prints where each batch of them landed.
//!
//! ```sh
//! cargo run -p rill-cli -- broker &          # a broker on 127.0.0.1:9092
//! cargo run -p rill-client --example producer -- 127.0.0.1:9092 greetings 1000
//! ```

use std::error::Error as StdError;
use std::io::Write;

use rill_client::{Admin, Client, Compression, Error, Producer, ProducerConfig, ProducerRecord, TopicConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn StdError>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "greetings".into());
    let count: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1000);

    let client = Client::connect(&addr).await?;
    match Admin::new(client.clone()).create_topic(&topic, 3, TopicConfig::default()).await {
        Ok(_) | Err(Error::TopicExists { .. }) => {}
        Err(err) => return Err(err.into()),
    }

    let config = ProducerConfig { compression: Compression::Lz4, ..ProducerConfig::default() };
    let producer = Producer::new(client, config)?;
    let mut deliveries = Vec::with_capacity(count as usize);
    for i in 0..count {
        // Records with the same key go to the same partition, in the order sent.
        let record = ProducerRecord::new(format!("hello #{i}")).with_key(format!("user-{}", i % 10));
        deliveries.push(producer.send(&topic, record).await?);
    }
    producer.flush().await;
    let mut last_per_partition = std::collections::BTreeMap::new();
    for delivery in deliveries {
        let stored = delivery.await?;
        last_per_partition.insert(stored.partition, stored.offset);
    }
    let mut out = std::io::stdout().lock();
    for (partition, offset) in last_per_partition {
        writeln!(out, "partition {partition}: last offset {offset}")?;
    }
    writeln!(out, "{:?}", producer.metrics())?;
    Ok(())
}
