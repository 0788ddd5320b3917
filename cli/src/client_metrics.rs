//! `rill client-metrics set|remove|list`: which of their metrics Kafka clients push to the broker (KIP-714,
//! docs/observability.md "Kafka clients' own metrics"), over `rill_client::ClientMetricsAdmin`: the subscriptions
//! `kafka-client-metrics.sh` manages, by the same names and values.

use std::io::Write;

use rill_client::{AlterClientMetricsRequest, ClientMetricsAdmin, ClientMetricsSubscription};

use crate::connect::{block_on, BrokerFlag};
use crate::output;
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub struct ClientMetricsArgs {
    #[command(subcommand)]
    command: ClientMetricsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ClientMetricsCommand {
    /// Make a subscription, or change some of its settings (the others stay).
    #[command(after_help = "Examples:
  rill client-metrics set producers --metrics org.apache.kafka.producer. --interval-ms 60000
  rill client-metrics set billing --metrics '*' --match 'client_id=billing-.*,client_software_name=apache-kafka-java'

Clients a subscription matches (every selector's regex matching the whole value; no --match: every client)
push the metrics whose names start with one of its prefixes every --interval-ms, and /metrics shows them as
kafka_client_*. Selectors: client_id, client_instance_id, client_software_name, client_software_version,
client_source_address, client_source_port. Needs ALTER_CONFIGS on the cluster (or a super user) once the broker
runs with --authorization on.")]
    Set {
        /// The subscription's name.
        name: String,
        #[command(flatten)]
        settings: SettingsSet,
        /// Only check the change.
        #[arg(long)]
        validate_only: bool,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Remove settings of a subscription (none named: the whole subscription, as is one left with none).
    Remove {
        /// The subscription's name.
        name: String,
        #[command(flatten)]
        settings: SettingsRemoved,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// List every subscription, the broker's own settings' (--client-metrics) first.
    List {
        #[command(flatten)]
        broker: BrokerFlag,
    },
}

/// The settings `set` gives.
#[derive(Debug, clap::Args)]
struct SettingsSet {
    /// Metric name prefixes, comma-separated (org.apache.kafka.producer.,org.apache.kafka.consumer.), or * for every
    /// metric.
    #[arg(long, value_name = "PREFIXES")]
    metrics: Option<String>,
    /// How often matched clients push, in ms: 100 to 3600000. [default: 300000]
    #[arg(long, value_name = "MS")]
    interval_ms: Option<u32>,
    /// Which clients: comma-separated selector=regex pairs, each regex matching the whole value.
    #[arg(long = "match", value_name = "SELECTOR=REGEX,...")]
    matches: Option<String>,
}

/// The settings `remove` removes.
#[derive(Debug, clap::Args)]
struct SettingsRemoved {
    #[arg(long)]
    metrics: bool,
    #[arg(long)]
    interval_ms: bool,
    #[arg(long = "match")]
    matches: bool,
}

impl SettingsSet {
    fn change(self, name: String, validate_only: bool) -> anyhow::Result<AlterClientMetricsRequest> {
        if self.metrics.is_none() && self.interval_ms.is_none() && self.matches.is_none() {
            anyhow::bail!("nothing to set: give --metrics, --interval-ms or --match");
        }
        Ok(AlterClientMetricsRequest {
            name,
            metrics: self.metrics,
            interval_ms: self.interval_ms,
            r#match: self.matches,
            validate_only,
            ..AlterClientMetricsRequest::default()
        })
    }
}

impl SettingsRemoved {
    fn change(self, name: String) -> AlterClientMetricsRequest {
        let all = !(self.metrics || self.interval_ms || self.matches);
        AlterClientMetricsRequest {
            name,
            remove_metrics: self.metrics || all,
            remove_interval_ms: self.interval_ms || all,
            remove_match: self.matches || all,
            ..AlterClientMetricsRequest::default()
        }
    }
}

fn table_of(subscriptions: Vec<ClientMetricsSubscription>) -> Table {
    let mut table = Table::new(&["NAME", "METRICS", "INTERVAL MS", "MATCH", "SET BY"]);
    for subscription in subscriptions {
        let metrics = match subscription.metrics.is_empty() {
            true => "-".to_owned(),
            false => subscription.metrics.join(","),
        };
        let mut matches: Vec<String> =
            subscription.r#match.iter().map(|(selector, regex)| format!("{selector}={regex}")).collect();
        matches.sort();
        let matches = if matches.is_empty() { "<every client>".to_owned() } else { matches.join(",") };
        let set_by = if subscription.node_setting { "node settings" } else { "api" };
        table.row(vec![subscription.name, metrics, subscription.interval_ms.to_string(), matches, set_by.into()]);
    }
    table
}

fn print(subscriptions: Vec<ClientMetricsSubscription>) -> anyhow::Result<()> {
    let mut out = output::stdout();
    table_of(subscriptions).write(&mut out)?;
    out.flush()?;
    Ok(())
}

pub fn run(args: ClientMetricsArgs) -> anyhow::Result<()> {
    block_on(async move {
        let (change, broker) = match args.command {
            ClientMetricsCommand::List { broker } => {
                let admin = ClientMetricsAdmin::new(broker.connect().await?);
                return print(admin.list().await.map_err(|e| broker.explain(e))?);
            }
            ClientMetricsCommand::Set { name, settings, validate_only, broker } => {
                (settings.change(name, validate_only)?, broker)
            }
            ClientMetricsCommand::Remove { name, settings, broker } => (settings.change(name), broker),
        };
        let name = change.name.clone();
        let admin = ClientMetricsAdmin::new(broker.connect().await?);
        match admin.alter(change).await.map_err(|e| broker.explain(e))? {
            Some(subscription) => print(vec![subscription]),
            None => {
                let mut out = output::stdout();
                output::line(&mut out, format_args!("no client metrics subscription {name:?} now"))?;
                out.flush()?;
                Ok(())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_without_a_setting_named_removes_the_whole_subscription() {
        let none = SettingsRemoved { metrics: false, interval_ms: false, matches: false };
        let change = none.change("s".into());
        assert!(change.remove_metrics && change.remove_interval_ms && change.remove_match);
        let one = SettingsRemoved { metrics: false, interval_ms: true, matches: false };
        let change = one.change("s".into());
        assert!(!change.remove_metrics && change.remove_interval_ms && !change.remove_match);
    }

    #[test]
    fn the_table_shows_each_subscription_with_who_set_it() {
        let subscription = ClientMetricsSubscription {
            name: "producers".into(),
            metrics: vec!["org.apache.kafka.producer.".into()],
            interval_ms: 60_000,
            r#match: [("client_id".to_owned(), "app-.*".to_owned())].into(),
            node_setting: false,
        };
        let node = ClientMetricsSubscription {
            name: "cli".into(),
            interval_ms: 300_000,
            node_setting: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        table_of(vec![node, subscription]).write(&mut out).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        let rows: Vec<Vec<&str>> = text.lines().map(|line| line.split_whitespace().collect()).collect();
        assert_eq!(rows[0], ["NAME", "METRICS", "INTERVAL", "MS", "MATCH", "SET", "BY"]);
        assert_eq!(rows[1], ["cli", "-", "300000", "<every", "client>", "node", "settings"]);
        assert_eq!(rows[2], ["producers", "org.apache.kafka.producer.", "60000", "client_id=app-.*", "api"]);
    }
}
