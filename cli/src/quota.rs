//! `rill quota set|remove|list`: client quotas (docs/kafka.md, "Client quotas"), over `rill_client::QuotaAdmin`.
//! The entity flags follow kafka-configs: --user NAME or --default-user, --client-id ID or --default-client-id,
//! or --ip ADDRESS or --default-ip (an address's connection rate, KIP-612).

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

/// Who the quota is for: a user, a client id, or both; or an IP address.
#[derive(Debug, clap::Args)]
struct EntityFlags {
    /// An IP address clients connect from: its connection rate (not with --user or --client-id).
    #[arg(long, conflicts_with_all = ["default_ip", "user", "default_user", "client_id", "default_client_id"])]
    ip: Option<std::net::IpAddr>,
    /// The default for every address without a quota of its own.
    #[arg(long, conflicts_with_all = ["user", "default_user", "client_id", "default_client_id"])]
    default_ip: bool,
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
    fn is_ip(&self) -> bool {
        self.ip.is_some() || self.default_ip
    }

    fn entity(self) -> anyhow::Result<QuotaEntity> {
        let is_client = self.user.is_some() || self.default_user || self.client_id.is_some() || self.default_client_id;
        if !is_client && !self.is_ip() {
            anyhow::bail!(
                "name who the quota is for: --user NAME or --default-user, --client-id ID or --default-client-id, \
                 or --ip ADDRESS or --default-ip"
            );
        }
        Ok(QuotaEntity {
            user: self.user,
            default_user: self.default_user,
            client_id: self.client_id,
            default_client_id: self.default_client_id,
            ip: self.ip.map(|ip| ip.to_string()),
            default_ip: self.default_ip,
        })
    }
}

#[derive(Debug, clap::Subcommand)]
enum QuotaCommand {
    /// Set the rates a user, a client id, or both may produce, fetch and change topics at and the share of the
    /// broker's time their requests may take, or an ip's connection rate.
    #[command(after_help = "Examples:
  rill quota set --user app --producer-byte-rate 10485760
  rill quota set --default-client-id --consumer-byte-rate 52428800
  rill quota set --user app --client-id reports --producer-byte-rate 1048576 --consumer-byte-rate 2097152
  rill quota set --default-ip --connection-creation-rate 20
  rill quota set --ip 10.0.0.5 --connection-creation-rate 200
  rill quota set --user ci --controller-mutation-rate 10
  rill quota set --client-id dashboards --request-percentage 50

The most specific quota that sets a rate applies, in Kafka's order (user and client id, user, client id, each
name before its default). A client past its rate is slowed down, not refused. An address's connections past its
connection rate are closed as they are accepted. A request percentage is the share of one thread's time the
clients' requests may take to handle (200: two threads' time). Needs ALTER_CONFIGS on the cluster (or a super user) once the
broker runs with --authorization on.")]
    Set {
        #[command(flatten)]
        entity: EntityFlags,
        #[command(flatten)]
        rates: RatesSet,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Remove rates of a user, a client id, or both, or of an ip (no rate named: every one it holds).
    Remove {
        #[command(flatten)]
        entity: EntityFlags,
        #[command(flatten)]
        rates: RatesRemoved,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// List every quota.
    List {
        #[command(flatten)]
        broker: BrokerFlag,
    },
}

/// The values `rill quota set` gives.
#[derive(Debug, clap::Args)]
struct RatesSet {
    /// Bytes of produce requests a second, at least 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    producer_byte_rate: Option<u64>,
    /// Bytes of fetch answers a second, at least 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    consumer_byte_rate: Option<u64>,
    /// Connections a second an --ip or --default-ip may open (0 refuses every one).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=i32::MAX as u64))]
    connection_creation_rate: Option<u64>,
    /// Partitions a second the clients may create or delete (topics created, grown, deleted), at least 1.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
    controller_mutation_rate: Option<u64>,
    /// Percent of one thread's time the clients' requests may take to handle, 1 to 1000000.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    request_percentage: Option<u64>,
}

impl RatesSet {
    /// The change setting these values of `entity`; refused when none is given.
    fn change(self, entity: QuotaEntity) -> anyhow::Result<AlterQuotasRequest> {
        let values = [
            self.producer_byte_rate,
            self.consumer_byte_rate,
            self.connection_creation_rate,
            self.controller_mutation_rate,
            self.request_percentage,
        ];
        if values.iter().all(Option::is_none) {
            anyhow::bail!(
                "nothing to set: give --producer-byte-rate, --consumer-byte-rate, --controller-mutation-rate or \
                 --request-percentage (a user or client id), or --connection-creation-rate (an ip)"
            );
        }
        Ok(AlterQuotasRequest {
            entity: Some(entity),
            producer_byte_rate: self.producer_byte_rate,
            consumer_byte_rate: self.consumer_byte_rate,
            connection_creation_rate: self.connection_creation_rate,
            controller_mutation_rate: self.controller_mutation_rate,
            request_percentage: self.request_percentage,
            ..AlterQuotasRequest::default()
        })
    }
}

/// The values `rill quota remove` removes.
#[derive(Debug, clap::Args)]
struct RatesRemoved {
    #[arg(long)]
    producer_byte_rate: bool,
    #[arg(long)]
    consumer_byte_rate: bool,
    #[arg(long)]
    connection_creation_rate: bool,
    #[arg(long)]
    controller_mutation_rate: bool,
    #[arg(long)]
    request_percentage: bool,
}

impl RatesRemoved {
    /// The change removing these values of `entity`; none named: every value an entity of its kind holds (an
    /// ip's connection rate, or a user's or client id's others).
    fn change(self, entity: QuotaEntity, is_ip: bool) -> AlterQuotasRequest {
        let named = [
            self.producer_byte_rate,
            self.consumer_byte_rate,
            self.connection_creation_rate,
            self.controller_mutation_rate,
            self.request_percentage,
        ];
        let all = !named.contains(&true);
        AlterQuotasRequest {
            entity: Some(entity),
            remove_producer_byte_rate: self.producer_byte_rate || (all && !is_ip),
            remove_consumer_byte_rate: self.consumer_byte_rate || (all && !is_ip),
            remove_controller_mutation_rate: self.controller_mutation_rate || (all && !is_ip),
            remove_request_percentage: self.request_percentage || (all && !is_ip),
            remove_connection_creation_rate: self.connection_creation_rate || (all && is_ip),
            ..AlterQuotasRequest::default()
        }
    }
}

fn print(quotas: Vec<ClientQuota>) -> anyhow::Result<()> {
    let mut table = Table::new(&[
        "USER",
        "CLIENT-ID",
        "IP",
        "PRODUCER B/S",
        "CONSUMER B/S",
        "MUTATIONS/S",
        "REQUEST %",
        "CONNECTIONS/S",
    ]);
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
            part(entity.ip, entity.default_ip),
            rate(quota.producer_byte_rate),
            rate(quota.consumer_byte_rate),
            rate(quota.controller_mutation_rate),
            rate(quota.request_percentage),
            rate(quota.connection_creation_rate),
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
            QuotaCommand::Set { entity, rates, broker } => (rates.change(entity.entity()?)?, broker),
            QuotaCommand::Remove { entity, rates, broker } => {
                let is_ip = entity.is_ip();
                (rates.change(entity.entity()?, is_ip), broker)
            }
        };
        let admin = QuotaAdmin::new(broker.connect().await?);
        let quota = admin.alter(change).await.map_err(|e| broker.explain(e))?;
        print(vec![quota])
    })
}
