//! `rill acl add|remove|list`: Kafka-style ACLs (docs/security.md, "ACLs"), over `rill_client::AclAdmin`. The
//! flags follow kafka-acls: --allow-principal/--deny-principal become --allow/--deny with --principal.

use std::io::Write;

use rill_client::{Acl, AclAdmin, AclFilter};

use crate::connect::{block_on, BrokerFlag};
use crate::output;
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub struct AclArgs {
    #[command(subcommand)]
    command: AclCommand,
}

/// The resource and principal flags `add`, `remove` and `list` share.
#[derive(Debug, clap::Args)]
struct Selection {
    /// User:NAME, User:ANONYMOUS or User:* (every principal).
    #[arg(long)]
    principal: Option<String>,
    /// A topic name, or * for every topic (with --prefixed: a name prefix).
    #[arg(long, conflicts_with_all = ["group", "cluster", "transactional_id"])]
    topic: Option<String>,
    /// A consumer group id, or * for every group (with --prefixed: a prefix).
    #[arg(long, conflicts_with_all = ["cluster", "transactional_id"])]
    group: Option<String>,
    /// The cluster (creating topics, managing users and ACLs, idempotent producers).
    #[arg(long, conflicts_with = "transactional_id")]
    cluster: bool,
    /// A transactional producer's transactional.id, or * for every one (with --prefixed: a prefix).
    #[arg(long)]
    transactional_id: Option<String>,
    /// The name is a prefix: the ACL covers every resource whose name starts with it.
    #[arg(long)]
    prefixed: bool,
}

impl Selection {
    fn resource(&self) -> Option<(&'static str, String)> {
        match (&self.topic, &self.group, self.cluster, &self.transactional_id) {
            (Some(topic), ..) => Some(("topic", topic.clone())),
            (_, Some(group), ..) => Some(("group", group.clone())),
            (_, _, true, _) => Some(("cluster", "kafka-cluster".to_owned())),
            (.., Some(id)) => Some(("transactional-id", id.clone())),
            _ => None,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum AclCommand {
    /// Allow or deny a principal operations on a resource.
    #[command(after_help = "Examples:
  rill acl add --allow --principal User:app --operation write --topic orders
  rill acl add --allow --principal User:app --operation read --operation describe --topic orders. --prefixed
  rill acl add --allow --principal User:app --operation read --group app-
  rill acl add --deny --principal User:* --operation all --topic secrets
  rill acl add --allow --principal User:ops --operation alter --cluster
  rill acl add --allow --principal User:app --operation write --transactional-id app-

Operations: all, read, write, create, delete, alter, describe, describe_configs, alter_configs, idempotent_write.
A deny wins over any allow; read, write, delete and alter allow describe too. Needs ALTER on the cluster (or a
super user) once the broker runs with --authorization on.")]
    Add {
        #[arg(long, conflicts_with = "deny", required_unless_present = "deny")]
        allow: bool,
        #[arg(long)]
        deny: bool,
        /// Repeatable.
        #[arg(long = "operation", value_name = "OPERATION", required = true)]
        operations: Vec<String>,
        #[command(flatten)]
        selection: Selection,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Remove the ACLs that match every flag given (none given: refused; use --all to remove every ACL).
    Remove {
        #[arg(long, conflicts_with = "deny")]
        allow: bool,
        #[arg(long)]
        deny: bool,
        #[arg(long = "operation", value_name = "OPERATION")]
        operation: Option<String>,
        #[command(flatten)]
        selection: Selection,
        /// Remove every ACL of the broker.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// List the ACLs that match every flag given (none: all of them).
    List {
        #[command(flatten)]
        selection: Selection,
        #[command(flatten)]
        broker: BrokerFlag,
    },
}

fn filter(selection: &Selection, permission: Option<&str>, operation: Option<String>) -> AclFilter {
    let resource = selection.resource();
    // A prefix must be asked for as one; a name given without --prefixed selects literal bindings only.
    let pattern_type = resource.as_ref().map(|_| if selection.prefixed { "prefixed" } else { "literal" }.to_owned());
    AclFilter {
        resource_type: resource.as_ref().map(|(kind, _)| (*kind).to_owned()),
        pattern_type,
        name: resource.map(|(_, name)| name),
        principal: selection.principal.clone(),
        host: None,
        operation,
        permission: permission.map(str::to_owned),
    }
}

fn print(acls: Vec<Acl>) -> anyhow::Result<()> {
    let mut table = Table::new(&["PERMISSION", "PRINCIPAL", "OPERATION", "RESOURCE", "PATTERN", "NAME"]);
    for acl in acls {
        table.row(vec![acl.permission, acl.principal, acl.operation, acl.resource_type, acl.pattern_type, acl.name]);
    }
    let mut out = output::stdout();
    table.write(&mut out)?;
    out.flush()?;
    Ok(())
}

pub fn run(args: AclArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            AclCommand::Add { allow: _, deny, operations, selection, broker } => {
                let Some((resource_type, name)) = selection.resource() else {
                    anyhow::bail!("name the resource: --topic NAME, --group NAME or --cluster");
                };
                let Some(principal) = selection.principal.clone() else {
                    anyhow::bail!("name the principal: --principal User:NAME (or User:* for everyone)");
                };
                let permission = if deny { "deny" } else { "allow" };
                let pattern_type = if selection.prefixed { "prefixed" } else { "literal" };
                let acls: Vec<Acl> = operations
                    .iter()
                    .map(|operation| Acl {
                        resource_type: resource_type.to_owned(),
                        pattern_type: pattern_type.to_owned(),
                        name: name.clone(),
                        principal: principal.clone(),
                        host: "*".to_owned(),
                        operation: operation.clone(),
                        permission: permission.to_owned(),
                    })
                    .collect();
                let admin = AclAdmin::new(broker.connect().await?);
                let added = admin.add(acls).await.map_err(|e| broker.explain(e))?;
                let mut out = output::stdout();
                writeln!(out, "added {added} ACL(s)")?;
                out.flush()?;
                Ok(())
            }
            AclCommand::Remove { allow, deny, operation, selection, all, broker } => {
                let permission = match (allow, deny) {
                    (true, _) => Some("allow"),
                    (_, true) => Some("deny"),
                    _ => None,
                };
                let filter = filter(&selection, permission, operation);
                if filter == AclFilter::default() && !all {
                    anyhow::bail!("no flag selects which ACLs to remove: give --principal, --topic, ... or --all");
                }
                let admin = AclAdmin::new(broker.connect().await?);
                let removed = admin.remove(filter).await.map_err(|e| broker.explain(e))?;
                print(removed)
            }
            AclCommand::List { selection, broker } => {
                let admin = AclAdmin::new(broker.connect().await?);
                let acls = admin.list(filter(&selection, None, None)).await.map_err(|e| broker.explain(e))?;
                print(acls)
            }
        }
    })
}
