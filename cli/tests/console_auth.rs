//! Authentication and TLS on the admin listener against a real `rill broker` process (docs/console.md,
//! "Signing in"): without a session the console sends browsers to the sign-in page and scripts get 401,
//! `/metrics` takes a bearer token, `/health` and `/ready` stay open; a sign-in sets a session cookie with the
//! attributes a browser needs to keep it from scripts and other sites; writes need the session's CSRF token;
//! sign-out ends the session; `--admin-tls` serves all of it over https; with authorization on, the console
//! acts as the signed-in user and shows and does only what the ACLs allow. The browser test is
//! tests/compat/console.sh.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::pki::{served_certificate, Ca};
use common::{rill, rill_with_stdin, AdminBroker, DEADLINE};

#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// What a request sends besides method, path and body.
#[derive(Default, Clone)]
struct Send<'a> {
    cookie: Option<&'a str>,
    bearer: Option<&'a str>,
    /// A form POST from this origin (`http://ADMIN` or `https://ADMIN`).
    form_origin: Option<String>,
}

fn request_text(admin: &str, method: &str, path: &str, send: &Send<'_>, body: &str) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {admin}\r\nContent-Length: {}\r\n", body.len());
    if let Some(cookie) = send.cookie {
        text.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if let Some(token) = send.bearer {
        text.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(origin) = &send.form_origin {
        text.push_str(&format!("Content-Type: application/x-www-form-urlencoded\r\nOrigin: {origin}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

fn parse(answer: &str) -> Answer {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_string(), body: body.to_string() }
}

fn plain(admin: &str, method: &str, path: &str, send: &Send<'_>, body: &str) -> Answer {
    let mut stream = TcpStream::connect(admin).expect("connect to the admin listener");
    stream.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    stream.write_all(request_text(admin, method, path, send, body).as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    parse(&answer)
}

/// The value of `name="csrf"` in a page.
fn csrf_in(page: &Answer) -> String {
    let at = page.body.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no token in {page:?}"));
    let rest = &page.body[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').expect("closing quote")].to_string()
}

/// `NAME=VALUE` of the session cookie a sign-in set.
fn session_cookie(answer: &Answer) -> String {
    let set = answer.header("set-cookie").unwrap_or_else(|| panic!("no cookie set: {answer:?}"));
    set.split(';').next().expect("a pair").trim().to_string()
}

/// A broker whose admin listener requires authentication, with user alice (password `pencil-123`) and a
/// token for her; gRPC stays open (only `--admin-auth required`), so the test makes the user with the CLI.
fn broker_with_alice(extra: &[&str]) -> (AdminBroker, String) {
    let mut args = vec!["--admin-auth", "required"];
    args.extend_from_slice(extra);
    let broker = AdminBroker::start(&args);
    let grpc = if extra.contains(&"--tls-cert") { None } else { Some(broker.addr.clone()) };
    let token = match grpc {
        Some(addr) => {
            rill_with_stdin(&addr, &["user", "create", "alice", "--password-stdin", "--token"], b"pencil-123\n")
                .ok()
                .trim()
                .to_owned()
        }
        None => String::new(),
    };
    (broker, token)
}

#[test]
fn without_a_session_pages_redirect_to_sign_in_and_metrics_needs_a_bearer_token() {
    let (broker, token) = broker_with_alice(&[]);
    let admin = &broker.admin;
    let none = Send::default();

    let page = plain(admin, "GET", "/topics?q=ord", &none, "");
    assert_eq!(page.status, 303, "{page:?}");
    assert_eq!(page.header("location"), Some("/login?next=%2Ftopics%3Fq%3Dord"), "{page:?}");
    let download = plain(admin, "GET", "/topics/orders/messages.json", &none, "");
    assert_eq!(download.status, 401, "scripts get 401, not a page: {download:?}");
    let form = Send { form_origin: Some(format!("http://{admin}")), ..Send::default() };
    let post = plain(admin, "POST", "/create-topic", &form, "name=x&partitions=1&confirm=yes");
    assert_eq!(post.status, 303, "a write without a session goes to sign in: {post:?}");
    assert!(!rill(&broker.addr, &["topic", "list"]).ok().contains('x'), "and does nothing");

    let metrics = plain(admin, "GET", "/metrics", &none, "");
    assert_eq!(metrics.status, 401, "{metrics:?}");
    assert_eq!(metrics.header("www-authenticate"), Some("Bearer realm=\"rill\""));
    let scraped = plain(admin, "GET", "/metrics", &Send { bearer: Some(&token), ..Send::default() }, "");
    assert_eq!(scraped.status, 200, "{scraped:?}");
    assert!(scraped.body.contains("rill_"), "metrics with a bearer token: {}", scraped.body);
    let forged = plain(admin, "GET", "/metrics", &Send { bearer: Some("rill_forged"), ..Send::default() }, "");
    assert_eq!(forged.status, 401, "{forged:?}");
    assert_eq!(plain(admin, "GET", "/health", &none, "").status, 200, "/health stays open");
    assert_eq!(plain(admin, "GET", "/ready", &none, "").status, 200, "/ready stays open");
    assert_eq!(plain(admin, "GET", "/console.css", &none, "").status, 200, "the sign-in page needs its style");

    // A bearer token opens the console too, and a POST with one needs no CSRF token (no browser sends it).
    let with_token = Send { bearer: Some(&token), form_origin: None, cookie: None };
    let overview = plain(admin, "GET", "/", &with_token, "");
    assert!(overview.status == 200 && overview.body.contains("User:alice"), "{overview:?}");
    let by_token = Send { form_origin: Some(format!("http://{admin}")), ..with_token };
    let created = plain(admin, "POST", "/create-topic", &by_token, "name=by-token&partitions=1&confirm=yes");
    assert_eq!(created.status, 200, "{created:?}");
    assert!(rill(&broker.addr, &["topic", "list"]).ok().contains("by-token"));
}

/// `rill_console_sessions` on `admin`'s `/metrics`, scraped with the bearer `token`.
fn console_sessions(admin: &str, token: &str) -> f64 {
    let scraped = plain(admin, "GET", "/metrics", &Send { bearer: Some(token), ..Send::default() }, "");
    assert_eq!(scraped.status, 200, "{scraped:?}");
    let sample = scraped.body.lines().find_map(|line| line.strip_prefix("rill_console_sessions "));
    sample.and_then(|value| value.trim().parse().ok()).unwrap_or_else(|| panic!("no sessions gauge: {}", scraped.body))
}

#[test]
fn sign_in_sets_a_guarded_cookie_writes_need_the_sessions_token_and_sign_out_ends_it() {
    let (broker, bearer) = broker_with_alice(&[]);
    let admin = &broker.admin;
    assert_eq!(console_sessions(admin, &bearer), 0.0, "a bearer token opens no session");
    let origin = format!("http://{admin}");
    let form = Send { form_origin: Some(origin.clone()), ..Send::default() };

    let sign_in_page = plain(admin, "GET", "/login?next=%2Ftopics", &Send::default(), "");
    assert!(sign_in_page.status == 200 && sign_in_page.body.contains("type=\"password\""), "{sign_in_page:?}");
    assert!(!sign_in_page.body.contains("/create-topic"), "no page offered before signing in: {sign_in_page:?}");
    // A live page whose session ended reloads onto this page, which must then stay still (docs/console.md).
    assert!(!sign_in_page.body.contains("http-equiv=\"refresh\""), "the sign-in page never reloads itself");

    let wrong = plain(admin, "POST", "/login", &form, "user=alice&password=pencil-124&next=%2Ftopics");
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(wrong.body.contains("Invalid user name or password."), "{}", wrong.body);
    assert!(wrong.header("set-cookie").is_none(), "no session for a wrong password");
    let unknown = plain(admin, "POST", "/login", &form, "user=nobody&password=pencil-123");
    assert!(unknown.status == 401 && unknown.body.contains("Invalid user name or password."), "same answer");

    let cross_site = Send { form_origin: Some("http://evil.example".into()), ..Send::default() };
    let forged = plain(admin, "POST", "/login", &cross_site, "user=alice&password=pencil-123");
    assert_eq!(forged.status, 403, "a sign-in posted from another site: {forged:?}");

    let signed_in = plain(admin, "POST", "/login", &form, "user=alice&password=pencil-123&next=%2Ftopics");
    assert_eq!(signed_in.status, 303, "{signed_in:?}");
    assert_eq!(signed_in.header("location"), Some("/topics"));
    let set_cookie = signed_in.header("set-cookie").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attribute), "{attribute} in {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: a Secure cookie would never come back: {set_cookie}");
    assert!(!set_cookie.contains("pencil"), "{set_cookie}");
    let cookie = session_cookie(&signed_in);
    let as_alice = Send { cookie: Some(&cookie), ..Send::default() };

    let overview = plain(admin, "GET", "/", &as_alice, "");
    assert_eq!(overview.status, 200, "{overview:?}");
    assert!(overview.body.contains("User:alice") && overview.body.contains("Sign out"), "{}", overview.body);
    assert!(overview.body.contains("<meta http-equiv=\"refresh\" content=\"5\">"), "a signed-in Overview is live");
    let token = csrf_in(&plain(admin, "GET", "/create-topic", &as_alice, ""));

    let post_as_alice = Send { cookie: Some(&cookie), form_origin: Some(origin.clone()), bearer: None };
    let no_token = plain(admin, "POST", "/create-topic", &post_as_alice, "name=nocsrf&partitions=1&confirm=yes");
    assert_eq!(no_token.status, 403, "a write without the session's token: {no_token:?}");
    let other = plain(admin, "GET", "/create-topic", &Send::default(), "");
    assert_eq!(other.status, 303, "an anonymous caller gets no form, and so no token: {other:?}");
    let made = plain(
        admin,
        "POST",
        "/create-topic",
        &post_as_alice,
        &format!("csrf={token}&name=web&partitions=1&confirm=yes"),
    );
    assert_eq!(made.status, 200, "{made:?}");
    assert!(rill(&broker.addr, &["topic", "list"]).ok().contains("web"), "made as alice");
    let elsewhere = Send { cookie: Some(&cookie), form_origin: Some("http://evil.example".into()), bearer: None };
    let cross =
        plain(admin, "POST", "/create-topic", &elsewhere, &format!("csrf={token}&name=x&partitions=1&confirm=yes"));
    assert_eq!(cross.status, 403, "the session's token from another origin: {cross:?}");

    // A second session has its own token: alice's first token does not work in it.
    let again = plain(admin, "POST", "/login", &form, "user=alice&password=pencil-123");
    let second = session_cookie(&again);
    let post_second = Send { cookie: Some(&second), form_origin: Some(origin.clone()), bearer: None };
    let replayed = plain(
        admin,
        "POST",
        "/create-topic",
        &post_second,
        &format!("csrf={token}&name=replay&partitions=1&confirm=yes"),
    );
    assert_eq!(replayed.status, 403, "{replayed:?}");
    assert_eq!(console_sessions(admin, &bearer), 2.0, "two sign-ins; the wrong and forged ones opened none");

    let signed_out = plain(admin, "POST", "/logout", &post_as_alice, &format!("csrf={token}"));
    assert_eq!(signed_out.status, 303, "{signed_out:?}");
    assert_eq!(console_sessions(admin, &bearer), 1.0, "the sign-out ended one");
    assert_eq!(signed_out.header("location"), Some("/login"));
    assert!(signed_out.header("set-cookie").is_some_and(|c| c.contains("Max-Age=0")), "{signed_out:?}");
    let after = plain(admin, "GET", "/", &as_alice, "");
    assert_eq!(after.status, 303, "the old cookie signs nobody in: {after:?}");
}

#[test]
fn a_read_only_console_still_signs_in_and_out_but_changes_nothing() {
    let (broker, _token) = broker_with_alice(&["--console", "read-only"]);
    let admin = &broker.admin;
    let form = Send { form_origin: Some(format!("http://{admin}")), ..Send::default() };
    let signed_in = plain(admin, "POST", "/login", &form, "user=alice&password=pencil-123");
    assert_eq!(signed_in.status, 303, "{signed_in:?}");
    let cookie = session_cookie(&signed_in);
    let as_alice = Send { cookie: Some(&cookie), form_origin: Some(format!("http://{admin}")), bearer: None };
    let token = csrf_in(&plain(admin, "GET", "/", &Send { cookie: Some(&cookie), ..Send::default() }, ""));
    let write = plain(admin, "POST", "/create-topic", &as_alice, &format!("csrf={token}&name=x&partitions=1"));
    assert_eq!(write.status, 403, "read-only: {write:?}");
    let signed_out = plain(admin, "POST", "/logout", &as_alice, &format!("csrf={token}"));
    assert_eq!(signed_out.status, 303, "signing out changes no data, so read-only allows it: {signed_out:?}");
}

#[test]
fn without_admin_auth_the_console_is_open_as_before_and_has_no_sign_in() {
    let broker = AdminBroker::start(&[]);
    let admin = &broker.admin;
    let overview = plain(admin, "GET", "/", &Send::default(), "");
    assert_eq!(overview.status, 200, "{overview:?}");
    assert!(!overview.body.contains("Sign out") && !overview.body.contains("User:"), "{}", overview.body);
    assert_eq!(plain(admin, "GET", "/login", &Send::default(), "").status, 404);
    assert_eq!(plain(admin, "GET", "/metrics", &Send::default(), "").status, 200);
}

/// One HTTP/1.1 request over TLS, trusting `ca`; the answer, and the ALPN protocol the server chose.
fn over_tls(admin: &str, ca: &Ca, method: &str, path: &str, send: &Send<'_>, body: &str) -> (Answer, Option<Vec<u8>>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).expect("trust the CA");
    let mut config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    // What a browser offers: HTTP/2 first.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let connection = rustls::ClientConnection::new(Arc::new(config), name).expect("client connection");
    let tcp = TcpStream::connect(admin).expect("connect");
    tcp.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(request_text(admin, method, path, send, body).as_bytes()).expect("send over TLS");
    let mut answer = Vec::new();
    // The server closes after its answer; a missing close_notify is an error rustls reports, after the bytes.
    let _ = tls.read_to_end(&mut answer);
    let alpn = tls.conn.alpn_protocol().map(<[u8]>::to_vec);
    (parse(&String::from_utf8_lossy(&answer)), alpn)
}

#[test]
fn admin_tls_serves_the_console_and_metrics_over_https_with_a_secure_cookie() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "admin-ca");
    let node = ca.issue(dir.path(), "node", 1, false);
    let (broker, _) = broker_with_alice(&["--tls-cert", node.cert(), "--tls-key", node.key(), "--admin-tls"]);
    let admin = &broker.admin;
    // gRPC is TLS too: the user is made over https.
    let made = common::run(
        std::process::Command::new(common::RILL)
            .args(["user", "create", "alice", "--password", "pencil-123", "--token", "--tls-ca"])
            .arg(&ca.pem_path)
            .env("RILL_BROKER", format!("https://{}", broker.addr)),
        None,
    );
    let token = made.ok().trim().to_owned();

    let (health, alpn) = over_tls(admin, &ca, "GET", "/health", &Send::default(), "");
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]), "a browser offering h2 gets HTTP/1.1");
    let (metrics, _) = over_tls(admin, &ca, "GET", "/metrics", &Send { bearer: Some(&token), ..Send::default() }, "");
    assert!(metrics.status == 200 && metrics.body.contains("rill_"), "{metrics:?}");

    let form = Send { form_origin: Some(format!("https://{admin}")), ..Send::default() };
    let (signed_in, _) = over_tls(admin, &ca, "POST", "/login", &form, "user=alice&password=pencil-123");
    assert_eq!(signed_in.status, 303, "the https origin is the console's own: {signed_in:?}");
    assert!(signed_in.header("set-cookie").is_some_and(|c| c.contains("; Secure")), "{signed_in:?}");
    let cookie = session_cookie(&signed_in);
    let (overview, _) = over_tls(admin, &ca, "GET", "/", &Send { cookie: Some(&cookie), ..Send::default() }, "");
    assert!(overview.status == 200 && overview.body.contains("User:alice"), "{overview:?}");

    // Plain HTTP to the TLS listener gets no page.
    let mut stream = TcpStream::connect(admin).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(15))).expect("read timeout");
    stream.write_all(format!("GET /health HTTP/1.1\r\nHost: {admin}\r\n\r\n").as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"), "no plaintext answer from the TLS listener");

    // The admin listener reloads with the broker's files: after a renewal and SIGHUP, new connections get the
    // new certificate.
    assert_eq!(served_certificate(admin, &ca), node.der);
    let renewed = ca.issue(dir.path(), "renewed", 2, false);
    renewed.install_over(&node);
    common::signal(&broker.child, libc::SIGHUP);
    let deadline = std::time::Instant::now() + DEADLINE;
    while served_certificate(admin, &ca) != renewed.der {
        assert!(std::time::Instant::now() < deadline, "the admin listener never served the renewed certificate");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (after, _) = over_tls(admin, &ca, "GET", "/health", &Send::default(), "");
    assert_eq!(after.status, 200, "{after:?}");
}

#[test]
fn admin_tls_without_a_certificate_and_an_unknown_admin_auth_stop_the_start_saying_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = |extra: &[&str]| {
        common::run(
            std::process::Command::new(common::RILL)
                .args(["broker", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir"])
                .arg(dir.path())
                .args(extra),
            None,
        )
    };
    start(&["--admin-tls"]).fails(1, "--admin-tls serves the admin listener with the broker's certificate");
    let bad = start(&["--admin-auth", "maybe"]);
    assert!(!bad.status.success() && bad.stderr.contains("not one of required, off"), "{bad:?}");
}

#[test]
fn the_console_acts_as_the_signed_in_user_and_obeys_the_acls() {
    // Users, topics and ACLs first, with authorization off: nobody could create the first user after.
    let data = tempfile::tempdir().expect("temp dir");
    {
        let setup = AdminBroker::start_in(data.path(), &[]);
        rill(&setup.addr, &["topic", "create", "public"]).ok();
        rill(&setup.addr, &["topic", "create", "secret"]).ok();
        rill_with_stdin(&setup.addr, &["user", "create", "alice", "--password-stdin"], b"pencil-123\n").ok();
        let allow = ["acl", "add", "--allow", "--principal", "User:alice", "--operation", "read", "--topic", "public"];
        rill(&setup.addr, &allow).ok();
    }
    let broker = AdminBroker::start_in(data.path(), &["--authorization", "on", "--admin-auth", "required"]);
    let admin = &broker.admin;
    let origin = format!("http://{admin}");
    let form = Send { form_origin: Some(origin.clone()), ..Send::default() };
    let cookie = session_cookie(&plain(admin, "POST", "/login", &form, "user=alice&password=pencil-123"));
    let as_alice = Send { cookie: Some(&cookie), ..Send::default() };

    let topics = plain(admin, "GET", "/topics", &as_alice, "");
    assert_eq!(topics.status, 200, "{topics:?}");
    assert!(topics.body.contains("public"), "alice may read it: {}", topics.body);
    assert!(!topics.body.contains("secret"), "the list leaves out what alice may not describe: {}", topics.body);
    assert_eq!(plain(admin, "GET", "/topics/public", &as_alice, "").status, 200, "her own topic's page");
    let secret = plain(admin, "GET", "/topics/secret", &as_alice, "");
    assert_eq!(secret.status, 403, "refused before the page is built: {secret:?}");
    let refusal = "User:alice is not authorized to describe topic &quot;secret&quot;";
    assert!(secret.body.contains(refusal), "the refusal names principal, operation and topic: {}", secret.body);
    let messages = plain(admin, "GET", "/topics/secret/messages", &as_alice, "");
    assert_eq!(messages.status, 403, "{messages:?}");
    assert!(
        messages.body.contains("User:alice is not authorized to read topic &quot;secret&quot;"),
        "{}",
        messages.body
    );
    let produce_form = plain(admin, "GET", "/topics/public/produce", &as_alice, "");
    assert_eq!(produce_form.status, 403, "READ on public is not WRITE: {produce_form:?}");
    assert_eq!(plain(admin, "GET", "/topics/public/messages", &as_alice, "").status, 200, "READ on her topic");

    let token = csrf_in(&plain(admin, "GET", "/create-topic", &as_alice, ""));
    let post = Send { cookie: Some(&cookie), form_origin: Some(origin), bearer: None };
    let made =
        plain(admin, "POST", "/create-topic", &post, &format!("csrf={token}&name=hers&partitions=1&confirm=yes"));
    assert_eq!(made.status, 403, "{made:?}");
    assert!(made.body.contains("User:alice is not authorized to create"), "no CREATE for alice: {}", made.body);
    // READ on public is none of Kafka's config, ALTER or DELETE rights, nor anything on the cluster.
    for (method, path, body, refusal) in [
        ("GET", "/topics/public/settings", "", "describe_configs topic"),
        ("POST", "/topics/public/settings", "set.retention.ms=1&confirm=yes", "alter_configs topic"),
        ("POST", "/topics/public/partitions", "partitions=2&confirm=yes", "alter topic"),
        ("POST", "/topics/public/delete-records", "confirm=yes", "delete topic"),
        ("GET", "/topic-defaults", "", "describe_configs the cluster"),
        ("POST", "/topic-defaults", "set.log.retention.ms=1&confirm=yes", "alter_configs the cluster"),
        ("POST", "/groups/theirs/delete", "confirm=yes", "delete group"),
        ("GET", "/users", "", "describe the cluster"),
        ("POST", "/users", "name=mallory&password=x&again=x", "alter the cluster"),
        ("POST", "/acls", "principal=User%3Aalice&permission=allow&operation=all&resource_type=cluster&pattern_type=literal&name=kafka-cluster&confirm=yes", "alter the cluster"),
        ("GET", "/quotas", "", "describe_configs the cluster"),
        ("POST", "/quotas", "user=alice&remove_producer_byte_rate=yes&confirm=yes", "alter_configs the cluster"),
        ("GET", "/groups/theirs/settings", "", "describe_configs group"),
        ("POST", "/groups/theirs/settings", "set.consumer.session.timeout.ms=60000&confirm=yes", "alter_configs group"),
        ("POST", "/schemas/register", "subject=s&schema=%22string%22&confirm=yes", "alter the cluster"),
        ("POST", "/schemas/s/delete", "confirm=yes", "alter the cluster"),
        ("POST", "/clients/subscriptions", "name=n&metrics=*&confirm=yes", "alter_configs the cluster"),
        ("POST", "/cluster/move", "topic=public&partition=0&replicas=1&confirm=yes", "alter the cluster"),
    ] {
        let sent = if method == "GET" { &as_alice } else { &post };
        let answer = plain(admin, method, path, sent, &format!("csrf={token}&{body}"));
        let said = format!("User:alice is not authorized to {refusal}");
        assert!(answer.status == 403 && answer.body.contains(&said), "{method} {path}: {answer:?}");
    }
    drop(broker);
    let open = AdminBroker::start_in(data.path(), &[]);
    assert!(!rill(&open.addr, &["topic", "list"]).ok().contains("hers"), "nothing was created");
}

/// The file a broker keeps its console sessions in, in its data dir.
const SESSIONS_FILE: &str = "__console_sessions.json";

#[test]
fn a_session_survives_a_restart_and_still_ends_at_sign_out_and_user_deletion() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ["--admin-auth", "required"];
    let broker = AdminBroker::start_in(dir.path(), &args);
    for user in ["alice", "bob"] {
        rill_with_stdin(&broker.addr, &["user", "create", user, "--password-stdin"], b"pencil-123\n").ok();
    }
    let form = Send { form_origin: Some(format!("http://{}", broker.admin)), ..Send::default() };
    let alice = session_cookie(&plain(&broker.admin, "POST", "/login", &form, "user=alice&password=pencil-123"));
    let bob = session_cookie(&plain(&broker.admin, "POST", "/login", &form, "user=bob&password=pencil-123"));
    let as_alice = Send { cookie: Some(&alice), ..Send::default() };
    let token_before = csrf_in(&plain(&broker.admin, "GET", "/", &as_alice, ""));
    drop(broker);

    let file = dir.path().join(SESSIONS_FILE);
    let mode = std::fs::metadata(&file).expect("the sessions file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the broker's user reads it: {mode:o}");
    let stored = std::fs::read_to_string(&file).expect("read it");
    for secret in [&alice, &bob, &token_before] {
        let value = secret.split_once('=').map_or(secret.as_str(), |(_, value)| value);
        assert!(!stored.contains(value), "no cookie or CSRF token is stored: {stored}");
    }

    let broker = AdminBroker::start_in(dir.path(), &args);
    let admin = &broker.admin;
    let overview = plain(admin, "GET", "/", &as_alice, "");
    assert_eq!(overview.status, 200, "the same cookie after a restart: {overview:?}");
    assert!(overview.body.contains("User:alice"), "{}", overview.body);
    assert_eq!(csrf_in(&overview), token_before, "the session's forms keep working");
    let as_bob = Send { cookie: Some(&bob), ..Send::default() };
    assert_eq!(plain(admin, "GET", "/topics", &as_bob, "").status, 200, "bob's session too");

    let post_as_alice = Send { cookie: Some(&alice), form_origin: Some(format!("http://{admin}")), bearer: None };
    let signed_out = plain(admin, "POST", "/logout", &post_as_alice, &format!("csrf={token_before}"));
    assert_eq!(signed_out.status, 303, "{signed_out:?}");
    assert_eq!(plain(admin, "GET", "/", &as_alice, "").status, 303, "signed out");
    assert_eq!(rill(&broker.addr, &["user", "delete", "bob"]).ok(), "deleted user bob\n");
    assert_eq!(plain(admin, "GET", "/topics", &as_bob, "").status, 303, "a deleted user's session ends");
    drop(broker);

    let broker = AdminBroker::start_in(dir.path(), &args);
    for (who, send) in [("alice, signed out", &as_alice), ("bob, deleted", &as_bob)] {
        let page = plain(&broker.admin, "GET", "/", send, "");
        assert_eq!(page.status, 303, "{who}: an ended session stays ended after a restart: {page:?}");
    }
}

#[test]
fn a_damaged_sessions_file_does_not_stop_the_broker_and_signs_nobody_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(SESSIONS_FILE);
    let forged = r#"{"version":1,"sessions":[{"id_sha256":"not base64!","user":"alice","signed_in_unix_ms":1,"#;
    std::fs::write(&file, forged).expect("a torn file");
    let broker = AdminBroker::start_in(dir.path(), &["--admin-auth", "required"]);
    let admin = &broker.admin;
    assert_eq!(plain(admin, "GET", "/health", &Send::default(), "").status, 200, "the broker started");
    assert_eq!(plain(admin, "GET", "/", &Send { cookie: Some("rill_session=x"), ..Send::default() }, "").status, 303);

    rill_with_stdin(&broker.addr, &["user", "create", "alice", "--password-stdin"], b"pencil-123\n").ok();
    let form = Send { form_origin: Some(format!("http://{admin}")), ..Send::default() };
    let alice = session_cookie(&plain(admin, "POST", "/login", &form, "user=alice&password=pencil-123"));
    let stored = std::fs::read_to_string(&file).expect("read it");
    assert!(stored.starts_with("{\"version\":1") && stored.contains("\"alice\""), "replaced by a good file: {stored}");
    drop(broker);
    let broker = AdminBroker::start_in(dir.path(), &["--admin-auth", "required"]);
    let page = plain(&broker.admin, "GET", "/", &Send { cookie: Some(&alice), ..Send::default() }, "");
    assert_eq!(page.status, 200, "the new file is read at the next start: {page:?}");
}
