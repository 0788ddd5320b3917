//! A consumer-group member: subscribes to a topic in a group, prints each record and each rebalance, commits
//! every second, and on Ctrl-C commits and leaves (its partitions go to the other members at once). Run it in
//! two or three terminals to watch partitions move.
//!
//! ```sh
//! cargo run -p rill-client --example group -- 127.0.0.1:9092 orders billing
//! ```

use std::error::Error as StdError;
use std::io::Write;
use std::time::Duration;

use rill_client::{Client, Consumer, ConsumerConfig, RebalanceEvent};

#[tokio::main]
async fn main() -> Result<(), Box<dyn StdError>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let group = args.next().unwrap_or_else(|| "billing".into());
    let client = Client::connect(&addr).await?;
    let config = ConsumerConfig {
        group_id: Some(group.clone()),
        auto_commit_interval: Some(Duration::from_secs(1)),
        client_id: "group-example".into(),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client, config)?;
    consumer.on_rebalance(|event: &RebalanceEvent| {
        let _ = writeln!(std::io::stderr().lock(), "rebalance: {event:?}");
    });
    consumer.subscribe(&group, &[&topic])?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            records = consumer.poll() => {
                for record in records? {
                    let value = record.value.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                    let line = format!("partition {} offset {}: {value}", record.partition, record.offset);
                    // Checked, not `println!`: a reader that went away (`| head`) is not a panic.
                    if writeln!(std::io::stdout().lock(), "{line}").is_err() {
                        break;
                    }
                }
            }
        }
    }
    consumer.unsubscribe().await?;
    Ok(())
}
