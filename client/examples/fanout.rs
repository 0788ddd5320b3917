//! Publish/subscribe fan-out: two independent consumers (no shared group) each receive every record.
//!
//! ```sh
//! cargo run -p rill-client --example fanout -- 127.0.0.1:9092
//! ```

use std::error::Error as StdError;
use std::io::Write;

use futures_util::StreamExt;
use rill_client::{
    Admin, Client, Consumer, ConsumerConfig, Error, OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicConfig,
};

const TOPIC: &str = "fanout-demo";
const RECORDS: usize = 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn StdError>> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9092".into());
    let client = Client::connect(&addr).await?;
    match Admin::new(client.clone()).create_topic(TOPIC, 2, TopicConfig::default()).await {
        Ok(_) | Err(Error::TopicExists { .. }) => {}
        Err(err) => return Err(err.into()),
    }

    // Each subscriber starts at the end: it sees what is published from now on.
    let mut subscribers = Vec::new();
    for name in ["billing", "analytics"] {
        let config = ConsumerConfig { offset_reset: OffsetReset::Latest, ..ConsumerConfig::default() };
        let mut consumer = Consumer::new(client.clone(), config)?;
        consumer.assign(TOPIC, &[]).await?;
        subscribers.push(tokio::spawn(async move {
            let stream = consumer.stream().take(RECORDS);
            tokio::pin!(stream);
            while let Some(record) = stream.next().await {
                let record = record?;
                let value = record.value.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                let line = format!("{name}: partition {} offset {}: {value}", record.partition, record.offset);
                // Checked, not `println!`: a reader that went away (`| head`) is not a panic.
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
            Ok::<_, Error>(())
        }));
    }

    let producer = Producer::new(client, ProducerConfig::default())?;
    for i in 0..RECORDS {
        let record = ProducerRecord::new(format!("event {i}")).with_key(format!("{i}"));
        drop(producer.send(TOPIC, record).await?);
    }
    producer.flush().await;
    for subscriber in subscribers {
        subscriber.await??;
    }
    Ok(())
}
