//! Console sign-in sessions on a cluster of three real `rill broker` processes (docs/console.md, "Sessions on a
//! cluster"): a cookie made by signing in on node 1's admin listener is accepted by node 2's and node 3's, a
//! sign-out on node 3 ends it on node 1, deleting the user ends its sessions on every node, and a session
//! outlives a restart of the node it was made on. The sessions live in the replicated metadata, so no node
//! keeps a per-node sessions file (a leftover one is removed).

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::cluster::Cluster;
use common::{eventually, rill, DEADLINE};

/// Short heartbeats and node sessions, with the admin listener requiring a sign-in (gRPC stays open, so the
/// test makes users with the CLI).
const CONFIG: &str =
    "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\n[auth]\nadmin_auth = \"required\"\n";

/// An answer from an admin listener: its status, the `name=value` of a `Set-Cookie` header, and its body.
struct Answer {
    status: u16,
    cookie: Option<String>,
    body: String,
}

/// One HTTP/1.1 request to the admin listener `admin`; `None` if the node does not answer (it is restarting).
fn admin_http(admin: &str, method: &str, path: &str, headers: &str, body: &str) -> Option<Answer> {
    let mut stream = TcpStream::connect(admin).ok()?;
    stream.set_read_timeout(Some(DEADLINE)).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let cookie = head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case("set-cookie").then(|| value.split(';').next().unwrap_or("").trim().to_owned())
    });
    Some(Answer { status, cookie, body: body.to_owned() })
}

fn form_headers(admin: &str, cookie: Option<&str>) -> String {
    let mut headers = format!("Content-Type: application/x-www-form-urlencoded\r\nOrigin: http://{admin}\r\n");
    if let Some(cookie) = cookie {
        headers.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    headers
}

/// Signs `user` in on `admin` with password `pw`: the session cookie, `rill_session=ID`. Retried while the
/// cluster is still electing its controller leader (the sign-in is a metadata write).
fn sign_in(admin: &str, user: &str) -> String {
    eventually(&format!("{user} signed in on {admin}"), || {
        let answer =
            admin_http(admin, "POST", "/login", &form_headers(admin, None), &format!("user={user}&password=pw"))?;
        (answer.status == 303).then_some(answer.cookie).flatten().filter(|cookie| cookie.len() > "rill_session=".len())
    })
}

/// The overview page on `admin` with `cookie`: `Some(true)` when it is shown (signed in), `Some(false)` when the
/// node sends the browser to sign in, `None` when the node does not answer.
fn is_signed_in(admin: &str, cookie: &str) -> Option<bool> {
    let answer = admin_http(admin, "GET", "/", &format!("Cookie: {cookie}\r\n"), "")?;
    match answer.status {
        200 => Some(true),
        303 => Some(false),
        other => panic!("unexpected answer {other} from {admin}: {}", answer.body),
    }
}

fn wait_signed_in(admin: &str, cookie: &str, expected: bool, what: &str) {
    eventually(what, || (is_signed_in(admin, cookie)? == expected).then_some(()));
}

/// The CSRF token of `cookie`'s session, from a page `admin` serves to it.
fn csrf_token(admin: &str, cookie: &str) -> String {
    let page = admin_http(admin, "GET", "/", &format!("Cookie: {cookie}\r\n"), "").expect("the node answers");
    let at = page.body.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no token in {}", page.body));
    let rest = &page.body[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

fn create_alice(cluster: &Cluster) {
    eventually("alice created", || {
        let created = rill(cluster.any_running(), &["user", "create", "alice", "--password", "pw"]);
        created.status.success().then_some(())
    });
}

#[test]
fn a_sign_in_on_one_node_holds_on_every_node_until_signed_out_or_the_user_is_deleted() {
    // Node 1's data dir holds a per-node sessions file from a single-node past: a cluster removes it unread.
    let mut cluster = Cluster::start_with(CONFIG, |dir| {
        std::fs::create_dir_all(dir.join("d1")).expect("node 1's data dir");
        std::fs::write(dir.join("d1").join("__console_sessions.json"), r#"{"version":1,"sessions":[]}"#)
            .expect("a leftover sessions file");
    });
    create_alice(&cluster);
    let admins: Vec<String> = (1..=3).map(|id| cluster.admin(id).to_owned()).collect();

    let first = sign_in(&admins[0], "alice");
    for admin in &admins {
        wait_signed_in(admin, &first, true, &format!("node 1's session accepted by {admin}"));
    }
    assert_eq!(is_signed_in(&admins[0], "rill_session=forged"), Some(false), "a made-up cookie is nobody");

    // Signed out on node 3, with the form node 3 served: node 1 no longer takes the cookie either.
    let csrf = csrf_token(&admins[2], &first);
    let out =
        admin_http(&admins[2], "POST", "/logout", &form_headers(&admins[2], Some(&first)), &format!("csrf={csrf}"))
            .expect("node 3 answers");
    assert_eq!(out.status, 303, "signed out: {}", out.body);
    assert_eq!(out.cookie.as_deref(), Some("rill_session="), "the cookie is cleared");
    for admin in &admins {
        wait_signed_in(admin, &first, false, &format!("the signed-out session refused by {admin}"));
    }

    // Two sessions of alice's, made on two nodes, end on every node when she is deleted.
    let second = sign_in(&admins[0], "alice");
    let third = sign_in(&admins[1], "alice");
    for admin in &admins {
        wait_signed_in(admin, &second, true, &format!("the second session accepted by {admin}"));
        wait_signed_in(admin, &third, true, &format!("the third session accepted by {admin}"));
    }
    rill(cluster.addr(2), &["user", "delete", "alice"]).ok();
    for admin in &admins {
        wait_signed_in(admin, &second, false, &format!("a deleted user's session refused by {admin}"));
        wait_signed_in(admin, &third, false, &format!("a deleted user's other session refused by {admin}"));
    }
    // Created again with the same name and password: a new user, who inherits no session.
    create_alice(&cluster);
    for admin in &admins {
        assert_eq!(is_signed_in(admin, &second), Some(false), "{admin}: the re-created alice is not signed in");
    }

    // A session outlives the restart of the node it was made on: it is in the metadata, not in that node.
    let fourth = sign_in(&admins[0], "alice");
    // On both other nodes before the kill: one that had not applied it yet would wait for a new controller leader.
    for admin in &admins[1..] {
        wait_signed_in(admin, &fourth, true, &format!("the fourth session reached {admin}"));
    }
    cluster.nodes[0].take().expect("node 1 runs").kill();
    assert_eq!(is_signed_in(&admins[1], &fourth), Some(true), "node 2 keeps it while node 1 is down");
    cluster.nodes[0] = Some(cluster.start_node(1));
    wait_signed_in(&admins[0], &fourth, true, "the session accepted by node 1 after its restart");
    for node_id in 1..=3 {
        let file = cluster.data_dir(node_id).join("__console_sessions.json");
        assert!(!file.exists(), "a cluster node keeps no per-node sessions file: {}", file.display());
    }
}
