//! `rill user create|delete|list` and `rill token create`: the users Kafka clients log in as over SASL and gRPC
//! clients name with bearer tokens (docs/security.md), over `rill_client::UserAdmin`.

use std::io::{BufRead, Write};

use anyhow::Context;
use rill_client::UserAdmin;

use crate::connect::{block_on, BrokerFlag};
use crate::output;
use crate::table::Table;

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Debug, clap::Subcommand)]
enum UserCommand {
    /// Create a user, stored as SCRAM credentials (never the password).
    #[command(after_help = "Examples:
  rill user create alice --password-stdin < alice.pw
  rill user create app1 --password s3cret --mechanism SCRAM-SHA-512 --token

A name is 1 to 64 ASCII letters, digits, '.', '_', '-' and '@'. With --token the new user's bearer token is
printed: it is shown this once (the broker keeps only its hash).")]
    Create {
        name: String,
        /// The password (visible in `ps` and shell history: prefer --password-stdin).
        #[arg(long, conflicts_with = "password_stdin", required_unless_present = "password_stdin")]
        password: Option<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// SCRAM-SHA-256 or SCRAM-SHA-512, repeatable; default both (PLAIN logins check either).
        #[arg(long = "mechanism", value_name = "MECHANISM")]
        mechanisms: Vec<String>,
        /// Also issue a bearer token for gRPC and print it.
        #[arg(long)]
        token: bool,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// Delete a user with its credentials and tokens.
    Delete {
        name: String,
        #[command(flatten)]
        broker: BrokerFlag,
    },
    /// List users: name, mechanisms, token count (no secret).
    List {
        #[command(flatten)]
        broker: BrokerFlag,
    },
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Issue a bearer token for an existing user and print it (shown this once).
    #[command(after_help = "Example:
  export RILL_TOKEN=$(rill token create alice)
  rill topic list")]
    Create {
        user: String,
        #[command(flatten)]
        broker: BrokerFlag,
    },
}

pub fn run(args: UserArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            UserCommand::Create { name, password, password_stdin, mechanisms, token, broker } => {
                let password = match password {
                    Some(password) if !password_stdin => password,
                    _ => read_password_line()?,
                };
                let admin = UserAdmin::new(broker.connect().await?);
                let issued =
                    admin.create_user(&name, &password, &mechanisms, token).await.map_err(|e| broker.explain(e))?;
                let mut out = output::stdout();
                match issued {
                    Some(token) => writeln!(out, "{token}")?,
                    None => writeln!(out, "created user {name}")?,
                }
                out.flush()?;
                Ok(())
            }
            UserCommand::Delete { name, broker } => {
                let admin = UserAdmin::new(broker.connect().await?);
                admin.delete_user(&name).await.map_err(|e| broker.explain(e))?;
                let mut out = output::stdout();
                writeln!(out, "deleted user {name}")?;
                out.flush()?;
                Ok(())
            }
            UserCommand::List { broker } => {
                let admin = UserAdmin::new(broker.connect().await?);
                let users = admin.list_users().await.map_err(|e| broker.explain(e))?;
                let mut table = Table::new(&["USER", "MECHANISMS", "TOKENS"]);
                for user in users {
                    table.row(vec![user.name, user.mechanisms.join(","), user.token_count.to_string()]);
                }
                let mut out = output::stdout();
                table.write(&mut out)?;
                out.flush()?;
                Ok(())
            }
        }
    })
}

pub fn run_token(args: TokenArgs) -> anyhow::Result<()> {
    block_on(async move {
        match args.command {
            TokenCommand::Create { user, broker } => {
                let admin = UserAdmin::new(broker.connect().await?);
                let token = admin.create_token(&user).await.map_err(|e| broker.explain(e))?;
                let mut out = output::stdout();
                writeln!(out, "{token}")?;
                out.flush()?;
                Ok(())
            }
        }
    })
}

/// The first line of stdin, without its line ending.
fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "--password-stdin read an empty line: give the password on stdin");
    Ok(password)
}
