//! The web console's HTTP handlers against a real `rill broker` process, over plain HTTP/1.1 (`std::net`, as
//! `rill top` scrapes `/metrics`): every page answers, data is escaped, writes need the CSRF token and the
//! same origin, `--console read-only` refuses writes and `--console off` serves none of it. The browser test
//! is tests/compat/console.sh.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::cluster::Cluster;
use common::{rill, AdminBroker, DEADLINE};

type Broker = AdminBroker;

fn broker(console: &str) -> Broker {
    AdminBroker::start(&["--console", console])
}

/// An answer: status and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.1 request; `extra` are whole header lines.
fn request(admin: &str, method: &str, path: &str, extra: &[String], body: &str) -> Answer {
    request_as(admin, admin, method, path, extra, body)
}

/// [`request`] addressed to `host` (its `Host` header), as a browser sends it to the name in its address bar.
fn request_as(admin: &str, host: &str, method: &str, path: &str, extra: &[String], body: &str) -> Answer {
    let mut stream = TcpStream::connect(admin).expect("connect to the admin listener");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n", body.len());
    for line in extra {
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_string(), body: body.to_string() }
}

fn get(admin: &str, path: &str) -> Answer {
    request(admin, "GET", path, &[], "")
}

/// A POST of `form` as a browser on the console's own page sends it.
fn post(admin: &str, path: &str, form: &str) -> Answer {
    let headers = [
        "Content-Type: application/x-www-form-urlencoded".to_string(),
        format!("Origin: http://{admin}"),
        "Sec-Fetch-Site: same-origin".to_string(),
    ];
    request(admin, "POST", path, &headers, form)
}

/// The CSRF token of the first form on the page at `path`.
fn csrf_token(admin: &str, path: &str) -> String {
    let page = get(admin, path);
    let at = page.body.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no token in {page:?}"));
    let rest = &page.body[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_string()
}

#[test]
fn every_page_answers_and_shows_data_as_escaped_text() {
    let broker = broker("on");
    let admin = &broker.admin;
    rill(&broker.addr, &["topic", "create", "orders", "--partitions", "2"]).ok();
    rill(&broker.addr, &["produce", "orders", "--partition", "0", "--key", "k1", "--value", "{\"total\":42}"]).ok();
    rill(
        &broker.addr,
        &["produce", "orders", "--partition", "0", "--value", "<script>x()</script>", "--header", "h=<img src=x>"],
    )
    .ok();
    rill(&broker.addr, &["group", "reset-offsets", "billing", "--topic", "orders", "--to-earliest"]).ok();

    let pages = ["/", "/topics", "/topics?q=ord", "/topics/orders", "/groups", "/groups/billing", "/create-topic"];
    let forms = ["/topics/orders/settings", "/topics/orders/partitions", "/topics/orders/delete-records"];
    let more = ["/groups/billing/delete", "/topic-defaults", "/users", "/acls", "/users/anyone/delete", "/quotas"];
    for path in pages.into_iter().chain(forms).chain(more) {
        let page = get(admin, path);
        assert_eq!(page.status, 200, "{path}: {page:?}");
        assert!(page.head.contains("content-security-policy: default-src 'none'"), "{path}: {}", page.head);
        assert!(!page.body.contains("<script"), "{path} has no script: {}", page.body);
    }
    let topics = get(admin, "/topics").body;
    assert!(topics.contains(">orders</a>") && topics.contains("none set for the cluster"), "{topics}");
    rill(&broker.addr, &["topic", "defaults", "--config", "log.retention.ms=3600000"]).ok();
    rill(&broker.addr, &["topic", "alter", "orders", "--config", "segment.ms=60000"]).ok();
    let topics = get(admin, "/topics").body;
    assert!(topics.contains("Topic defaults set for the cluster: log.retention.ms=3600000."), "{topics}");
    assert!(get(admin, "/topics/orders").body.contains("Set on the topic: segment.ms; the others"), "own keys");
    let settings = get(admin, "/topics/orders/settings").body;
    assert_eq!(setting(&settings, "retention.ms"), ("3600000".into(), "cluster default".into()), "{settings}");
    assert_eq!(setting(&settings, "segment.ms"), ("60000".into(), "this topic".into()));
    let overview = get(admin, "/").body;
    assert!(overview.contains("disk free") && overview.contains("<table id=\"nodes\">"), "disk use, nodes: {overview}");
    let topic = get(admin, "/topics/orders").body;
    assert!(topic.contains("records/s in") && topic.contains("retention"), "rates and settings: {topic}");
    assert!(topic.contains("<td class=\"num\">2</td>"), "partition 0 ends at offset 2: {topic}");
    let group = get(admin, "/groups/billing").body;
    assert!(group.contains("<b>2</b>total lag"), "two records of lag: {group}");

    let messages = get(admin, "/topics/orders/messages?partition=0&from=earliest");
    assert_eq!(messages.status, 200, "{messages:?}");
    assert!(messages.body.contains("&lt;script&gt;x()&lt;/script&gt;"), "the value is text: {}", messages.body);
    assert!(messages.body.contains("&lt;img src=x&gt;"), "the header is text: {}", messages.body);
    assert!(!messages.body.contains("<script") && !messages.body.contains("<img"), "{}", messages.body);
    assert!(messages.body.contains("&quot;total&quot;: 42"), "JSON is pretty-printed: {}", messages.body);
    let filtered = get(admin, "/topics/orders/messages?partition=0&from=earliest&key=k1").body;
    assert!(filtered.contains("Showing 1 record(s)"), "{filtered}");

    let download = get(admin, "/topics/orders/messages.json?partition=0&from=earliest");
    assert!(download.head.contains("content-type: application/json"), "{download:?}");
    let json: serde_json::Value = serde_json::from_str(&download.body).expect("the download is JSON");
    assert_eq!(json["records"][1]["value"], "<script>x()</script>");
    assert_eq!(json["records"][1]["headers"][0]["value"], "<img src=x>");

    let single = get(admin, "/cluster");
    assert!(single.status == 404 && single.body.contains("single node"), "{single:?}");
    let css = get(admin, "/console.css");
    assert!(css.status == 200 && css.head.contains("text/css"), "{css:?}");
    assert_eq!(get(admin, "/metrics").status, 200, "/metrics is unchanged");
}

#[test]
fn bad_input_is_a_clear_error_page_not_a_failure() {
    let broker = broker("on");
    let admin = &broker.admin;
    rill(&broker.addr, &["topic", "create", "small"]).ok();
    let missing = get(admin, "/topics/%3Cb%3Enope");
    assert_eq!(missing.status, 404, "{missing:?}");
    assert!(missing.body.contains("&lt;b&gt;nope"), "the name is escaped in the message: {}", missing.body);
    let out_of_range = get(admin, "/topics/small/messages?from=offset&offset=99");
    assert_eq!(out_of_range.status, 400);
    assert!(out_of_range.body.contains("offset 99 is outside partition 0"), "{}", out_of_range.body);
    let bad_limit = get(admin, "/topics/small/messages?limit=100000");
    assert!(bad_limit.status == 400 && bad_limit.body.contains("between 1 and 500"), "{bad_limit:?}");
    let bad_time = get(admin, "/topics/small/messages?from=timestamp&timestamp=yesterday");
    assert!(bad_time.status == 400 && bad_time.body.contains("YYYY-MM-DD"), "{bad_time:?}");
    assert_eq!(get(admin, "/no/such/page").status, 404);
    assert_eq!(request(admin, "DELETE", "/topics/small", &[], "").status, 405);
    // A body announced over the limit is refused before a byte of it is read.
    let mut stream = TcpStream::connect(admin).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    write!(stream, "POST /create-topic HTTP/1.1\r\nHost: {admin}\r\nContent-Length: {}\r\n\r\n", 2 << 20)
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let huge = Answer {
        status: answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0),
        head: answer,
        body: String::new(),
    };
    assert_eq!(huge.status, 413, "a body over the limit is refused: {}", huge.head);
}

#[test]
fn topics_are_created_produced_to_and_deleted_through_the_api_after_a_confirmation() {
    let broker = broker("on");
    let admin = &broker.admin;
    let token = csrf_token(admin, "/create-topic");
    let asked = post(admin, "/create-topic", &format!("csrf={token}&name=web-made&partitions=3"));
    assert!(asked.status == 200 && asked.body.contains("Yes, create it"), "a confirmation first: {asked:?}");
    assert!(!rill(&broker.addr, &["topic", "list"]).ok().contains("web-made"), "nothing made before it");
    let created = post(admin, "/create-topic", &format!("csrf={token}&name=web-made&partitions=3&confirm=yes"));
    assert_eq!(created.status, 200, "{created:?}");
    let described = rill(&broker.addr, &["topic", "describe", "web-made"]);
    assert!(described.ok().contains("web-made"), "the API sees the topic");

    // The API's own validation, shown as its message.
    let refused = post(admin, "/create-topic", &format!("csrf={token}&name=bad%2Fname&partitions=1&confirm=yes"));
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.body.contains("bad/name"), "the refusal names the topic: {}", refused.body);
    let twice = post(admin, "/create-topic", &format!("csrf={token}&name=web-made&partitions=1&confirm=yes"));
    assert_eq!(twice.status, 409, "{twice:?}");
    let none = post(admin, "/create-topic", &format!("csrf={token}&name=empty&partitions=0&confirm=yes"));
    assert!(none.status == 400 && none.body.contains("is not a partition count"), "0 refused: {none:?}");

    let produced = post(
        admin,
        "/topics/web-made/produce",
        &format!("csrf={token}&partition=1&key=k&value=hello+web&headers=a%3A+b"),
    );
    assert!(produced.body.contains("Produced to partition 1 at offset 0."), "{produced:?}");
    let consumed =
        rill(&broker.addr, &["consume", "web-made", "--partition", "1", "--from-beginning", "--max-messages", "1"]);
    assert_eq!(consumed.ok().trim(), "hello web");

    rill(&broker.addr, &["group", "reset-offsets", "readers", "--topic", "web-made", "--to-earliest"]).ok();
    let reset =
        post(admin, "/groups/readers/reset", &format!("csrf={token}&topic=web-made&partition=1&to=latest&confirm=yes"));
    assert!(reset.status == 200 && reset.body.contains("Offsets reset."), "{reset:?}");
    assert!(get(admin, "/groups/readers").body.contains("<b>0</b>total lag"), "reset to the end");

    let asked = post(admin, "/topics/web-made/delete", &format!("csrf={token}"));
    assert!(asked.body.contains("Yes, delete it"), "a confirmation first: {asked:?}");
    let deleted = post(admin, "/topics/web-made/delete", &format!("csrf={token}&confirm=yes"));
    assert_eq!(deleted.status, 200, "{deleted:?}");
    rill(&broker.addr, &["topic", "describe", "web-made"]).fails(1, "web-made");
}

/// The row of `key` in a settings table: value, where it comes from.
fn setting(body: &str, key: &str) -> (String, String) {
    let rows = table_rows(body, "topic-settings");
    let row = rows.iter().find(|row| row[0] == key).unwrap_or_else(|| panic!("no {key} in {rows:?}"));
    (row[1].clone(), row[2].clone())
}

#[test]
fn a_topics_settings_partitions_and_records_and_a_group_change_after_a_confirmation() {
    let broker = broker("on");
    let (admin, addr) = (&broker.admin, &broker.addr);
    rill(addr, &["topic", "create", "tuned", "--partitions", "2"]).ok();
    let records: String = (0..10).map(|i| format!("record-{i}\n")).collect();
    common::rill_with_stdin(addr, &["produce", "tuned", "--partition", "0"], records.as_bytes()).ok();
    let token = csrf_token(admin, "/topics/tuned/settings");

    // Settings: every key under Kafka's name, where it comes from, and a form that checks before it asks.
    let page = get(admin, "/topics/tuned/settings");
    assert_eq!(setting(&page.body, "retention.ms"), ("604800000".into(), "default".into()), "{}", page.body);
    assert_eq!(setting(&page.body, "unclean.leader.election.enable").1, "fixed");
    assert!(!page.body.contains("name=\"set.unclean.leader.election.enable\""), "a fixed key takes no value");
    let form = format!("csrf={token}&set.retention.ms=3600000&set.cleanup.policy=compact%2Cdelete&set.segment.bytes=");
    let asked = post(admin, "/topics/tuned/settings", &form);
    assert!(asked.status == 200 && asked.body.contains("Yes, change them"), "a confirmation first: {asked:?}");
    let shown = table_rows(&asked.body, "changes");
    assert_eq!(shown[0], ["retention.ms", "604800000", "3600000"], "now and after: {shown:?}");
    assert_eq!(shown.len(), 2, "an empty input changes nothing: {shown:?}");
    assert_eq!(setting(&get(admin, "/topics/tuned/settings").body, "retention.ms").0, "604800000", "not yet");
    let changed = post(admin, "/topics/tuned/settings", &format!("{form}&confirm=yes"));
    assert_eq!(changed.status, 200, "{changed:?}");
    let page = get(admin, "/topics/tuned/settings").body;
    assert_eq!(setting(&page, "retention.ms"), ("3600000".into(), "this topic".into()));
    assert_eq!(setting(&page, "cleanup.policy"), ("compact,delete".into(), "this topic".into()));
    let described = rill(addr, &["topic", "describe", "tuned"]);
    assert!(described.ok().contains("3600000"), "the API sees it: {}", described.ok());
    // Refused as the API refuses, before the confirmation, naming the key; nothing changes.
    let bad = post(admin, "/topics/tuned/settings", &format!("csrf={token}&set.retention.ms=soon"));
    assert!(bad.status == 400 && bad.body.contains("retention.ms") && bad.body.contains("soon"), "{bad:?}");
    let unknown = post(admin, "/topics/tuned/settings", &format!("csrf={token}&set.num.partitions=3&confirm=yes"));
    assert!(unknown.status == 400 && unknown.body.contains("num.partitions"), "{unknown:?}");
    let nothing = post(admin, "/topics/tuned/settings", &format!("csrf={token}&set.retention.ms=&confirm=yes"));
    assert!(nothing.status == 400 && nothing.body.contains("nothing to change"), "{nothing:?}");
    // Back to the default.
    let reset = post(admin, "/topics/tuned/settings", &format!("csrf={token}&reset.retention.ms=yes&confirm=yes"));
    assert_eq!(reset.status, 200, "{reset:?}");
    let page = get(admin, "/topics/tuned/settings").body;
    assert_eq!(setting(&page, "retention.ms"), ("604800000".into(), "default".into()));
    assert_eq!(setting(&page, "cleanup.policy").1, "this topic", "the other key kept");

    // Partitions: more, never fewer.
    let fewer = post(admin, "/topics/tuned/partitions", &format!("csrf={token}&partitions=2"));
    assert!(fewer.status == 400 && fewer.body.contains("it has 2"), "{fewer:?}");
    let asked = post(admin, "/topics/tuned/partitions", &format!("csrf={token}&partitions=4"));
    assert!(asked.body.contains("Grow topic <b>tuned</b> from 2 to 4 partitions?"), "{asked:?}");
    assert_eq!(table_rows(&get(admin, "/topics/tuned?live=0").body, "partitions").len(), 2, "not yet");
    let added = post(admin, "/topics/tuned/partitions", &format!("csrf={token}&partitions=4&confirm=yes"));
    assert_eq!(added.status, 200, "{added:?}");
    assert_eq!(table_rows(&get(admin, "/topics/tuned?live=0").body, "partitions").len(), 4);

    // Records below an offset, then every record; an offset past the end refused by the partition.
    let asked = post(admin, "/topics/tuned/delete-records", &format!("csrf={token}&partition=0&offset=4"));
    assert!(asked.body.contains("below offset 4 in partition 0?"), "{asked:?}");
    let form_rows = |body: &str| table_rows(body, "partitions");
    assert_eq!(form_rows(&get(admin, "/topics/tuned/delete-records").body)[0], ["0", "0", "10"], "not yet");
    let deleted =
        post(admin, "/topics/tuned/delete-records", &format!("csrf={token}&partition=0&offset=4&confirm=yes"));
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(table_rows(&deleted.body, "deleted"), [["0", "4", ""]]);
    assert_eq!(form_rows(&get(admin, "/topics/tuned/delete-records").body)[0], ["0", "4", "10"]);
    let consumed = rill(addr, &["consume", "tuned", "--partition", "0", "--from-beginning", "--max-messages", "1"]);
    assert_eq!(consumed.ok().trim(), "record-4", "the earliest record now");
    let past = post(admin, "/topics/tuned/delete-records", &format!("csrf={token}&partition=0&offset=99&confirm=yes"));
    assert!(past.status == 400 && past.body.contains("99"), "{past:?}");
    let missing = post(admin, "/topics/tuned/delete-records", &format!("csrf={token}&partition=7"));
    assert!(missing.status == 404 && missing.body.contains("0 to 3"), "{missing:?}");
    let negative = post(admin, "/topics/tuned/delete-records", &format!("csrf={token}&offset=-1"));
    assert_eq!(negative.status, 400, "{negative:?}");
    let all = post(admin, "/topics/tuned/delete-records", &format!("csrf={token}&confirm=yes"));
    assert_eq!(table_rows(&all.body, "deleted").len(), 4, "every partition: {all:?}");
    assert_eq!(form_rows(&get(admin, "/topics/tuned/delete-records").body)[0], ["0", "10", "10"]);

    // A group without members goes with its offsets; one with a member is refused.
    rill(addr, &["group", "reset-offsets", "readers", "--topic", "tuned", "--to-earliest"]).ok();
    let asked = post(admin, "/groups/readers/delete", &format!("csrf={token}"));
    assert!(asked.body.contains("Yes, delete it"), "{asked:?}");
    let deleted = post(admin, "/groups/readers/delete", &format!("csrf={token}&confirm=yes"));
    assert!(deleted.status == 200 && deleted.body.contains("(4 committed offset(s) forgotten)"), "{deleted:?}");
    rill(addr, &["group", "describe", "readers"]).fails(1, "readers");
    let _member = common::Running::spawn(addr, &["consume", "tuned", "--group", "live", "--follow"]);
    wait_for_page(admin, "/groups/live", "a member", |body| body.contains("<b>1</b>members"));
    let busy = post(admin, "/groups/live/delete", &format!("csrf={token}&confirm=yes"));
    assert!(busy.status == 409 && busy.body.contains("member"), "{busy:?}");
}

#[test]
fn the_clusters_topic_defaults_change_from_the_console_after_a_confirmation() {
    let broker = broker("on");
    let (admin, addr) = (&broker.admin, &broker.addr);
    rill(addr, &["topic", "create", "follows"]).ok();
    rill(addr, &["topic", "create", "owns", "--config", "retention.ms=1000"]).ok();
    let default_row = |key: &str| {
        let rows = table_rows(&get(admin, "/topic-defaults").body, "defaults");
        let row = rows.iter().find(|row| row[0] == key).unwrap_or_else(|| panic!("no {key} in {rows:?}"));
        (row[1].clone(), row[2].clone())
    };
    assert_eq!(default_row("log.retention.ms"), ("604800000".into(), "broker".into()));
    assert!(get(admin, "/topics").body.contains("<a href=\"/topic-defaults\">Change them</a>"), "linked");
    let token = csrf_token(admin, "/topic-defaults");

    let asked = post(admin, "/topic-defaults", &format!("csrf={token}&set.log.retention.ms=3600000"));
    assert!(asked.status == 200 && asked.body.contains("1 topic(s) take the new values now"), "{asked:?}");
    assert_eq!(table_rows(&asked.body, "changes"), [["log.retention.ms", "604800000", "3600000"]]);
    assert_eq!(default_row("log.retention.ms").1, "broker", "not yet");
    let changed = post(admin, "/topic-defaults", &format!("csrf={token}&set.log.retention.ms=3600000&confirm=yes"));
    assert!(changed.status == 200 && changed.body.contains("1 topic(s) took the new values"), "{changed:?}");
    assert_eq!(default_row("log.retention.ms"), ("3600000".into(), "cluster".into()));
    let follows = get(admin, "/topics/follows/settings").body;
    assert_eq!(setting(&follows, "retention.ms"), ("3600000".into(), "cluster default".into()));
    assert_eq!(
        setting(&get(admin, "/topics/owns/settings").body, "retention.ms"),
        ("1000".into(), "this topic".into())
    );
    let shown = rill(addr, &["topic", "defaults"]);
    assert!(shown.ok().contains("3600000"), "the API sees it: {}", shown.ok());

    // Refused as the API refuses (naming the broker key), and keys that are no topic default.
    let bad = post(admin, "/topic-defaults", &format!("csrf={token}&set.log.retention.ms=soon&confirm=yes"));
    assert!(bad.status == 400 && bad.body.contains("log.retention.ms") && bad.body.contains("soon"), "{bad:?}");
    let unknown = post(admin, "/topic-defaults", &format!("csrf={token}&set.num.partitions=3"));
    assert!(unknown.status == 400 && unknown.body.contains("num.partitions"), "{unknown:?}");
    assert_eq!(default_row("log.retention.ms").0, "3600000", "nothing changed by a refusal");

    let reset = post(admin, "/topic-defaults", &format!("csrf={token}&reset.log.retention.ms=yes&confirm=yes"));
    assert_eq!(reset.status, 200, "{reset:?}");
    assert_eq!(default_row("log.retention.ms"), ("604800000".into(), "broker".into()));
    assert_eq!(setting(&get(admin, "/topics/follows/settings").body, "retention.ms").0, "604800000");
}

#[test]
fn users_and_acls_are_created_and_removed_from_the_console() {
    let broker = broker("on");
    let (admin, addr) = (&broker.admin, &broker.addr);
    assert!(get(admin, "/users").body.contains("0 users."), "none yet");
    let token = csrf_token(admin, "/users");

    let differ = post(admin, "/users", &format!("csrf={token}&name=bob&password=pencil-123&again=pencil-12"));
    assert!(differ.status == 400 && differ.body.contains("The two passwords differ"), "{differ:?}");
    let made = post(admin, "/users", &format!("csrf={token}&name=bob&password=pencil+123%21&again=pencil+123%21"));
    assert!(made.status == 200 && made.body.contains("User:bob</b> created"), "{made:?}");
    assert!(!made.body.contains("pencil"), "the password is written into no page: {}", made.body);
    assert!(rill(addr, &["user", "list"]).ok().contains("bob"), "the API sees bob");
    let rows = table_rows(&get(admin, "/users").body, "users");
    assert_eq!(rows[0][..3], ["User:bob", "SCRAM-SHA-256, SCRAM-SHA-512", "0"], "{rows:?}");
    let twice = post(admin, "/users", &format!("csrf={token}&name=bob&password=x&again=x"));
    assert!(twice.status == 409 && twice.body.contains("bob"), "{twice:?}");
    let bad = post(admin, "/users", &format!("csrf={token}&name=bad+name&password=x&again=x"));
    assert!(bad.status == 400 && bad.body.contains("bad name"), "{bad:?}");

    // A binding: checked before the confirmation, added after it, removed after another.
    assert!(get(admin, "/acls").body.contains("0 bindings."), "none yet");
    let binding =
        "principal=User%3Abob&permission=allow&operation=read&resource_type=topic&pattern_type=prefixed&name=orders-";
    let asked = post(admin, "/acls", &format!("csrf={token}&{binding}"));
    let wording = "allow User:bob to read every topic whose name starts with &quot;orders-&quot;?";
    assert!(asked.status == 200 && asked.body.contains(wording), "{asked:?}");
    assert!(get(admin, "/acls").body.contains("0 bindings."), "not yet");
    let added = post(admin, "/acls", &format!("csrf={token}&{binding}&host=*&confirm=yes"));
    assert!(added.status == 200 && added.body.contains("Binding added"), "{added:?}");
    let listed = rill(addr, &["acl", "list"]);
    assert!(listed.ok().contains("User:bob") && listed.ok().contains("orders-"), "the API sees it: {}", listed.ok());
    let rows = table_rows(&get(admin, "/acls?q=BOB").body, "acls");
    assert_eq!(rows[0][..7], ["User:bob", "allow", "read", "topic", "prefixed", "orders-", "*"], "{rows:?}");
    assert!(table_rows(&get(admin, "/acls?q=carol").body, "acls").is_empty(), "the search keeps none");
    let odd = post(admin, "/acls", &format!("csrf={token}&{}", binding.replace("read", "fly")));
    assert!(odd.status == 400 && odd.body.contains("fly") && odd.body.contains("describe_configs"), "{odd:?}");
    let nameless = post(admin, "/acls", &format!("csrf={token}&{}&confirm=yes", binding.replace("User%3Abob", "bob")));
    assert_eq!(nameless.status, 400, "a principal is User:NAME: {nameless:?}");

    let removing = post(admin, "/acls/remove", &format!("csrf={token}&{binding}&host=*"));
    assert!(removing.body.contains("Yes, remove it") && removing.body.contains(wording), "{removing:?}");
    let removed = post(admin, "/acls/remove", &format!("csrf={token}&{binding}&host=*&confirm=yes"));
    assert!(removed.status == 200 && removed.body.contains("Binding removed"), "{removed:?}");
    assert!(!rill(addr, &["acl", "list"]).ok().contains("User:bob"), "gone");
    let again = post(admin, "/acls/remove", &format!("csrf={token}&{binding}&host=*&confirm=yes"));
    assert_eq!(again.status, 404, "{again:?}");

    // A token for bob, shown once after a confirmation, on a page no cache keeps.
    let asked = post(admin, "/users/bob/token", &format!("csrf={token}"));
    assert!(asked.body.contains("Yes, issue it") && !asked.body.contains("rill_"), "{asked:?}");
    let issued = post(admin, "/users/bob/token", &format!("csrf={token}&confirm=yes"));
    assert!(issued.head.contains("cache-control: no-store"), "{issued:?}");
    let at = issued.body.find("<code id=\"token\">").expect("the token shown") + "<code id=\"token\">".len();
    let bearer = &issued.body[at..at + issued.body[at..].find('<').expect("its end")];
    assert!(bearer.starts_with("rill_"), "{bearer}");
    assert_eq!(table_rows(&get(admin, "/users").body, "users")[0][2], "1", "bob holds one token");
    let unknown = post(admin, "/users/nobody/token", &format!("csrf={token}&confirm=yes"));
    assert_eq!(unknown.status, 404, "{unknown:?}");

    let asked = post(admin, "/users/bob/delete", &format!("csrf={token}"));
    assert!(asked.body.contains("Yes, delete it"), "{asked:?}");
    let deleted = post(admin, "/users/bob/delete", &format!("csrf={token}&confirm=yes"));
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert!(!rill(addr, &["user", "list"]).ok().contains("bob"), "bob is gone");
    let unknown = post(admin, "/users/bob/delete", &format!("csrf={token}&confirm=yes"));
    assert_eq!(unknown.status, 404, "{unknown:?}");
}

#[test]
fn client_quotas_are_set_and_removed_from_the_console() {
    let broker = broker("on");
    let (admin, addr) = (&broker.admin, &broker.addr);
    assert!(get(admin, "/quotas").body.contains("0 entities with a quota."), "none yet");
    let token = csrf_token(admin, "/quotas");
    let asked = post(admin, "/quotas", &format!("csrf={token}&user=alice&producer_byte_rate=1048576"));
    assert!(asked.status == 200 && asked.body.contains("<b>user alice</b>"), "{asked:?}");
    assert!(asked.body.contains("producer_byte_rate: 1048576"), "{asked:?}");
    assert!(get(admin, "/quotas").body.contains("0 entities with a quota."), "not yet");
    let set = post(admin, "/quotas", &format!("csrf={token}&user=alice&producer_byte_rate=1048576&confirm=yes"));
    assert!(set.body.contains("user alice holds now: producer_byte_rate=1048576"), "{set:?}");
    let listed = rill(addr, &["quota", "list"]);
    assert!(listed.ok().contains("alice") && listed.ok().contains("1048576"), "the API sees it: {}", listed.ok());
    let form = format!("csrf={token}&default_client_id=yes&consumer_byte_rate=2048&confirm=yes");
    assert_eq!(post(admin, "/quotas", &form).status, 200);
    let rows = table_rows(&get(admin, "/quotas").body, "quotas");
    assert!(
        rows.contains(&vec!["the default client id".into(), "".into(), "2048".into(), "".into(), "".into(), "".into()]),
        "{rows:?}"
    );

    // Refused as the API refuses, saying what is allowed; and the form's own mistakes.
    let both =
        post(admin, "/quotas", &format!("csrf={token}&user=a&default_user=yes&producer_byte_rate=1&confirm=yes"));
    assert!(both.status == 400 && both.body.contains("a name or the default, not both"), "{both:?}");
    let ip = post(admin, "/quotas", &format!("csrf={token}&ip=10.0.0.1&producer_byte_rate=5&confirm=yes"));
    assert_eq!(ip.status, 400, "an IP's quota is its connections: {ip:?}");
    let fraction = post(admin, "/quotas", &format!("csrf={token}&user=alice&producer_byte_rate=1.5"));
    assert!(fraction.status == 400 && fraction.body.contains("1.5"), "{fraction:?}");
    let nothing = post(admin, "/quotas", &format!("csrf={token}&user=alice"));
    assert!(nothing.status == 400 && nothing.body.contains("nothing to change"), "{nothing:?}");

    let removed = post(admin, "/quotas", &format!("csrf={token}&user=alice&remove_producer_byte_rate=yes&confirm=yes"));
    assert!(removed.body.contains("user alice holds no quota now."), "{removed:?}");
    assert!(get(admin, "/quotas").body.contains("1 entities with a quota."), "the default client id's is left");
}

#[test]
fn a_write_without_the_token_or_from_another_origin_is_refused() {
    let broker = broker("on");
    let admin = &broker.admin;
    let token = csrf_token(admin, "/create-topic");
    let form = "name=forged&partitions=1&confirm=yes";
    let no_token = post(admin, "/create-topic", form);
    assert!(no_token.status == 403 && no_token.body.contains("token"), "{no_token:?}");
    let wrong_token = post(admin, "/create-topic", &format!("csrf=0000&{form}"));
    assert_eq!(wrong_token.status, 403);
    // DNS rebinding: a page of evil.example, whose name its owner points at this machine, is the console's own
    // origin to the browser. Requests addressed to that name are refused, reads and posts alike.
    let evil = "evil.example:9644";
    let read = request_as(admin, evil, "GET", "/topics", &[], "");
    assert!(read.status == 403 && read.body.contains("console_hosts"), "{read:?}");
    let headers = [
        "Content-Type: application/x-www-form-urlencoded".to_string(),
        format!("Origin: http://{evil}"),
        "Sec-Fetch-Site: same-origin".to_string(),
    ];
    let rebound = request_as(admin, evil, "POST", "/create-topic", &headers, &format!("csrf={token}&{form}"));
    assert_eq!(rebound.status, 403, "{rebound:?}");
    // Prometheus scrapes by whatever name it knows the broker by: /metrics is not the console's.
    assert_eq!(request_as(admin, "broker1.internal:9644", "GET", "/metrics", &[], "").status, 200);
    let cross_site = request(
        admin,
        "POST",
        "/create-topic",
        &["Content-Type: application/x-www-form-urlencoded".to_string(), "Origin: http://evil.example".to_string()],
        &format!("csrf={token}&{form}"),
    );
    assert!(cross_site.status == 403 && cross_site.body.contains("Origin"), "{cross_site:?}");
    let not_a_form = request(admin, "POST", "/create-topic", &["Content-Type: text/plain".to_string()], form);
    assert_eq!(not_a_form.status, 415);
    assert!(!rill(&broker.addr, &["topic", "list"]).ok().contains("forged"), "no refused write took effect");
}

#[test]
fn a_read_only_console_shows_everything_and_changes_nothing() {
    let broker = broker("read-only");
    let admin = &broker.admin;
    rill(&broker.addr, &["topic", "create", "kept"]).ok();
    let topic = get(admin, "/topics/kept");
    assert_eq!(topic.status, 200);
    assert!(!topic.body.contains("<form") && !topic.body.contains("Delete topic"), "{}", topic.body);
    let settings = get(admin, "/topics/kept/settings");
    assert!(settings.status == 200 && settings.body.contains("retention.ms"), "{settings:?}");
    assert!(!settings.body.contains("<form") && !settings.body.contains("<input"), "{}", settings.body);
    for path in ["/users", "/acls", "/quotas", "/schemas", "/groups/g/settings"] {
        let list = get(admin, path);
        assert!(list.status == 200 && !list.body.contains("<form method=\"post\""), "{path}: {list:?}");
    }
    let defaults = get(admin, "/topic-defaults");
    assert!(defaults.status == 200 && !defaults.body.contains("<input"), "{defaults:?}");
    assert_eq!(post(admin, "/topic-defaults", "csrf=anything&set.log.retention.ms=1&confirm=yes").status, 403);
    for path in ["/topics/kept/partitions", "/topics/kept/delete-records", "/groups/g/delete"] {
        assert_eq!(get(admin, path).status, 403, "{path}");
    }
    for path in ["/topics/kept/settings", "/topics/kept/partitions", "/topics/kept/delete-records"] {
        assert_eq!(post(admin, path, "csrf=anything&confirm=yes").status, 403, "{path}");
    }
    assert!(!get(admin, "/").body.contains("Create topic"), "no create link");
    assert_eq!(get(admin, "/topics/kept/delete").status, 403);
    assert_eq!(get(admin, "/create-topic").status, 403);
    let refused = post(admin, "/topics/kept/delete", "csrf=anything&confirm=yes");
    assert!(refused.status == 403 && refused.body.contains("read-only"), "{refused:?}");
    rill(&broker.addr, &["topic", "describe", "kept"]).ok();
}

#[test]
fn with_the_console_off_only_metrics_health_and_ready_are_served() {
    let broker = broker("off");
    assert_eq!(get(&broker.admin, "/").status, 404);
    assert_eq!(get(&broker.admin, "/topics").status, 404);
    assert_eq!(get(&broker.admin, "/metrics").status, 200);
    assert_eq!(get(&broker.admin, "/health").status, 200);
}

/// Short sessions and lag limit, so a killed node is fenced and leaves the ISR within the test's deadline.
const FAST_CLUSTER: &str =
    "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\nreplica_lag_time_max_ms = 1500\n";

/// The cells of the table `id`'s rows (header row left out), as text with tags removed.
fn table_rows(body: &str, id: &str) -> Vec<Vec<String>> {
    let Some(start) = body.find(&format!("<table id=\"{id}\">")) else { return Vec::new() };
    let table = &body[start..start + body[start..].find("</table>").unwrap_or(body.len() - start)];
    table
        .split("<tr>")
        .skip(2)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let inner = cell.split_once('>').map_or("", |(_, rest)| rest);
                    let inner = inner.split("</td>").next().unwrap_or("");
                    // Links inside a cell: keep their text.
                    let mut text = String::new();
                    let mut in_tag = false;
                    for c in inner.chars() {
                        match c {
                            '<' => in_tag = true,
                            '>' => in_tag = false,
                            c if !in_tag => text.push(c),
                            _ => {}
                        }
                    }
                    text
                })
                .collect()
        })
        .collect()
}

#[track_caller]
fn wait_for_page(admin: &str, path: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let answer = get(admin, path);
        if answer.status == 200 && done(&answer.body) {
            return answer.body;
        }
        assert!(std::time::Instant::now() < deadline, "no {what} on {path} within {DEADLINE:?}: {}", answer.body);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn on_a_cluster_every_node_shows_the_nodes_the_controller_and_each_partitions_replicas() {
    let mut cluster = Cluster::start(FAST_CLUSTER);
    let all = cluster.all();
    let create = ["topic", "create", "orders", "--partitions", "2", "--replication-factor", "3"];
    let deadline = std::time::Instant::now() + DEADLINE;
    while !rill(&all, &create).status.success() {
        assert!(std::time::Instant::now() < deadline, "the cluster never took the topic");
        std::thread::sleep(Duration::from_millis(100));
    }
    let in_sync = |body: &str| {
        let rows = table_rows(body, "partitions");
        rows.len() == 2 && rows.iter().all(|row| row.get(10).is_some_and(|isr| isr.split(", ").count() == 3))
    };
    for node_id in 1..=3u64 {
        let admin = cluster.admin(node_id).to_owned();
        let overview = wait_for_page(&admin, "/", "three alive nodes and a controller leader", |body| {
            let rows = table_rows(body, "nodes");
            rows.len() == 3 && rows.iter().all(|row| row[2] == "alive") && body.contains("Controller leader: node ")
        });
        let nodes = table_rows(&overview, "nodes");
        let addresses: Vec<&str> = nodes.iter().map(|row| row[1].as_str()).collect();
        assert_eq!(addresses, cluster.addrs.iter().map(String::as_str).collect::<Vec<_>>(), "node {node_id}");
        assert_eq!(nodes.iter().filter(|row| row[3] == "controller leader").count(), 1, "one leader: {nodes:?}");
        assert!(overview.contains(&format!("served by node {node_id}.")), "{overview}");

        let topic = wait_for_page(&admin, "/topics/orders", "every replica in sync", in_sync);
        for row in table_rows(&topic, "partitions") {
            let leader: u64 = row[8].parse().unwrap_or_else(|_| panic!("a leader in {row:?}"));
            assert!((1..=3).contains(&leader), "{row:?}");
            let mut replicas: Vec<&str> = row[9].split(", ").collect();
            replicas.sort_unstable();
            assert_eq!(replicas, ["1", "2", "3"], "{row:?}");
        }
    }

    // The replication throttle, set through any node, is shown by every node's overview.
    assert!(get(cluster.admin(2), "/").body.contains("Replication throttle for replica moves: none"));
    rill(&all, &["cluster", "throttle", "set", "1M"]).ok();
    for node_id in 1..=3u64 {
        let admin = cluster.admin(node_id).to_owned();
        wait_for_page(&admin, "/", "the throttle", |body| {
            body.contains(
                "Partitions moving to new replicas: 0. Replication throttle for replica moves: 1048576 bytes/s",
            )
        });
    }
    rill(&all, &["cluster", "throttle", "clear"]).ok();

    // Node 3 dies: the others show it fenced and out of every ISR.
    if let Some(node) = cluster.nodes[2].take() {
        node.kill();
    }
    let admin = cluster.admin(1).to_owned();
    wait_for_page(&admin, "/", "node 3 fenced", |body| {
        table_rows(body, "nodes").iter().any(|row| row[0] == "3" && row[2] == "fenced")
    });
    let topic = wait_for_page(&admin, "/topics/orders", "node 3 out of the ISR", |body| {
        let rows = table_rows(body, "partitions");
        rows.len() == 2 && rows.iter().all(|row| !row[10].split(", ").any(|id| id == "3") && row[8] != "3")
    });
    assert!(table_rows(&topic, "partitions").iter().all(|row| row[9].split(", ").count() == 3), "still 3 replicas");
}

#[test]
fn a_clusters_console_starts_and_cancels_a_move_sets_the_throttle_and_elects_leaders() {
    let cluster = Cluster::start(FAST_CLUSTER);
    let create = ["topic", "create", "moves", "--partitions", "1", "--replication-factor", "1"];
    common::eventually("moves created", || rill(&cluster.all(), &create).status.success().then_some(()));
    let leader = common::eventually("moves led", || {
        common::cluster::wait_for_topic(cluster.addr(1), "moves", 1, "moves described", |_| true).remove(0).leader
    });
    let other = (1..=3).find(|id| *id != leader).expect("another node");
    // About 200 KB in batches of about 50 KB (one `rill produce` each): the throttle lets a read end one batch
    // past its allowance, so at the least rate the second batch waits most of a minute, and the move is still
    // copying when cancelled.
    for batch in 0..4 {
        let records: String = (0..50).map(|i| format!("{batch}-{i:02}-{}\n", "x".repeat(995))).collect();
        let produce = ["produce", "moves", "--partition", "0", "--acks", "all"];
        common::rill_with_stdin(cluster.addr(leader), &produce, records.as_bytes()).ok();
    }
    let (admin_2, admin_3) = (cluster.admin(2).to_owned(), cluster.admin(3).to_owned());
    // Each process has its own token while authentication is off.
    let (token, token_3) = (csrf_token(&admin_2, "/cluster"), csrf_token(&admin_3, "/cluster"));

    // The throttle, set on node 2's console, in force on every node's.
    let low = post(&admin_2, "/cluster/throttle", &format!("csrf={token}&bytes_per_sec=10&confirm=yes"));
    assert!(low.status == 400 && low.body.contains("1024"), "{low:?}");
    let asked = post(&admin_2, "/cluster/throttle", &format!("csrf={token}&bytes_per_sec=1024"));
    assert!(asked.body.contains("Throttle replica moves to 1024 bytes/s per pair of nodes?"), "{asked:?}");
    let set = post(&admin_2, "/cluster/throttle", &format!("csrf={token}&bytes_per_sec=1024&confirm=yes"));
    assert_eq!(set.status, 200, "{set:?}");
    for node in 1..=3u64 {
        wait_for_page(cluster.admin(node), "/cluster", "the throttle", |body| body.contains("1024 bytes/s per pair"));
    }

    // A move, started on node 2's console (checked there first, then answered once recorded), cancelled on node
    // 3's.
    let move_form = |replicas: &str| format!("csrf={token}&topic=moves&partition=0&replicas={replicas}");
    let target = format!("{leader}%2C{other}");
    for (replicas, status, says) in [
        ("a%2Cb".to_owned(), 400, "is not a list of node ids"),
        (format!("{leader}%2C9"), 400, "node 9 is not a member of the cluster"),
        (format!("{leader}%2C{leader}"), 400, "appears more than once"),
    ] {
        let refused = post(&admin_2, "/cluster/move", &move_form(&replicas));
        assert!(refused.status == status && refused.body.contains(says), "{replicas}: {refused:?}");
    }
    let missing = post(&admin_2, "/cluster/move", &format!("csrf={token}&topic=moves&partition=5&replicas={target}"));
    assert!(missing.status == 404 && missing.body.contains("has 1 partition(s), not 5"), "{missing:?}");
    let asked = post(&admin_2, "/cluster/move", &move_form(&target));
    assert!(
        asked.body.contains(&format!("replicas {leader} → {leader}, {other}."))
            && asked.body.contains(&format!("Copying to: {other}"))
            && asked.body.contains("throttled to 1024 bytes/s"),
        "{asked:?}"
    );
    assert!(get(&admin_2, "/cluster").body.contains("0 partition(s) moving"), "nothing moves before yes");
    let started = post(&admin_2, "/cluster/move", &format!("{}&confirm=yes", move_form(&target)));
    assert!(
        started.status == 200 && started.body.contains(&format!("is moving from {leader} onto {leader}, {other}")),
        "{started:?}"
    );
    let again = post(&admin_2, "/cluster/move", &format!("{}&confirm=yes", move_form(&target)));
    assert!(again.status == 409 && again.body.contains("already"), "{again:?}");
    wait_for_page(&admin_3, "/cluster", "the move on node 3", |body| body.contains("1 partition(s) moving"));
    let described = rill(cluster.addr(1), &["cluster", "describe"]);
    let line = format!("moving:             moves/0 from {leader} onto {leader},{other}");
    assert!(described.ok().contains(&line), "{described:?}");
    let reassigning = |node: u64| {
        common::cluster::scrape(cluster.admin(node)).and_then(|m| m.get("rill_reassigning_partitions").copied())
    };
    assert_eq!(reassigning(leader), Some(1.0), "the leader counts the move");
    assert_eq!(reassigning(other), Some(0.0), "a node leading nothing that moves");
    let page = get(&admin_3, "/cluster").body;
    let moving = table_rows(&page, "moving");
    assert_eq!(
        moving[0][..5],
        [
            "moves",
            "0",
            format!("{leader}, {other}").as_str(),
            format!("{leader}, {other}").as_str(),
            other.to_string().as_str()
        ],
        "{moving:?}"
    );
    let form = format!("csrf={token_3}&topic=moves&partition=0");
    let asked = post(&admin_3, "/cluster/cancel-move", &form);
    assert!(asked.body.contains("Yes, cancel it"), "{asked:?}");
    let cancelled = post(&admin_3, "/cluster/cancel-move", &format!("{form}&confirm=yes"));
    assert!(
        cancelled.status == 200 && cancelled.body.contains(&format!("its replicas are {leader}.")),
        "{cancelled:?}"
    );
    wait_for_page(&admin_2, "/cluster", "no move", |body| body.contains("0 partition(s) moving"));
    common::eventually("the leader counts no move", || (reassigning(leader) == Some(0.0)).then_some(()));
    let again = post(&admin_3, "/cluster/cancel-move", &format!("{form}&confirm=yes"));
    assert!(again.status == 409 && again.body.contains("not being moved"), "{again:?}");

    let cleared = post(&admin_2, "/cluster/throttle", &format!("csrf={token}&bytes_per_sec=&confirm=yes"));
    assert_eq!(cleared.status, 200, "{cleared:?}");
    wait_for_page(&admin_3, "/cluster", "no throttle", |body| body.contains("None: moves copy at full speed."));
    let elected = post(&admin_3, "/cluster/elect", &format!("csrf={token_3}&topic=moves&confirm=yes"));
    assert!(elected.status == 200 && elected.body.contains("of topic moves now led by their preferred"), "{elected:?}");
    let unknown = post(&admin_3, "/cluster/elect", &format!("csrf={token_3}&topic=nothing&confirm=yes"));
    assert_eq!(unknown.status, 404, "{unknown:?}");

    // A rebalance, every move started at once: partitions gathered on one node, spread again from node 3's
    // console, then the same from `rill cluster rebalance --no-wait`.
    let create = ["topic", "create", "lopsided", "--partitions", "4", "--replication-factor", "1"];
    common::eventually("lopsided created", || rill(&cluster.all(), &create).status.success().then_some(()));
    let gather = || {
        let rows = common::cluster::wait_for_topic(cluster.addr(1), "lopsided", 4, "lopsided led", |rows| {
            rows.iter().all(|row| row.leader.is_some())
        });
        for (partition, _) in rows.iter().enumerate().filter(|(_, row)| row.replicas != [leader]) {
            let (partition, onto) = (partition.to_string(), leader.to_string());
            let args = ["topic", "reassign", "lopsided", "--partition", &partition, "--replicas", &onto];
            rill(cluster.addr(1), &args).ok();
        }
    };
    let balanced = |body: &str| {
        let counts: Vec<usize> = table_rows(body, "balance").iter().filter_map(|row| row[1].parse().ok()).collect();
        counts.len() == 3 && counts.iter().max().zip(counts.iter().min()).is_some_and(|(max, min)| max - min <= 1)
    };
    gather();
    let page = wait_for_page(&admin_3, "/cluster", "an imbalance", |body| body.contains("A rebalance would move"));
    assert!(!balanced(&page), "{page}");
    let asked = post(&admin_3, "/cluster/rebalance", &format!("csrf={token_3}"));
    let plan = table_rows(&asked.body, "plan");
    assert!(asked.body.contains("Yes, start them") && !plan.is_empty(), "{asked:?}");
    assert!(plan.iter().all(|row| row[0] == "lopsided" && row[2] == leader.to_string()), "{plan:?}");
    let started = post(&admin_3, "/cluster/rebalance", &format!("csrf={token_3}&confirm=yes"));
    assert!(
        started.status == 200 && started.body.contains(&format!("{} partition(s) moving.", plan.len())),
        "{started:?}"
    );
    let page = wait_for_page(&admin_2, "/cluster", "balanced", |body| {
        body.contains("0 partition(s) moving") && body.contains("Balanced:")
    });
    assert!(balanced(&page), "{page}");
    let nothing = post(&admin_2, "/cluster/rebalance", &format!("csrf={token}"));
    assert!(nothing.body.contains("nothing to move"), "{nothing:?}");

    gather();
    let started = rill(cluster.addr(2), &["cluster", "rebalance", "--no-wait"]);
    assert!(
        started.ok().contains("partition(s) started moving") && started.ok().contains("moving lopsided/"),
        "{started:?}"
    );
    let page = wait_for_page(cluster.admin(1), "/cluster", "balanced again", |body| {
        body.contains("0 partition(s) moving") && body.contains("Balanced:")
    });
    assert!(balanced(&page), "{page}");
}

#[test]
fn a_node_started_with_join_is_added_from_a_clusters_console() {
    let cluster = Cluster::start(FAST_CLUSTER);
    let admin = cluster.admin(2).to_owned();
    let token = csrf_token(&admin, "/cluster");
    for (fields, says) in [
        ("node_id=x&address=127.0.0.1:1", "is not a node id"),
        ("node_id=4", "address is missing"),
        ("address=127.0.0.1:1", "node_id is missing"),
    ] {
        let refused = post(&admin, "/cluster/add-node", &format!("csrf={token}&{fields}"));
        assert!(refused.status == 400 && refused.body.contains(says), "{fields}: {refused:?}");
    }
    let joining =
        common::cluster::start_joining_node(4, &cluster.dir.path().join("d4"), cluster.addr(1), &cluster.config());
    let fields = format!("csrf={token}&node_id=4&address={}", joining.addr);
    let asked = post(&admin, "/cluster/add-node", &fields);
    assert!(asked.body.contains(&format!("Add node 4 at {} to the cluster?", joining.addr)), "{asked:?}");
    let added = post(&admin, "/cluster/add-node", &format!("{fields}&confirm=yes"));
    assert!(added.status == 200 && added.body.contains("Node 4 added"), "{added:?}");
    for node in [1, 3] {
        wait_for_page(cluster.admin(node), "/", "node 4 listed", |body| {
            table_rows(body, "nodes").iter().any(|row| row[0] == "4")
        });
    }
    let same = post(&admin, "/cluster/add-node", &format!("{fields}&confirm=yes"));
    assert!(same.status == 200 && same.body.contains("Node 4 added"), "the same node again changes nothing: {same:?}");
    let other = post(&admin, "/cluster/add-node", &format!("csrf={token}&node_id=4&address=127.0.0.1:1&confirm=yes"));
    assert!(other.status == 409 && other.body.contains("node 4 is already a member"), "an id in use: {other:?}");
}

/// Produces `records` (key, value, timestamp in ms) to partition 0 of `topic` over gRPC, as a client whose
/// values need not be text does.
fn produce_records(broker: &str, topic: &str, records: Vec<(&str, Vec<u8>, i64)>) {
    use rill_protocol::v1;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{broker}")).expect("endpoint");
        let channel = tokio::time::timeout(DEADLINE, endpoint.connect()).await.expect("in time").expect("connect");
        let records = records
            .into_iter()
            .map(|(key, value, timestamp_ms)| v1::Record {
                key: Some(key.as_bytes().to_vec().into()),
                value: Some(value.into()),
                headers: Vec::new(),
                timestamp_ms,
            })
            .collect();
        let request = v1::ProduceRequest {
            topic: topic.into(),
            partition: Some(0),
            records: Some(v1::produce_request::Records::RecordList(v1::RecordList { records })),
            acks: v1::Acks::Unspecified as i32,
        };
        let mut client = v1::records_client::RecordsClient::new(channel);
        tokio::time::timeout(DEADLINE, client.produce(request)).await.expect("in time").expect("produced");
    });
}

#[test]
fn the_message_browser_starts_at_a_time_shows_binary_as_hex_or_base64_and_filters_by_substring() {
    let broker = broker("on");
    let admin = &broker.admin;
    rill(&broker.addr, &["topic", "create", "events", "--partitions", "1"]).ok();
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis();
    let minute_ago = i64::try_from(now_ms).expect("ms fit i64") - 60_000;
    produce_records(
        &broker.addr,
        "events",
        vec![
            ("raw", vec![0xff, 0x00, 0xfe, 0x41], minute_ago - 120_000),
            ("k2", b"a needle in a haystack".to_vec(), minute_ago - 60_000),
            ("k3", b"plain".to_vec(), minute_ago),
        ],
    );

    let all = get(admin, "/topics/events/messages?from=earliest");
    assert_eq!(all.status, 200, "{all:?}");
    assert!(all.body.contains("<pre class=\"binary\" title=\"hex\">ff00fe41</pre>"), "hex by default: {}", all.body);
    let base64 = get(admin, "/topics/events/messages?from=earliest&encoding=base64").body;
    assert!(base64.contains("<pre class=\"binary\" title=\"base64\">/wD+QQ==</pre>"), "{base64}");
    let bad = get(admin, "/topics/events/messages?from=earliest&encoding=octal");
    assert!(bad.status == 400 && bad.body.contains("is not hex or base64"), "{bad:?}");

    // From the second record's time: the first, a minute older, is not shown.
    let path = format!("/topics/events/messages?from=timestamp&timestamp={}", minute_ago - 60_000);
    let from_time = get(admin, &path).body;
    assert!(from_time.contains("Showing 2 record(s) from offset 1"), "{from_time}");
    assert!(from_time.contains("needle") && !from_time.contains("ff00fe41"), "{from_time}");

    let filtered = get(admin, "/topics/events/messages?from=earliest&contains=needle").body;
    assert!(filtered.contains("Showing 1 record(s)") && filtered.contains("a needle in a haystack"), "{filtered}");
    assert!(!filtered.contains("plain") && !filtered.contains("ff00fe41"), "{filtered}");

    let download = get(admin, "/topics/events/messages.json?from=earliest");
    let json: serde_json::Value = serde_json::from_str(&download.body).expect("the download is JSON");
    assert_eq!(json["records"][0]["value"], serde_json::json!({ "base64": "/wD+QQ==" }), "binary in the download");
    assert_eq!(json["records"][0]["timestamp_ms"], minute_ago - 120_000);
}

#[test]
fn a_groups_page_shows_its_members_and_their_assignments() {
    let broker = broker("on");
    let admin = &broker.admin;
    rill(&broker.addr, &["topic", "create", "events", "--partitions", "2"]).ok();
    let _member = common::Running::spawn(&broker.addr, &["consume", "events", "--group", "live", "--follow"]);
    let page = wait_for_page(admin, "/groups/live", "a member with both partitions", |body| {
        body.contains("<b>1</b>members") && body.contains("events [0, 1]")
    });
    assert!(page.contains("<table id=\"members\">"), "{page}");
    let list = wait_for_page(admin, "/groups", "the group listed", |body| body.contains(">live</a>"));
    let row = list.split("<tr>").find(|row| row.contains(">live</a>")).expect("live's row");
    let cells: Vec<&str> = row.split("<td").collect();
    assert_eq!(cells.get(2).copied(), Some(">consumer</td>"), "its kind: {row}");
    assert_eq!(cells.get(4).copied(), Some(" class=\"num\">1</td>"), "one member in the list: {row}");
}

/// The `<meta http-equiv="refresh">` tag a page carries, if any.
fn refresh_tag(body: &str) -> Option<&str> {
    let at = body.find("<meta http-equiv=\"refresh\"")?;
    body[at..].split_inclusive('>').next()
}

#[test]
fn live_pages_refresh_themselves_every_5_s_unless_turned_off_and_pages_with_forms_never_do() {
    let broker = broker("on");
    let admin = &broker.admin;
    rill(&broker.addr, &["topic", "create", "orders", "--partitions", "2"]).ok();
    rill(&broker.addr, &["produce", "orders", "--partition", "0", "--value", "one"]).ok();
    rill(&broker.addr, &["group", "reset-offsets", "billing", "--topic", "orders", "--to-earliest"]).ok();

    for path in ["/", "/topics/orders", "/groups/billing"] {
        let page = get(admin, path);
        assert_eq!(page.status, 200, "{path}: {page:?}");
        assert_eq!(refresh_tag(&page.body), Some("<meta http-equiv=\"refresh\" content=\"5\">"), "{path}");
        assert!(page.head.contains("content-security-policy: default-src 'none'"), "still no script: {}", page.head);
        assert!(page.body.contains("Live: <b>on</b>, every 5 s"), "{path}: {}", page.body);
        let off_link = format!("href=\"{path}?live=0\">off</a>");
        assert!(page.body.contains(&off_link), "{path} offers {off_link}: {}", page.body);

        let off = get(admin, &format!("{path}?live=0"));
        assert_eq!(off.status, 200, "{path}?live=0: {off:?}");
        assert_eq!(refresh_tag(&off.body), None, "{path}?live=0 stays still");
        let on_link = format!("href=\"{path}?live=5\">on</a>");
        assert!(off.body.contains(&on_link) && off.body.contains("<b>off</b>"), "{path}: {}", off.body);

        let slower = get(admin, &format!("{path}?live=30"));
        assert_eq!(refresh_tag(&slower.body), Some("<meta http-equiv=\"refresh\" content=\"30\">"), "{path}?live=30");

        for bad in ["1", "301", "-5", "fast"] {
            let refused = get(admin, &format!("{path}?live={bad}"));
            assert_eq!(refused.status, 400, "{path}?live={bad}: {refused:?}");
            assert!(refused.body.contains("from 2 to 300"), "says what is allowed: {}", refused.body);
            assert_eq!(refresh_tag(&refused.body), None, "an error page does not reload itself");
        }
    }
    // Pages with a form the user fills, lists with a search box, and errors never reload, asked or not.
    for path in [
        "/topics/orders/messages?partition=0&from=earliest",
        "/topics/orders/messages?live=5",
        "/topics/orders/produce",
        "/topics/orders/produce?live=5",
        "/create-topic",
        "/topics/orders/delete",
        "/groups/billing/reset",
        "/topics?q=ord",
        "/groups",
        "/topics/nope",
    ] {
        let page = get(admin, path);
        assert!(page.status == 200 || page.status == 404, "{path}: {page:?}");
        assert_eq!(refresh_tag(&page.body), None, "{path} never reloads itself: {}", page.body);
        assert!(!page.body.contains("id=\"live\""), "{path} offers no live switch");
    }
}

#[test]
fn the_schemas_pages_show_subjects_versions_and_schemas_as_escaped_text() {
    let registry = common::dead_address();
    let broker = AdminBroker::start(&["--schema-registry-listen", &registry]);
    let empty = get(&broker.admin, "/schemas");
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert!(empty.body.contains("No subjects"), "{}", empty.body);
    let register = |subject: &str, schema: &str| {
        let body = serde_json::json!({ "schema": schema }).to_string();
        let headers = ["Content-Type: application/vnd.schemaregistry.v1+json".to_string()];
        let answer = request(&registry, "POST", &format!("/subjects/{subject}/versions"), &headers, &body);
        assert_eq!(answer.status, 200, "{}", answer.body);
    };
    let v1 = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}"#;
    let v2 = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"note","type":"string","default":"<b>hi</b>"}]}"#;
    register("orders-value", v1);
    register("orders-value", v2);
    register("%3Cscript%3E-value", v1);
    let list = get(&broker.admin, "/schemas");
    assert!(list.body.contains("<a href=\"/schemas\">Schemas</a>"), "the navigation links it");
    let rows = table_rows(&list.body, "subjects");
    assert_eq!(
        rows,
        [
            vec!["&lt;script&gt;-value".to_string(), "1".into(), "1".into(), "1".into(), "BACKWARD".into()],
            vec!["orders-value".to_string(), "2".into(), "2".into(), "2".into(), "BACKWARD".into()],
        ],
        "{}",
        list.body
    );
    assert!(!list.body.contains("<script>"), "a subject's name is text");
    let subject = get(&broker.admin, "/schemas/orders-value");
    assert_eq!(subject.status, 200);
    assert_eq!(
        table_rows(&subject.body, "versions"),
        [
            vec!["2".to_string(), "2".into(), "".into()],
            vec!["1".to_string(), "1".into(), "<script>-value v1".replace('<', "&lt;").replace('>', "&gt;")]
        ]
    );
    assert!(subject.body.contains("&lt;b&gt;hi&lt;/b&gt;") && !subject.body.contains("<b>hi"), "the schema is text");
    let first = get(&broker.admin, "/schemas/orders-value?version=1");
    assert!(first.body.contains("<pre id=\"schema\">") && !first.body.contains("note"), "{}", first.body);
    assert_eq!(get(&broker.admin, "/schemas/orders-value?version=7").status, 404);
    assert_eq!(get(&broker.admin, "/schemas/orders-value?version=x").status, 400);
    assert_eq!(get(&broker.admin, "/schemas/nothing-value").status, 404);
    assert!(first.body.contains("<b>AVRO</b>type"), "{}", first.body);

    let headers = ["Content-Type: application/vnd.schemaregistry.v1+json".to_string()];
    let customer = r#"syntax = "proto3"; package crm; message Customer { string name = 1; }"#;
    let body = serde_json::json!({ "schema": customer, "schemaType": "PROTOBUF" }).to_string();
    assert_eq!(request(&registry, "POST", "/subjects/customer/versions", &headers, &body).status, 200);
    let order = r#"syntax = "proto3"; import "c.proto"; message Order { crm.Customer c = 1; }"#;
    let references = [serde_json::json!({"name": "c.proto", "subject": "customer", "version": 1})];
    let body = serde_json::json!({ "schema": order, "schemaType": "PROTOBUF", "references": references });
    assert_eq!(request(&registry, "POST", "/subjects/orders-proto/versions", &headers, &body.to_string()).status, 200);
    let proto = get(&broker.admin, "/schemas/orders-proto");
    assert!(proto.body.contains("<b>PROTOBUF</b>type"), "{}", proto.body);
    assert!(proto.body.contains("c.proto (<a href=\"/schemas/customer?version=1\">customer v1</a>)"), "{}", proto.body);
}

#[test]
fn a_groups_settings_are_changed_from_its_settings_page_after_a_confirmation() {
    let broker = broker("on");
    let admin = &broker.admin;
    let page = get(admin, "/groups/payments/settings");
    let rows = table_rows(&page.body, "group-settings");
    let session = rows.iter().find(|row| row[0] == "consumer.session.timeout.ms").expect("listed").clone();
    assert_eq!(session[2], "broker", "{rows:?}");
    assert!(rows.iter().any(|row| row[0] == "share.auto.offset.reset"), "{rows:?}");
    let token = csrf_token(admin, "/groups/payments/settings");
    let form = |fields: &str| format!("csrf={token}&{fields}");
    for (fields, says) in [
        ("set.consumer.session.timeout.ms=5", "consumer.session.timeout.ms"),
        ("set.num.partitions=3", "is not a setting that can change here"),
        ("set.consumer.session.timeout.ms=", "nothing to change"),
    ] {
        let refused = post(admin, "/groups/payments/settings", &form(fields));
        assert!(refused.status == 400 && refused.body.contains(says), "{fields}: {refused:?}");
    }
    let asked_for = "set.consumer.session.timeout.ms=60000&set.share.auto.offset.reset=earliest";
    let asked = post(admin, "/groups/payments/settings", &form(asked_for));
    let changes = table_rows(&asked.body, "changes");
    assert_eq!(changes[0], ["consumer.session.timeout.ms", session[1].as_str(), "60000"], "{changes:?}");
    assert_eq!(changes[1][2], "earliest", "{changes:?}");
    assert!(!rill(&broker.addr, &["group", "config", "payments"]).ok().contains("60000"), "nothing before yes");
    let changed = post(admin, "/groups/payments/settings", &form(&format!("{asked_for}&confirm=yes")));
    assert!(changed.status == 200 && changed.body.contains("<td>60000</td>"), "{changed:?}");
    assert!(rill(&broker.addr, &["group", "config", "payments"]).ok().contains("60000"));
    let rows = table_rows(&get(admin, "/groups/payments/settings").body, "group-settings");
    let session_now = rows.iter().find(|row| row[0] == "consumer.session.timeout.ms").expect("listed");
    assert_eq!(session_now[1..3], ["60000", "this group"], "{rows:?}");
    let back = post(admin, "/groups/payments/settings", &form("reset.consumer.session.timeout.ms=yes&confirm=yes"));
    assert!(back.body.contains(&format!("<td>{}</td>", session[1])), "back to the broker's: {back:?}");
}

#[test]
fn a_share_groups_start_offsets_are_reset_from_the_groups_reset_page() {
    // The reset page moves a KIP-932 share group's start offsets as it moves a consumer group's commits.
    let broker = broker("on");
    let (addr, admin) = (&broker.addr, &broker.admin);
    rill(addr, &["topic", "create", "jobs"]).ok();
    for value in ["a", "b", "c"] {
        rill(addr, &["produce", "jobs", "--value", value]).ok();
    }
    rill(addr, &["group", "config", "workers", "--config", "share.auto.offset.reset=earliest"]).ok();
    let take = ["consume", "jobs", "--share-group", "workers", "--max-messages", "3"];
    assert_eq!(rill(addr, &take).ok().lines().collect::<Vec<_>>(), ["a", "b", "c"]);
    let page = wait_for_page(admin, "/groups/workers", "the share group past its records", |body| {
        table_rows(body, "lag").iter().any(|row| row.get(3).map(String::as_str) == Some("3"))
    });
    assert!(page.contains("Reset offsets"), "{page}");
    let token = csrf_token(admin, "/groups/workers/reset");
    let asked = post(admin, "/groups/workers/reset", &format!("csrf={token}&topic=jobs&to=earliest"));
    assert!(asked.body.contains("Reset group <b>workers</b> on topic <b>jobs</b>"), "{asked:?}");
    let reset = post(admin, "/groups/workers/reset", &format!("csrf={token}&topic=jobs&to=earliest&confirm=yes"));
    assert_eq!(table_rows(&reset.body, "reset"), [["jobs", "0", "0"]], "{reset:?}");
    assert_eq!(rill(addr, &take).ok().lines().collect::<Vec<_>>(), ["a", "b", "c"], "read again from the start");
}

#[test]
fn client_metrics_subscriptions_are_set_and_removed_from_the_clients_page() {
    let broker = AdminBroker::start(&["--client-metrics", "org.apache.kafka.consumer."]);
    let admin = &broker.admin;
    let page = get(admin, "/clients");
    let own = table_rows(&page.body, "subscriptions");
    assert!(own.len() == 1 && own[0][4] == "the node&#39;s settings" && own[0][5].is_empty(), "no remove: {own:?}");
    assert!(page.body.contains("Ask clients for their metrics"), "{page:?}");
    let token = csrf_token(admin, "/clients");
    let form = |fields: &str| format!("csrf={token}&{fields}");
    for (fields, says) in [
        ("name=producers&metrics=org.apache.kafka.producer.&interval_ms=5", "milliseconds from 100 to 3600000"),
        ("name=producers&metrics=org.apache.kafka.producer.&match=team%3Dx", "selector=regex"),
        ("name=producers", "give at least the metric name prefixes"),
        ("name=&metrics=org.apache.kafka.producer.", "needs a name"),
    ] {
        let refused = post(admin, "/clients/subscriptions", &form(fields));
        assert!(refused.status == 400 && refused.body.contains(says), "{fields}: {refused:?}");
    }
    let fields = "name=producers&metrics=org.apache.kafka.producer.&interval_ms=60000&match=client_id%3Dbilling-.*";
    let asked = post(admin, "/clients/subscriptions", &form(fields));
    assert_eq!(
        table_rows(&asked.body, "changes"),
        [
            vec!["metrics".to_string(), "–".into(), "org.apache.kafka.producer.".into()],
            vec!["interval.ms".to_string(), "–".into(), "60000".into()],
            vec!["match".to_string(), "–".into(), "client_id=billing-.*".into()],
        ],
        "{asked:?}"
    );
    assert!(asked.body.contains("Create subscription <b>producers</b>?"), "{asked:?}");
    let set = post(admin, "/clients/subscriptions", &form(&format!("{fields}&confirm=yes")));
    assert!(set.status == 200 && set.body.contains("Subscription producers set."), "{set:?}");
    let listed = rill(&broker.addr, &["client-metrics", "list"]);
    assert!(listed.ok().contains("producers") && listed.ok().contains("client_id=billing-.*"), "{listed:?}");
    // Set again with the interval alone: the other keys go back to their defaults, as the confirmation says.
    let asked = post(admin, "/clients/subscriptions", &form("name=producers&interval_ms=1000"));
    let rows = table_rows(&asked.body, "changes");
    assert_eq!(rows[0], ["metrics", "org.apache.kafka.producer.", "(none)"], "{rows:?}");
    assert_eq!(rows[1], ["interval.ms", "60000", "1000"], "{rows:?}");

    let own_name = own[0][0].clone();
    let refused = post(admin, "/clients/subscriptions/remove", &form(&format!("name={own_name}&confirm=yes")));
    assert!(refused.status == 409 && refused.body.contains("the node&#39;s own"), "{refused:?}");
    let rows = table_rows(&get(admin, "/clients").body, "subscriptions");
    assert!(rows.len() == 2 && rows[1][0] == "producers" && rows[1][5].contains("Remove…"), "{rows:?}");
    let asked = post(admin, "/clients/subscriptions/remove", &form("name=producers"));
    assert!(asked.body.contains("Remove subscription <b>producers</b>?"), "{asked:?}");
    let removed = post(admin, "/clients/subscriptions/remove", &form("name=producers&confirm=yes"));
    assert!(removed.body.contains("Subscription producers removed."), "{removed:?}");
    assert!(!rill(&broker.addr, &["client-metrics", "list"]).ok().contains("producers"));
    let again = post(admin, "/clients/subscriptions/remove", &form("name=producers&confirm=yes"));
    assert_eq!(again.status, 404, "{again:?}");
}

/// `text` as a form value: everything but unreserved characters percent-encoded.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[test]
fn schemas_are_registered_their_compatibility_set_and_deleted_from_the_console() {
    // Each change is checked with nothing written, confirmed, then made; the registry's API (Confluent's, on
    // its own listener) sees every one.
    let registry = common::dead_address();
    let broker = AdminBroker::start(&["--schema-registry-listen", &registry]);
    let admin = &broker.admin;
    let api = |path: &str| request(&registry, "GET", path, &[], "");
    let token = csrf_token(admin, "/schemas");
    let form = |fields: &[(&str, &str)]| {
        let encoded: Vec<String> = fields.iter().map(|(name, value)| format!("{name}={}", url_encode(value))).collect();
        format!("csrf={token}&{}", encoded.join("&"))
    };
    let v1 = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}"#;
    for (fields, status, says) in [
        (vec![("subject", ""), ("schema", v1)], 422, "Invalid subject"),
        (vec![("subject", "orders-value"), ("type", "XML"), ("schema", v1)], 400, "AVRO, JSON or PROTOBUF"),
        (vec![("subject", "orders-value"), ("schema", " ")], 400, "the schema is empty"),
        (vec![("subject", "orders-value"), ("schema", r#"{"type":"nope"}"#)], 422, "Invalid schema"),
        (
            vec![("subject", "orders-value"), ("schema", v1), ("references", "a.avsc other")],
            400,
            "name subject version",
        ),
    ] {
        let refused = post(admin, "/schemas/register", &form(&fields));
        assert!(refused.status == status && refused.body.contains(says), "{fields:?}: {refused:?}");
    }
    let first = [("subject", "orders-value"), ("type", "AVRO"), ("schema", v1)];
    let asked = post(admin, "/schemas/register", &form(&first));
    assert!(
        asked.body.contains("Register this AVRO schema as version 1 of <b>orders-value</b>, id 1 (a new id)?")
            && asked.body.contains("first version"),
        "{asked:?}"
    );
    assert_eq!(api("/subjects/orders-value/versions").status, 404, "nothing registered before the confirmation");
    let done = post(admin, "/schemas/register", &format!("{}&confirm=yes", form(&first)));
    assert!(done.status == 200 && done.body.contains("Registered orders-value version 1, id 1."), "{done:?}");
    assert_eq!(api("/subjects/orders-value/versions").body, "[1]");
    let again = post(admin, "/schemas/register", &form(&first));
    assert!(again.body.contains("has this schema already, as version 1 (id 1)"), "{again:?}");

    // BACKWARD: a field without a default cannot read version 1's records; with one it can.
    let breaking =
        r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"n","type":"int"}]}"#;
    let refused = post(admin, "/schemas/register", &form(&[("subject", "orders-value"), ("schema", breaking)]));
    assert!(refused.status == 409 && refused.body.contains("incompatible"), "{refused:?}");
    let v2 = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"n","type":"int","default":0}]}"#;
    let second = [("subject", "orders-value"), ("schema", v2)];
    let asked = post(admin, "/schemas/register", &form(&second));
    assert!(asked.body.contains("Compatible with the subject&#39;s versions under BACKWARD."), "{asked:?}");
    let done = post(admin, "/schemas/register", &format!("{}&confirm=yes", form(&second)));
    assert!(done.body.contains("Registered orders-value version 2, id 2."), "{done:?}");

    // The subject's page: its compatibility set, then given back to the registry's.
    let page = get(admin, "/schemas/orders-value");
    assert!(page.body.contains("Compatibility") && page.body.contains("Delete…"), "{page:?}");
    let bad = post(admin, "/schemas/orders-value/compatibility", &form(&[("level", "SOMETIMES")]));
    assert!(bad.status == 422 && bad.body.contains("SOMETIMES"), "{bad:?}");
    let asked = post(admin, "/schemas/orders-value/compatibility", &form(&[("level", "NONE")]));
    assert!(asked.body.contains("BACKWARD → NONE"), "{asked:?}");
    let set = post(admin, "/schemas/orders-value/compatibility", &form(&[("level", "NONE"), ("confirm", "yes")]));
    assert_eq!(set.status, 200, "{set:?}");
    assert!(api("/config/orders-value").body.contains("\"NONE\""));
    let set = post(admin, "/schemas/orders-value/compatibility", &form(&[("level", "default"), ("confirm", "yes")]));
    assert!(set.body.contains("Compatibility of orders-value: BACKWARD."), "{set:?}");
    assert_eq!(api("/config/orders-value").status, 404, "no level of its own");
    // The registry's own level, which the subject then follows.
    let asked = post(admin, "/schemas/compatibility", &form(&[("level", "FULL")]));
    assert!(asked.body.contains("The registry&#39;s compatibility: BACKWARD → FULL?"), "{asked:?}");
    let default = post(admin, "/schemas/compatibility", &form(&[("level", "default"), ("confirm", "yes")]));
    assert_eq!(default.status, 422, "the registry has no level to fall back to: {default:?}");
    let set = post(admin, "/schemas/compatibility", &form(&[("level", "FULL"), ("confirm", "yes")]));
    assert_eq!(set.status, 200, "{set:?}");
    assert!(api("/config").body.contains("\"FULL\""));
    assert!(get(admin, "/schemas/orders-value").body.contains("<b>FULL</b>compatibility"));
    post(admin, "/schemas/compatibility", &form(&[("level", "BACKWARD"), ("confirm", "yes")]));

    // Deletes: a version soft, a permanent one only of what was deleted first, then the subject.
    let asked = post(admin, "/schemas/orders-value/delete", &form(&[("version", "1")]));
    assert!(asked.body.contains("Delete version 1 of orders-value?"), "{asked:?}");
    let deleted = post(admin, "/schemas/orders-value/delete", &form(&[("version", "1"), ("confirm", "yes")]));
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(api("/subjects/orders-value/versions").body, "[2]");
    let not_first = post(admin, "/schemas/orders-value/delete", &form(&[("version", "2"), ("permanent", "yes")]));
    assert!(not_first.status == 404 && not_first.body.contains("not deleted first"), "{not_first:?}");
    let missing = post(admin, "/schemas/orders-value/delete", &form(&[("version", "9")]));
    assert_eq!(missing.status, 404, "{missing:?}");
    let gone = post(admin, "/schemas/orders-value/delete", &form(&[("version", ""), ("confirm", "yes")]));
    assert!(
        gone.body.contains("Deleted subject orders-value (every version).")
            && gone.body.contains("Delete it permanently…"),
        "{gone:?}"
    );
    assert_eq!(api("/subjects").body, "[]");
    let purged = post(
        admin,
        "/schemas/orders-value/delete",
        &form(&[("version", ""), ("permanent", "yes"), ("confirm", "yes")]),
    );
    assert!(purged.body.contains("permanently."), "{purged:?}");
    assert_eq!(api("/subjects?deleted=true").body, "[]");

    // READONLY refuses every change until set back; IMPORT only into an empty registry (as Confluent's).
    let asked = post(admin, "/schemas/mode", &form(&[("mode", "READONLY")]));
    assert!(asked.body.contains("The registry's mode: READWRITE → READONLY?"), "{asked:?}");
    assert_eq!(post(admin, "/schemas/mode", &form(&[("mode", "READONLY"), ("confirm", "yes")])).status, 200);
    assert!(api("/mode").body.contains("READONLY"));
    let refused = post(admin, "/schemas/register", &form(&first));
    assert!(refused.status == 422 && refused.body.contains("read-only mode"), "{refused:?}");
    assert_eq!(post(admin, "/schemas/mode", &form(&[("mode", "READWRITE"), ("confirm", "yes")])).status, 200);
    let bad = post(admin, "/schemas/mode", &form(&[("mode", "SOMETIMES")]));
    assert!(bad.status == 422 && bad.body.contains("READWRITE, READONLY or IMPORT"), "{bad:?}");

    // Protobuf with a reference, registered from the forms.
    let customer = "syntax = \"proto3\";\npackage crm;\nmessage Customer { string name = 1; }\n";
    let fields = [("subject", "customer"), ("type", "PROTOBUF"), ("schema", customer), ("confirm", "yes")];
    assert!(post(admin, "/schemas/register", &form(&fields)).body.contains("Registered customer version 1"));
    let order = "syntax = \"proto3\";\nimport \"c.proto\";\nmessage Order { crm.Customer c = 1; }\n";
    let fields = [
        ("subject", "orders-proto"),
        ("type", "PROTOBUF"),
        ("schema", order),
        ("references", "c.proto customer 1"),
        ("confirm", "yes"),
    ];
    let done = post(admin, "/schemas/register", &form(&fields));
    assert!(done.body.contains("Registered orders-proto version 1"), "{done:?}");
    let proto = get(admin, "/schemas/orders-proto");
    assert!(proto.body.contains("c.proto (<a href=\"/schemas/customer?version=1\">customer v1</a>)"), "{}", proto.body);
}
