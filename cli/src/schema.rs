//! `rill schema`: the broker's schema registry (docs/schema-registry.md) through Confluent's REST API on
//! `--schema-registry-listen`: list subjects, show a version, register a schema file, check one for
//! compatibility (exit 1 when it is not: a CI step before a deploy), delete, and read or set compatibility levels.
//! Plain HTTP/1.1, one request per connection, as `rill top` reads `/metrics`; `rill --token` is sent as a bearer
//! token.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use crate::table::Table;

/// Largest answer read.
const MAX_ANSWER_BYTES: u64 = 16 << 20;

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// The schema registry: the broker's --schema-registry-listen address (http://HOST:PORT or HOST:PORT).
    #[arg(long, env = "RILL_SCHEMA_REGISTRY", default_value = "127.0.0.1:8081", global = true)]
    registry: String,
    #[command(subcommand)]
    command: SchemaCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SchemaCommand {
    /// The subjects, each with its versions, latest version and id.
    Subjects {
        /// Soft-deleted subjects too.
        #[arg(long)]
        deleted: bool,
    },
    /// A subject's version (the latest unless --version) and its schema.
    Show {
        subject: String,
        #[arg(long)]
        version: Option<u32>,
    },
    /// Register the schema in FILE under SUBJECT (its existing version if the subject has it).
    #[command(after_help = "Examples:\n  rill schema register orders-value order.avsc\n  \
        rill schema register crm/customer.proto customer.proto\n  \
        rill schema register orders-value order.proto --reference crm/customer.proto=crm/customer.proto:1\n  \
        rill schema register payments-value payment.json --type json")]
    Register {
        subject: String,
        file: PathBuf,
        #[command(flatten)]
        kind: SchemaKind,
    },
    /// Whether the schema in FILE may follow SUBJECT's versions at its compatibility level (or follow --version
    /// alone); exits 1 when it may not, with the reason.
    #[command(after_help = "Example (a CI step):\n  rill schema check orders-value order.avsc || exit 1")]
    Check {
        subject: String,
        file: PathBuf,
        #[arg(long)]
        version: Option<u32>,
        #[command(flatten)]
        kind: SchemaKind,
    },
    /// Soft-delete a subject, or one --version; with --permanent, remove what was soft-deleted.
    Delete {
        subject: String,
        #[arg(long)]
        version: Option<u32>,
        #[arg(long)]
        permanent: bool,
    },
    /// Show the compatibility level of the registry or of SUBJECT, or set it to LEVEL (NONE, BACKWARD,
    /// BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE).
    Compatibility {
        subject: Option<String>,
        #[arg(long)]
        set: Option<String>,
    },
}

/// What kind of schema a file holds, and what it references.
#[derive(Debug, clap::Args)]
struct SchemaKind {
    /// The schema's kind: avro, json (JSON Schema) or protobuf; default protobuf for a .proto file, else avro.
    #[arg(long = "type", value_name = "TYPE")]
    schema_type: Option<String>,
    /// A schema registered under another subject that this one uses (an Avro named type, a JSON Schema $ref, a
    /// Protobuf import), as NAME=SUBJECT:VERSION; repeat for each.
    #[arg(long = "reference", value_name = "NAME=SUBJECT:VERSION")]
    references: Vec<String>,
}

impl SchemaKind {
    /// The registration body for `file`: `schema`, and `schemaType` and `references` where not Avro's defaults.
    fn body(&self, file: &Path) -> anyhow::Result<Value> {
        let schema_type = match &self.schema_type {
            Some(named) => match named.to_ascii_uppercase().as_str() {
                kind @ ("AVRO" | "JSON" | "PROTOBUF") => kind.to_owned(),
                _ => anyhow::bail!("--type {named:?} is not a schema type: avro, json or protobuf"),
            },
            None if file.extension().is_some_and(|e| e == "proto") => "PROTOBUF".to_owned(),
            None => "AVRO".to_owned(),
        };
        let mut references = Vec::new();
        for reference in &self.references {
            let parsed = reference.split_once('=').and_then(|(name, used)| {
                let (subject, version) = used.rsplit_once(':')?;
                let version: u32 = version.parse().ok().filter(|v| *v >= 1)?;
                (!name.is_empty() && !subject.is_empty())
                    .then(|| json!({"name": name, "subject": subject, "version": version}))
            });
            references.push(parsed.with_context(|| {
                format!("--reference {reference:?} is not NAME=SUBJECT:VERSION (a version from 1)")
            })?);
        }
        let mut body = json!({ "schema": read_schema(file)? });
        if schema_type != "AVRO" {
            body["schemaType"] = json!(schema_type);
        }
        if !references.is_empty() {
            body["references"] = json!(references);
        }
        Ok(body)
    }
}

pub fn run(args: SchemaArgs) -> anyhow::Result<()> {
    let registry = Registry::new(&args.registry)?;
    let mut out = std::io::stdout().lock();
    match args.command {
        SchemaCommand::Subjects { deleted } => {
            let query = if deleted { "?deleted=true" } else { "" };
            let subjects = registry.call("GET", &format!("/subjects{query}"), None)?;
            let mut table = Table::new(&["SUBJECT", "VERSIONS", "LATEST", "ID"]);
            for subject in subjects.as_array().into_iter().flatten().filter_map(Value::as_str) {
                let path = segment(subject);
                let versions = registry.call("GET", &format!("/subjects/{path}/versions{query}"), None)?;
                let latest = registry.call("GET", &format!("/subjects/{path}/versions/latest{query}"), None)?;
                table.row(vec![
                    subject.to_owned(),
                    versions.as_array().map_or(0, Vec::len).to_string(),
                    latest["version"].to_string(),
                    latest["id"].to_string(),
                ]);
            }
            table.write(&mut out)?;
        }
        SchemaCommand::Show { subject, version } => {
            let version = version.map_or("latest".to_owned(), |v| v.to_string());
            let found = registry.call("GET", &format!("/subjects/{}/versions/{version}", segment(&subject)), None)?;
            let kind = found["schemaType"].as_str().unwrap_or("AVRO");
            writeln!(out, "subject {} version {} id {} type {kind}", subject, found["version"], found["id"])?;
            for reference in found["references"].as_array().into_iter().flatten() {
                let (name, used) = (&reference["name"], &reference["subject"]);
                writeln!(
                    out,
                    "reference {} = {}:{}",
                    name.as_str().unwrap_or("?"),
                    used.as_str().unwrap_or("?"),
                    reference["version"]
                )?;
            }
            let text = found["schema"].as_str().unwrap_or_default();
            let pretty = serde_json::from_str::<Value>(text).ok().and_then(|v| serde_json::to_string_pretty(&v).ok());
            writeln!(out, "{}", pretty.as_deref().unwrap_or(text))?;
        }
        SchemaCommand::Register { subject, file, kind } => {
            let body = kind.body(&file)?;
            let path = format!("/subjects/{}/versions", segment(&subject));
            let id = registry.call("POST", &path, Some(&body))?["id"].clone();
            let found = registry.call("POST", &format!("/subjects/{}", segment(&subject)), Some(&body))?;
            writeln!(out, "registered under {subject}: version {} id {id}", found["version"])?;
        }
        SchemaCommand::Check { subject, file, version, kind } => {
            let body = kind.body(&file)?;
            let path = match version {
                Some(v) => format!("/compatibility/subjects/{}/versions/{v}?verbose=true", segment(&subject)),
                None => format!("/compatibility/subjects/{}/versions?verbose=true", segment(&subject)),
            };
            let answer = registry.call("POST", &path, Some(&body))?;
            if answer["is_compatible"] == json!(true) {
                writeln!(out, "compatible with {subject}")?;
            } else {
                let reasons: Vec<&str> =
                    answer["messages"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                anyhow::bail!("not compatible with {subject}: {}", reasons.join("; "));
            }
        }
        SchemaCommand::Delete { subject, version, permanent } => {
            let query = if permanent { "?permanent=true" } else { "" };
            let path = match version {
                Some(v) => format!("/subjects/{}/versions/{v}{query}", segment(&subject)),
                None => format!("/subjects/{}{query}", segment(&subject)),
            };
            let deleted = registry.call("DELETE", &path, None)?;
            let how = if permanent { "permanently deleted" } else { "soft-deleted" };
            writeln!(out, "{how} {subject} version(s) {deleted}")?;
        }
        SchemaCommand::Compatibility { subject, set } => {
            let path = subject.as_deref().map_or("/config".to_owned(), |s| format!("/config/{}", segment(s)));
            match set {
                Some(level) => {
                    registry.call("PUT", &path, Some(&json!({ "compatibility": level })))?;
                    writeln!(out, "compatibility {}", level.to_ascii_uppercase())?;
                }
                None => {
                    let query = if subject.is_some() { "?defaultToGlobal=true" } else { "" };
                    let answer = registry.call("GET", &format!("{path}{query}"), None)?;
                    writeln!(out, "compatibility {}", answer["compatibilityLevel"].as_str().unwrap_or("?"))?;
                }
            }
        }
    }
    Ok(())
}

fn read_schema(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read the schema file {}", file.display()))
}

/// `text` as one URL path segment: everything but unreserved characters percent-encoded.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Registry {
    /// `host:port`.
    addr: String,
}

impl Registry {
    fn new(registry: &str) -> anyhow::Result<Self> {
        if registry.starts_with("https://") {
            anyhow::bail!(
                "rill schema speaks plain HTTP; reach a registry served over TLS (--admin-tls) with Confluent's \
                 clients or curl"
            );
        }
        let addr = registry.strip_prefix("http://").unwrap_or(registry).trim_end_matches('/');
        if addr.is_empty() || addr.contains('/') {
            anyhow::bail!("--registry {registry:?} is not HOST:PORT or http://HOST:PORT");
        }
        Ok(Self { addr: addr.to_owned() })
    }

    /// One call: the JSON answer, or the registry's error (Confluent's code and message) as the error.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let addr = &self.addr;
        let mut stream = TcpStream::connect(addr).with_context(|| {
            format!("cannot reach the schema registry at {addr} (is the broker's --schema-registry-listen on?)")
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let authorization =
            crate::connect::token().map(|token| format!("Authorization: Bearer {token}\r\n")).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.schemaregistry.v1+json\r\n\
             Content-Type: application/vnd.schemaregistry.v1+json\r\n{authorization}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )?;
        let mut answer = String::new();
        stream.take(MAX_ANSWER_BYTES).read_to_string(&mut answer).with_context(|| format!("reading from {addr}"))?;
        let (head, body) = answer.split_once("\r\n\r\n").context("the schema registry's answer is not HTTP")?;
        let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        if status != 200 {
            let message = json["message"].as_str().unwrap_or(body.trim());
            anyhow::bail!("the schema registry refused {method} {path} ({status}, {}): {message}", json["error_code"]);
        }
        Ok(json)
    }
}
