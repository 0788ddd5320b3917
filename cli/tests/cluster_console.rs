//! The console of a cluster node that does not lead a partition, on three real `rill broker` processes with
//! mutual TLS between the nodes and authorization on: it shows the partition's records, produces to it, changes
//! the topic's settings and partitions, deletes its records on each leader and groups on their coordinators, and
//! its user's ACLs apply, as on the leader's own console (docs/console.md, "On a cluster").

use crate::common;

use std::process::Command;

use common::cluster::Cluster;
use common::console::{admin_http, sign_in};
use common::pki::{Ca, Leaf};
use common::{eventually, Output, RILL};

/// `rill ARGS --broker https://BROKER`, trusting `ca` and presenting `leaf` as the client certificate.
fn rill_as(broker: &str, ca: &Ca, leaf: &Leaf, args: &[&str]) -> Output {
    let mut command = Command::new(RILL);
    command.args(args).args(["--broker", &format!("https://{broker}")]);
    command.args(["--tls-ca", ca.pem_path.to_str().expect("utf-8"), "--tls-cert", leaf.cert()]);
    command.args(["--tls-key", leaf.key()]);
    common::run(command.env_remove("RILL_TOKEN").env_remove("RILL_BROKER"), None)
}

/// A form POST to the console on `admin` as the session `cookie`.
fn post_form(admin: &str, path: &str, cookie: &str, body: &str) -> (u16, String) {
    let headers =
        format!("Content-Type: application/x-www-form-urlencoded\r\nOrigin: http://{admin}\r\nCookie: {cookie}\r\n");
    let (status, _, page) = admin_http(admin, "POST", path, &headers, body);
    (status, page)
}

fn get(admin: &str, path: &str, cookie: &str) -> (u16, String) {
    let (status, _, page) = admin_http(admin, "GET", path, &format!("Cookie: {cookie}\r\n"), "");
    (status, page)
}

/// The value of `name="csrf"` in a page.
fn csrf_in(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no token in {page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

/// Each partition's leader of `orders`, once all three replicas of every partition are in sync.
fn leaders_in_sync(broker: &str, ca: &Ca, admin: &Leaf) -> Vec<u64> {
    eventually("every partition of orders led, with three replicas in sync", || {
        common::cluster::leaders_with_isr(&rill_as(broker, ca, admin, &["topic", "describe", "orders"]).stdout, 3, 3)
    })
}

/// `Produced to partition P at offset O.` on a produce answer page: (P, O).
fn produced_at(page: &str) -> (u32, i64) {
    let at = page.find("Produced to partition ").unwrap_or_else(|| panic!("not produced: {page}"));
    let words: Vec<&str> = page[at..].split_whitespace().collect();
    let partition = words[3].parse().expect("a partition");
    let digits: String = words[6].chars().take_while(char::is_ascii_digit).collect();
    let offset = digits.parse().expect("an offset");
    (partition, offset)
}

#[test]
fn a_non_leaders_console_shows_and_produces_a_partitions_records_as_its_user() {
    let certs = tempfile::tempdir().expect("temp dir");
    let d = certs.path();
    let ca = Ca::new(d, "ca");
    let [node, admin] = ["node", "admin"].map(|name| ca.issue(d, name, 1, false));
    let config = format!(
        "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n\
         [tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\
         [auth]\nauthorization = \"on\"\nadmin_auth = \"required\"\nsuper_users = [\"User:admin\"]\n\
         node_principals = [\"User:node\"]\n",
        node.cert(),
        node.key(),
        ca.pem_path.to_str().expect("utf-8"),
    );
    let cluster = Cluster::start(&config);
    let first = cluster.addr(1).to_owned();
    eventually("topic orders created with three replicas", || {
        let args = ["topic", "create", "orders", "--partitions", "3", "--replication-factor", "3"];
        rill_as(&first, &ca, &admin, &args).status.success().then_some(())
    });
    for user in ["alice", "bob", "admin"] {
        rill_as(&first, &ca, &admin, &["user", "create", user, "--password", "pw"]).ok();
    }
    // Alice reads and writes orders; bob may see it listed, but not read its records.
    for (principal, operation) in [("User:alice", "read"), ("User:alice", "write"), ("User:bob", "describe")] {
        let grant = ["acl", "add", "--allow", "--principal", principal, "--operation", operation, "--topic", "orders"];
        rill_as(&first, &ca, &admin, &grant).ok();
    }
    let leaders = leaders_in_sync(&first, &ca, &admin);
    let leader = leaders[0];
    let follower = (1..=3).find(|id| *id != leader).expect("a node that does not lead partition 0");
    let mut produce = Command::new(RILL);
    produce.args(["produce", "orders", "--partition", "0", "--acks", "all"]);
    produce.args(["--broker", &format!("https://{}", cluster.addr(leader))]);
    produce.args(["--tls-ca", ca.pem_path.to_str().expect("utf-8"), "--tls-cert", admin.cert()]);
    produce.args(["--tls-key", admin.key()]);
    common::run(produce.env_remove("RILL_TOKEN").env_remove("RILL_BROKER"), Some(b"first-value\nsecond-value\n")).ok();

    // The follower's console shows the leader's records: its own handlers refuse (not the leader), and the
    // leader answers the forwarded call as alice. `User:node`, the follower's certificate, has no ACL at all,
    // so a call that reached the leader as the node rather than as alice would be refused.
    let console = cluster.admin(follower);
    let alice = sign_in(console, "alice");
    let (status, page) = get(console, "/topics/orders/messages?partition=0&from=earliest", &alice);
    assert_eq!(status, 200, "node {follower} (leader {leader}): {page}");
    assert!(page.contains("first-value") && page.contains("second-value"), "{page}");
    assert!(page.contains("Partition 0 holds offsets 0 to 1."), "the leader's offsets: {page}");
    let (status, page) = get(console, "/topics/orders/messages?partition=0", &alice);
    assert_eq!(status, 200, "the latest records: {page}");
    assert!(page.contains("second-value"), "{page}");
    let (status, json) = get(console, "/topics/orders/messages.json?partition=0&from=earliest", &alice);
    assert_eq!(status, 200, "{json}");
    assert!(json.contains("\"first-value\""), "{json}");

    // Produced from the follower's console, the record lands on the leader, read back there.
    let (status, form) = get(console, "/topics/orders/produce?partition=0", &alice);
    assert_eq!(status, 200, "{form}");
    let csrf = csrf_in(&form);
    let (status, page) =
        post_form(console, "/topics/orders/produce", &alice, &format!("csrf={csrf}&partition=0&value=from-console"));
    assert_eq!(status, 200, "{page}");
    assert_eq!(produced_at(&page), (0, 2), "after the two records produced before");
    // Without a partition, the one the follower picks by key is the one the record lands in, though another
    // node leads it.
    let key = (0..100)
        .map(|i| format!("k{i}"))
        .find(|key| leaders[rill_protocol::partitioner::partition_for_key(key.as_bytes(), 3) as usize] != follower)
        .expect("a key of a partition another node leads");
    let expected = rill_protocol::partitioner::partition_for_key(key.as_bytes(), 3);
    let (status, page) =
        post_form(console, "/topics/orders/produce", &alice, &format!("csrf={csrf}&key={key}&value=keyed-value"));
    assert_eq!(status, 200, "{page}");
    let (partition, offset) = produced_at(&page);
    assert_eq!(partition, expected, "the key's partition");
    let read_back = |partition: u32, broker: &str| {
        let partition = partition.to_string();
        let args = ["consume", "orders", "--partition", &partition, "--from-beginning"];
        rill_as(broker, &ca, &admin, &args).ok().to_owned()
    };
    assert_eq!(read_back(0, cluster.addr(leader)), "first-value\nsecond-value\nfrom-console\n");
    let keyed = read_back(expected, cluster.addr(leaders[expected as usize]));
    assert_eq!(keyed.lines().nth(offset as usize), Some("keyed-value"), "{keyed}");

    // Bob may describe orders but not read it: refused on the follower's console as on the leader's.
    let bob = sign_in(console, "bob");
    let (status, page) = get(console, "/topics/orders/messages?partition=0&from=earliest", &bob);
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("User:bob is not authorized") && !page.contains("first-value"), "{page}");
    let (status, page) =
        get(cluster.admin(leader), "/topics/orders/messages?partition=0", &sign_in(cluster.admin(leader), "bob"));
    assert_eq!(status, 403, "on the leader too: {page}");

    // A group's page and an offset reset, on every node: two of them are not its coordinator, and send the
    // calls there. A console user named admin is `User:admin`, the super user.
    eventually("group g commits through node 1", || {
        let args = ["consume", "orders", "--partition", "0", "--from-beginning", "--group", "g"];
        rill_as(&first, &ca, &admin, &args).status.success().then_some(())
    });
    for node_id in 1..=3 {
        let console = cluster.admin(node_id);
        let admin_session = sign_in(console, "admin");
        let (status, page) = get(console, "/groups/g", &admin_session);
        assert_eq!(status, 200, "group g on node {node_id}: {page}");
        assert!(page.contains("orders"), "the committed partition on node {node_id}: {page}");
        let csrf = csrf_in(&page);
        let reset = format!("csrf={csrf}&topic=orders&partition=0&to=offset&at={node_id}&confirm=yes");
        let (status, page) = post_form(console, "/groups/g/reset", &admin_session, &reset);
        assert_eq!(status, 200, "reset on node {node_id}: {page}");
        assert!(page.contains("Offsets reset."), "{page}");
        let described = rill_as(&first, &ca, &admin, &["group", "describe", "g"]);
        let committed = described.ok().lines().find_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells.len() >= 3 && cells[0] == "orders" && cells[1] == "0").then(|| cells[2].to_owned())
        });
        assert_eq!(committed.as_deref(), Some(node_id.to_string().as_str()), "{described:?}");
    }

    // Changes to the topic from the follower's console: its settings and partition count through the replicated
    // metadata, seen on every node; records deleted in every partition, each on its own leader, three nodes in
    // all when the leaders are spread. Alice may read and write, not change or delete: refused first.
    let admin_session = sign_in(console, "admin");
    let (_, page) = get(console, "/topics/orders/settings", &admin_session);
    let csrf = csrf_in(&page);
    let alice_csrf = csrf_in(&get(console, "/topics/orders/produce", &alice).1);
    for (path, form) in
        [("settings", "set.retention.ms=1"), ("delete-records", "confirm=yes"), ("partitions", "partitions=9")]
    {
        let (status, page) =
            post_form(console, &format!("/topics/orders/{path}"), &alice, &format!("csrf={alice_csrf}&{form}"));
        assert!(status == 403 && page.contains("User:alice is not authorized"), "{path}: {page}");
    }
    let move_form = format!("csrf={alice_csrf}&topic=orders&partition=0&replicas=1%2C2%2C3&confirm=yes");
    let (status, page) = post_form(console, "/cluster/move", &alice, &move_form);
    assert!(
        status == 403 && page.contains("User:alice is not authorized"),
        "a move needs alter on the cluster: {page}"
    );
    let form = format!("csrf={csrf}&set.retention.ms=3600000&set.min.insync.replicas=3&confirm=yes");
    let (status, page) = post_form(console, "/topics/orders/settings", &admin_session, &form);
    assert_eq!(status, 200, "{page}");
    // The answer shows the values this node applied, the committed change waited for (min.insync.replicas too).
    for (key, value) in [("retention.ms", "3600000"), ("min.insync.replicas", "3")] {
        assert!(page.contains(&format!("<tr><td><code>{key}</code></td><td>{value}</td></tr>")), "{key}: {page}");
    }
    let form = format!("csrf={csrf}&set.min.insync.replicas=2&confirm=yes");
    let (status, page) = post_form(console, "/topics/orders/settings", &admin_session, &form);
    assert!(status == 200 && page.contains("<td><code>min.insync.replicas</code></td><td>2</td>"), "{page}");
    let form = format!("csrf={csrf}&partitions=4&confirm=yes");
    let (status, page) = post_form(console, "/topics/orders/partitions", &admin_session, &form);
    assert_eq!(status, 200, "{page}");
    for node_id in 1..=3 {
        let console = cluster.admin(node_id);
        let session = sign_in(console, "admin");
        eventually("the settings and the fourth partition on every node", || {
            let settings = get(console, "/topics/orders/settings", &session).1;
            let topic = get(console, "/topics/orders?live=0", &session).1;
            let is_set = settings.contains("<tr><td><code>retention.ms</code></td><td>3600000</td><td>this topic</td>");
            (is_set && topic.contains("/topics/orders/messages?partition=3&")).then_some(())
        });
    }
    let (status, page) =
        post_form(console, "/topics/orders/delete-records", &admin_session, &format!("csrf={csrf}&confirm=yes"));
    assert_eq!(status, 200, "leaders {leaders:?}, console of node {follower}: {page}");
    assert!(page.contains("deleted.</p>"), "{page}");
    for partition in 0..4u32 {
        let args = ["consume", "orders", "--partition", &partition.to_string(), "--from-beginning"];
        let left = rill_as(&first, &ca, &admin, &args);
        assert_eq!(left.ok().trim(), "", "partition {partition} has no record left");
    }

    // Groups deleted from each node's console, two of which are not a given group's coordinator.
    for node_id in 2..=3 {
        let group = format!("g{node_id}");
        let args = ["group", "reset-offsets", &group, "--topic", "orders", "--to-earliest"];
        eventually("a group's offsets committed", || {
            rill_as(&first, &ca, &admin, &args).status.success().then_some(())
        });
    }
    for (node_id, group) in [(1, "g"), (2, "g2"), (3, "g3")] {
        let console = cluster.admin(node_id);
        let session = sign_in(console, "admin");
        let csrf = csrf_in(&get(console, &format!("/groups/{group}/delete"), &session).1);
        let (status, page) =
            post_form(console, &format!("/groups/{group}/delete"), &session, &format!("csrf={csrf}&confirm=yes"));
        assert!(status == 200 && page.contains("deleted ("), "{group} through node {node_id}: {page}");
        rill_as(&first, &ca, &admin, &["group", "describe", group]).fails(1, group);
    }

    // A user made on node 2's console, given an ACL on node 3's, signs in and reads on node 1's: users and ACLs
    // are the cluster's. The ACL removed and the user deleted on other nodes' consoles hold everywhere too.
    let on = |node_id: u64| {
        let console = cluster.admin(node_id).to_owned();
        let session = sign_in(&console, "admin");
        let csrf = csrf_in(&get(&console, "/users", &session).1);
        (console, session, csrf)
    };
    let (console_2, session_2, csrf_2) = on(2);
    let form = format!("csrf={csrf_2}&name=carol&password=pw&again=pw");
    let (status, page) = post_form(&console_2, "/users", &session_2, &form);
    assert!(status == 200 && page.contains("User:carol</b> created"), "{page}");
    let (console_3, session_3, csrf_3) = on(3);
    let binding = "principal=User%3Acarol&permission=allow&operation=describe&resource_type=topic&pattern_type=literal&name=orders&host=*";
    let (status, page) = post_form(&console_3, "/acls", &session_3, &format!("csrf={csrf_3}&{binding}&confirm=yes"));
    assert!(status == 200 && page.contains("Binding added"), "{page}");
    let console_1 = cluster.admin(1).to_owned();
    let carol = eventually("carol signs in on node 1", || {
        let form = format!("Content-Type: application/x-www-form-urlencoded\r\nOrigin: http://{console_1}\r\n");
        common::console::admin_http(&console_1, "POST", "/login", &form, "user=carol&password=pw").1
    });
    eventually("carol's ACL on node 1", || (get(&console_1, "/topics/orders", &carol).0 == 200).then_some(()));
    let (status, page) = get(&console_1, "/topics/orders/messages?partition=0", &carol);
    assert_eq!(status, 403, "describe is not read: {page}");
    let (console_1, session_1, csrf_1) = on(1);
    let (status, page) =
        post_form(&console_1, "/acls/remove", &session_1, &format!("csrf={csrf_1}&{binding}&confirm=yes"));
    assert!(status == 200 && page.contains("Binding removed"), "{page}");
    let (status, page) =
        post_form(&console_3, "/users/carol/delete", &session_3, &format!("csrf={csrf_3}&confirm=yes"));
    assert_eq!(status, 200, "{page}");
    eventually("carol gone from node 2", || {
        let form = format!("Content-Type: application/x-www-form-urlencoded\r\nOrigin: http://{console_2}\r\n");
        let (status, _, _) = common::console::admin_http(&console_2, "POST", "/login", &form, "user=carol&password=pw");
        (status == 401).then_some(())
    });

    // Through the replicated metadata too: a schema registered on node 2's console and a group's setting changed
    // on node 3's are seen on every node's.
    let schema = "schema=%22string%22&type=AVRO&subject=orders-key&confirm=yes";
    let (status, page) = post_form(&console_2, "/schemas/register", &session_2, &format!("csrf={csrf_2}&{schema}"));
    assert!(status == 200 && page.contains("Registered orders-key version 1"), "{page}");
    let setting = "set.consumer.session.timeout.ms=61000&confirm=yes";
    let (status, page) =
        post_form(&console_3, "/groups/billing/settings", &session_3, &format!("csrf={csrf_3}&{setting}"));
    assert!(status == 200 && page.contains("<td>61000</td>"), "{page}");
    for (node, console, session) in
        [(1, &console_1, &session_1), (2, &console_2, &session_2), (3, &console_3, &session_3)]
    {
        eventually(&format!("the schema and the setting on node {node}"), || {
            let has_schema = get(console, "/schemas", session).1.contains("orders-key");
            let has_setting = get(console, "/groups/billing/settings", session).1.contains("<td>61000</td>");
            (has_schema && has_setting).then_some(())
        });
    }
}
