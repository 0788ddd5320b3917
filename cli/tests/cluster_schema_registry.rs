//! The schema registry on three real `rill broker` processes, each serving Confluent's REST API
//! (`--schema-registry-listen`) over the cluster's replicated metadata: a schema registered through one node is
//! read by id through the others; registrations through two nodes at once get distinct ids, each naming its own
//! schema everywhere; a compatibility check on one node sees versions registered through another; and after the
//! SIGKILL of a node the others go on registering, and the node restarted serves every schema.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common;
use common::cluster::Cluster;
use common::eventually;

const FAST_FAILOVER: &str = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n";

/// One HTTP/1.1 call: (status, JSON body), or `None` if the node did not answer.
fn call(addr: &str, method: &str, path: &str, body: Option<&Value>) -> Option<(u16, Value)> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

fn record(name: &str, extra_field: Option<&str>) -> String {
    let mut fields = vec![json!({"name": "id", "type": "long"})];
    if let Some(field) = extra_field {
        fields.push(json!({"name": field, "type": "string", "default": ""}));
    }
    json!({"type": "record", "name": name, "fields": fields}).to_string()
}

/// Registers `schema` under `subject` through `addr`, retrying while the cluster has no controller leader
/// (a 500); the answer otherwise.
fn register(addr: &str, subject: &str, schema: &str) -> (u16, Value) {
    eventually(&format!("{subject} registered through {addr}"), || {
        let answer = call(addr, "POST", &format!("/subjects/{subject}/versions"), Some(&json!({"schema": schema})))?;
        (answer.0 != 500).then_some(answer)
    })
}

fn schema_by_id(addr: &str, id: u64) -> Option<String> {
    match call(addr, "GET", &format!("/schemas/ids/{id}"), None)? {
        (200, body) => body["schema"].as_str().map(str::to_owned),
        _ => None,
    }
}

#[test]
fn every_node_serves_the_same_registry_through_a_node_failure() {
    let mut cluster = Cluster::start_with_schema_registries(FAST_FAILOVER);
    let registries = cluster.schema_registries.clone();
    let v1 = record("Order", None);
    let (status, answer) = register(&registries[0], "orders-value", &v1);
    assert_eq!(status, 200, "{answer}");
    let first = answer["id"].as_u64().expect("an id");
    for registry in &registries[1..] {
        let read = eventually("the schema on every node", || schema_by_id(registry, first));
        assert_eq!(serde_json::from_str::<Value>(&read).ok(), serde_json::from_str(&v1).ok());
    }

    // Registered through two nodes at once: distinct ids, each naming its own schema on every node.
    let registered: Vec<(String, u64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = [1usize, 2]
            .into_iter()
            .flat_map(|node| (0..4).map(move |n| (node, n)))
            .map(|(node, n)| {
                let addr = registries[node].clone();
                scope.spawn(move || {
                    let schema = record(&format!("Event{node}x{n}"), None);
                    let (status, answer) = register(&addr, &format!("events-{node}-{n}-value"), &schema);
                    assert_eq!(status, 200, "{answer}");
                    (schema, answer["id"].as_u64().expect("an id"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("registered")).collect()
    });
    let mut ids: Vec<u64> = registered.iter().map(|(_, id)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), registered.len(), "every schema its own id: {registered:?}");
    for registry in &registries {
        for (schema, id) in &registered {
            let read = eventually("each id on every node", || schema_by_id(registry, *id));
            assert_eq!(serde_json::from_str::<Value>(&read).ok(), serde_json::from_str(schema).ok(), "id {id}");
        }
    }

    // A version registered through node 3 is the one node 2 checks a new one against.
    let v2 = record("Order", Some("note"));
    let (status, answer) = register(&registries[2], "orders-value", &v2);
    assert_eq!(status, 200, "{answer}");
    let incompatible = json!({"type": "record", "name": "Order", "fields": [
        {"name": "id", "type": "long"}, {"name": "note", "type": "string", "default": ""},
        {"name": "coupon", "type": "string"}]})
    .to_string();
    let refused = eventually("node 2 has version 2", || {
        let answer = register(&registries[1], "orders-value", &incompatible);
        let versions = call(&registries[1], "GET", "/subjects/orders-value/versions", None)?;
        (versions.1 == json!([1, 2])).then_some(answer)
    });
    assert_eq!((refused.0, refused.1["error_code"].as_u64()), (409, Some(409)), "{}", refused.1);

    // One node down: the other two go on; the node restarted serves everything.
    cluster.nodes[0].take().expect("node 1").kill();
    let (status, answer) = register(&registries[1], "after-kill-value", &record("Late", None));
    assert_eq!(status, 200, "{answer}");
    let late = answer["id"].as_u64().expect("an id");
    assert!(late > *ids.last().expect("ids"), "ids go on after the failure: {late}");
    cluster.nodes[0] = Some(cluster.start_node(1));
    for id in ids.iter().chain([first, late].iter()) {
        eventually("the restarted node serves every id", || schema_by_id(&registries[0], *id));
    }
    let subjects = eventually("subjects on the restarted node", || call(&registries[0], "GET", "/subjects", None));
    assert_eq!(subjects.1.as_array().map(Vec::len), Some(2 + registered.len()), "{}", subjects.1);
}
