//! Replays one partition of a topic from an offset (or a timestamp) and prints each record.
//!
//! ```sh
//! cargo run -p rill-client --example replay -- 127.0.0.1:9092 greetings 0 100      # partition 0 from offset 100
//! cargo run -p rill-client --example replay -- 127.0.0.1:9092 greetings 0 @1700000000000   # from a time (ms)
//! ```
//! It stops once it reaches the end offset that was current when it started.

use std::error::Error as StdError;
use std::io::Write;

use rill_client::{Admin, Client, Consumer, ConsumerConfig, OffsetSpec, SeekTo};

#[tokio::main]
async fn main() -> Result<(), Box<dyn StdError>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "greetings".into());
    let partition: u32 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(0);
    let from = match args.next() {
        Some(time) if time.starts_with('@') => SeekTo::Timestamp(time[1..].parse()?),
        Some(offset) => SeekTo::Offset(offset.parse()?),
        None => SeekTo::Beginning,
    };

    let client = Client::connect(&addr).await?;
    let ends = Admin::new(client.clone()).list_offsets(&topic, &[partition], OffsetSpec::Latest).await?;
    let end = ends.first().map_or(0, |o| o.offset);

    let mut consumer = Consumer::new(client, ConsumerConfig::default())?;
    consumer.assign(&topic, &[partition]).await?;
    let start = consumer.seek(&topic, partition, from).await?;
    eprintln!("replaying {topic}/{partition} from offset {start} to {end}");
    // A reader that goes away (`| head`) ends the replay quietly: writes are checked, not `println!`ed.
    let mut out = std::io::stdout().lock();
    let mut position = start;
    while position < end {
        for record in consumer.poll().await? {
            let key = record.key.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            let value = record.value.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
            if writeln!(out, "{}\t{}\t{key}\t{value}", record.offset, record.timestamp_ms).is_err() {
                return Ok(());
            }
            position = record.offset + 1;
        }
    }
    Ok(())
}
