//! `rill quota set|remove|list`: client quotas (docs/kafka.md, "Client quotas"), over `rill_client::QuotaAdmin`.
//! The entity flags follow kafka-configs: --user NAME or --default-user, --client-id ID or --default-client-id.

use std::io::Write;

use rill_client::{AlterQuotasRequest, ClientQuota, QuotaAdmin, QuotaEntity};

use crate::connect::{block_on, BrokerFlag};
use crate::output;
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub struct QuotaArgs {
    #[command(subcommand)]
    command: QuotaCommand,
}

/// Who the quota is for: a user, a client id, or both.
#[derive(Debug, clap::Args)]
struct EntityFlags {
    /// A user name as clients authenticate (ANONYMOUS: clients that do not).
    #[arg(long, conflicts_with = "default_user")]
    user: Option<String>,
    /// The default for every user without a quota of its own.
    #[arg(long)]
    default_user: bool,
    /// A client id (Kafka's client.id; gRPC calls name one in the rill-client-id header).
    #[arg(long, conflicts_with = "default_client_id")]
    client_id: Option<String>,
    /// The default for every client id without a quota of its own.
    #[arg(long)]
    default_client_id: bool,
}

impl EntityFlags {
    fn entity(self) -> anyhow::Result<QuotaEntity> {
        if self.user.is_none() && !self.default_user && self.client_id.is_none() && !self.default_client_id {
            anyhow::bail!(
                "name who the quota is for: --user NAME or --default-user, --client-id ID or --default-client-id"
            );
        }
        Ok(QuotaEntity {
            user: self.user,
            default_user: self.default_user,
            client_id: self.client_id,
            default_client_id: self.default_client_id,
        })
    }
}

#[derive(Debug, clap::Subcommand)]
enum QuotaCommand {
    /// Set the byte rates a user, a client id, or both may produce and fetch at.
    #[command(after_help = "Examples:
  rill quota set --user app --producer-byte-rate 10485760
  rill quota set --default-client-id --consumer-byte-rate 52428800
  rill quota set --user app --client-id reports --producer-byte-rate 1048576 --consumer-byte-rate 2097152

The most specific quota that sets a rate applies, in Kafka's order (user and client id, user, client id, each
name before its default). A client past its rate is slowed down, not refused. Needs ALTER_CONFIGS on the
cluster (or a super user) once the broker runs with --authorization on.")]
    Set {
        #[command(flatten)]
        entity: EntityFlags,
        /// Bytes of produce requests a second, at least 1.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
        producer_byte_rate: Option<u64>,
        /// Bytes of fetch answers a second, at least 1.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
        consumer_byte_rate: Option<u64>,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Remove rates of a user, a client id, or both (neither rate named: both).
    Remove {
        #[command(flatten)]
        entity: EntityFlags,
        #[arg(long)]
        producer_byte_rate: bool,
        #[arg(long)]
        consumer_byte_rate: bool,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// List every quota.
    List {
        #[command(flatten)]
        broker: BrokerFlag,
    },
}

fn print(quotas: Vec<ClientQuota>) -> anyhow::Result<()> {
    let mut table = Table::new(&["USER", "CLIENT-ID", "PRODUCER B/S", "CONSUMER B/S"]);
    let part = |name: Option<String>, is_default: bool| match (name, is_default) {
        (Some(name), _) => name,
        (None, true) => "<default>".to_owned(),
        (None, false) => "-".to_owned(),
    };
    let rate = |rate: Option<u64>| rate.map_or_else(|| "-".to_owned(), |rate| rate.to_string());
    for quota in quotas {
        let entity = quota.entity.unwrap_or_default();
        table.row(vec![
            part(entity.user, entity.default_user),
            part(entity.client_id, entity.default_client_id),
            rate(quota.producer_byte_rate),
            rate(quota.consumer_byte_rate),
        ]);
    }
    let mut out = output::stdout();
    table.write(&mut out)?;
    out.flush()?;
    Ok(())
}

pub fn run(args: QuotaArgs) -> anyhow::Result<()> {
    block_on(async move {
        let (change, broker) = match args.command {
            QuotaCommand::List { broker } => {
                let admin = QuotaAdmin::new(broker.connect().await?);
                let quotas = admin.list().await.map_err(|e| broker.explain(e))?;
                return print(quotas);
            }
            QuotaCommand::Set { entity, producer_byte_rate, consumer_byte_rate, broker } => {
                if producer_byte_rate.is_none() && consumer_byte_rate.is_none() {
                    anyhow::bail!("nothing to set: give --producer-byte-rate, --consumer-byte-rate or both");
                }
                let change = AlterQuotasRequest {
                    entity: Some(entity.entity()?),
                    producer_byte_rate,
                    consumer_byte_rate,
                    ..AlterQuotasRequest::default()
                };
                (change, broker)
            }
            QuotaCommand::Remove { entity, producer_byte_rate, consumer_byte_rate, broker } => {
                let both = !producer_byte_rate && !consumer_byte_rate;
                let change = AlterQuotasRequest {
                    entity: Some(entity.entity()?),
                    remove_producer_byte_rate: producer_byte_rate || both,
                    remove_consumer_byte_rate: consumer_byte_rate || both,
                    ..AlterQuotasRequest::default()
                };
                (change, broker)
            }
        };
        let admin = QuotaAdmin::new(broker.connect().await?);
        let quota = admin.alter(change).await.map_err(|e| broker.explain(e))?;
        print(vec![quota])
    })
}
