//! The web console (docs/console.md): server-rendered pages at the admin listener's root for topics, messages,
//! consumer groups and throughput, and forms that create and delete topics, change a topic's settings and the
//! cluster's topic defaults, add partitions, delete records, produce a test message, and reset a group's offsets
//! or delete the group; the users and ACLs, created, deleted, added and removed; client quotas; and on a
//! cluster, partition moves cancelled, the replication throttle and preferred leader elections.
//!
//! Every page and action calls the gRPC service's own handlers ([`RillService`]'s `TopicAdmin`, `Records` and
//! `ConsumerGroups` methods, the `UserAdmin`, `AclAdmin`, `QuotaAdmin` and `ClusterAdmin` services'), so a console action is validated exactly as the same API call is and there is no
//! second implementation of topic or group logic; a refusal is shown as the status message the API would send.
//! The one form that speaks Kafka's config names, a topic's settings, calls the function behind both protocols'
//! config handlers instead (`topic_settings.rs`).
//!
//! Invariants:
//! - Data (names, keys, values, headers) reaches markup only through [`html::Html::text`], which escapes it;
//!   the Content-Security-Policy forbids scripts besides, so an escaping slip still could not run one.
//! - A change is made only by a POST that carries the CSRF token of the caller's session (with authentication
//!   off, this process's) and, when the browser sends one, an `Origin` equal to the `Host` it asked: another
//!   web page cannot make a browser post a form here. A POST with a bearer token needs no CSRF token: a browser
//!   never adds an `Authorization` header by itself.
//! - With `auth.admin_auth` required, nothing but the sign-in page and the stylesheet is served to a caller
//!   who is neither signed in nor holding a bearer token; every page acts as its caller's principal and asks
//!   [`authorize::may`] before it shows or does anything.
//! - With `console = read-only` every form is hidden and every POST refused (403); with `off` none of this is
//!   served.
//! - Pages stay bounded with 10,000 topics and partitions of millions of records: lists are paged, the message
//!   browser reads at most `messages::SCAN_BYTES_MAX` per page.

pub mod authorize;
mod chart;
mod clients;
mod cluster_ops;
mod config_form;
mod group_settings;
mod groups;
pub mod html;
mod lag_history;
mod layout;
mod leader;
mod live;
mod login;
mod messages;
mod overview;
mod partitions;
mod quotas;
mod schema_changes;
mod schemas;
mod security;
mod throughput;
mod topic_defaults;
mod topic_settings;
mod topics;

use std::sync::Arc;

use rand::Rng;

use self::html::{url_decode, Form};
pub use self::lag_history::LagHistory;
use self::layout::{Page, SignedIn};
pub(crate) use self::overview::file_system_space;
pub use self::throughput::{run_sampler, Throughput};
use crate::auth::admin::{AdminAuthenticator, Caller};
use crate::auth::Principal;
use crate::config::ConsoleMode;
use crate::metrics::admin_http::{Request, Response};
use crate::node::Node;
use crate::service::RillService;

const STYLESHEET: &str = include_str!("assets/console.css");

/// The console's state: the service it calls, its mode, its CSRF token, and the throughput and lag history.
pub struct Console {
    service: RillService,
    /// The `UserAdmin`, `AclAdmin` and `QuotaAdmin` handlers the Users, ACLs and Quotas pages call.
    users: crate::auth::service::UserAdminService,
    acls: crate::auth::acl_service::AclAdminService,
    quotas: crate::quotas::service::QuotaAdminService,
    /// The `ClusterAdmin` handlers the Cluster page calls.
    cluster: crate::cluster::describe::ClusterAdminService,
    node: Arc<Node>,
    controller: Option<Arc<crate::cluster::Controller>>,
    /// Where this node serves gRPC and Kafka (the real port when the config said 0).
    listen_addr: std::net::SocketAddr,
    is_read_only: bool,
    /// Random per process: a form carries it, and a page of another origin cannot read it.
    csrf_token: String,
    throughput: Arc<Throughput>,
    lag: Arc<LagHistory>,
    /// Sign-in, sessions and whether they are required (shared with `/metrics`).
    auth: Arc<AdminAuthenticator>,
}

impl Console {
    /// A console over `node`; `None` with `ConsoleMode::Off`.
    pub fn new(
        node: Arc<Node>,
        controller: Option<Arc<crate::cluster::Controller>>,
        listen_addr: std::net::SocketAddr,
        throughput: Arc<Throughput>,
        lag: Arc<LagHistory>,
        auth: Arc<AdminAuthenticator>,
    ) -> Option<Self> {
        let is_read_only = match node.config.console {
            ConsoleMode::Off => return None,
            ConsoleMode::ReadOnly => true,
            ConsoleMode::On => false,
        };
        let mut rng = rand::thread_rng();
        let csrf_token = (0..4).map(|_| format!("{:016x}", rng.gen::<u64>())).collect();
        let service = RillService::new(Arc::clone(&node));
        let users = crate::auth::service::UserAdminService::new(Arc::clone(&node.users), Arc::clone(&node.authorizer));
        let acls = crate::auth::acl_service::AclAdminService::new(Arc::clone(&node.authorizer));
        let quotas = crate::quotas::service::QuotaAdminService::new(
            Arc::clone(&node.authorizer),
            Arc::clone(node.quotas.store()),
        );
        let cluster = crate::cluster::describe::ClusterAdminService::new(
            controller.clone(),
            Arc::clone(&node.config),
            listen_addr.to_string(),
            Arc::clone(&node.authorizer),
        );
        Some(Self {
            service,
            cluster,
            users,
            acls,
            quotas,
            node,
            controller,
            listen_addr,
            is_read_only,
            csrf_token,
            throughput,
            lag,
            auth,
        })
    }

    /// Answers one console request, with the time it took in a `Server-Timing` header (what
    /// benches/console.sh reads, and a browser's developer tools show).
    pub async fn handle(&self, request: &Request, caller: &Caller) -> Response {
        let started = std::time::Instant::now();
        let principal = caller.principal();
        let page = self.page(caller, &principal);
        let mut response = self.answer(request, caller, page).await;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        response.headers.push(("server-timing", format!("console;dur={elapsed_ms:.2}")));
        response
    }

    async fn answer(&self, request: &Request, caller: &Caller, page: Page<'_>) -> Response {
        if let Err(refusal) = self.check_host(page, request) {
            return refusal;
        }
        let segments: Vec<String> =
            request.path.split('/').filter(|s| !s.is_empty()).map(|s| url_decode(s, false)).collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let query = Form::parse(&request.query);
        let is_post = match request.method.as_str() {
            "GET" | "HEAD" => false,
            "POST" => true,
            _ => return Response::text(405, "the console answers GET, HEAD and POST only\n"),
        };
        if self.auth.is_required() {
            match (segments.as_slice(), is_post) {
                (["login"], false) => {
                    let next = login::safe_next(query.get("next").unwrap_or("/"));
                    return login::form(page, next, None, 200);
                }
                (["login"], true) => return login::sign_in(self, page, request).await,
                (["logout"], true) => return login::sign_out(self, page, request, caller).await,
                (["console.css"], false) => {}
                _ if !caller.is_authenticated() => return login::needed(request),
                _ => {}
            }
        }
        let form = if is_post {
            match self.check_write(page, request, caller) {
                Ok(form) => Some(form),
                Err(refusal) => return refusal,
            }
        } else {
            None
        };
        let form_name = form.as_ref().and_then(|form| form.get("name"));
        if let Some((operation, resource)) = authorize::needed_by(&segments, is_post, form_name) {
            if let Err(denied) = authorize::may(&self.node.authorizer, page.principal, operation, resource) {
                return page.error(403, "Not allowed", &denied.to_string());
            }
        }
        match (segments.as_slice(), form) {
            ([], None) => match live::Live::from_query(&query) {
                Ok(live) => overview::show(self, page, live).await,
                Err(message) => page.error(400, "Bad refresh interval", &message),
            },
            (["console.css"], None) => Response {
                status: 200,
                content_type: "text/css; charset=utf-8",
                headers: vec![("cache-control", "max-age=3600".to_string())],
                body: STYLESHEET.as_bytes().to_vec(),
            },
            (["topics"], None) => topics::list(self, page, &query).await,
            (["topic-defaults"], None) => topic_defaults::show(self, page).await,
            (["topic-defaults"], Some(form)) => topic_defaults::change(self, page, &form).await,
            (["create-topic"], None) => topics::create_form(self, page, &query),
            (["create-topic"], Some(form)) => topics::create(self, page, &form).await,
            (["topics", topic], None) => match live::Live::from_query(&query) {
                Ok(live) => topics::show(self, page, topic, live).await,
                Err(message) => page.error(400, "Bad refresh interval", &message),
            },
            (["topics", topic, "delete"], None) => topics::delete_confirm(page, topic),
            (["topics", topic, "delete"], Some(form)) => topics::delete(self, page, topic, &form).await,
            (["topics", topic, "settings"], None) => topic_settings::show(self, page, topic).await,
            (["topics", topic, "settings"], Some(form)) => topic_settings::change(self, page, topic, &form).await,
            (["topics", topic, "partitions"], None) => partitions::add_form(self, page, topic).await,
            (["topics", topic, "partitions"], Some(form)) => partitions::add(self, page, topic, &form).await,
            (["topics", topic, "delete-records"], None) => partitions::delete_records_form(self, page, topic).await,
            (["topics", topic, "delete-records"], Some(form)) => {
                partitions::delete_records(self, page, topic, &form).await
            }
            (["topics", topic, "messages"], None) => messages::browse(self, page, topic, &query).await,
            (["topics", topic, "messages.json"], None) => messages::download(self, page, topic, &query).await,
            (["topics", topic, "produce"], None) => messages::produce_form(page, topic, &query),
            (["topics", topic, "produce"], Some(form)) => messages::produce(self, page, topic, &form).await,
            (["groups"], None) => groups::list(self, page, &query).await,
            (["groups", group], None) => match live::Live::from_query(&query) {
                Ok(live) => groups::show(self, page, group, live).await,
                Err(message) => page.error(400, "Bad refresh interval", &message),
            },
            (["groups", group, "reset"], None) => groups::reset_form(self, page, group).await,
            (["groups", group, "reset"], Some(form)) => groups::reset(self, page, group, &form).await,
            (["groups", group, "settings"], None) => group_settings::show(self, page, group),
            (["groups", group, "settings"], Some(form)) => group_settings::change(self, page, group, &form).await,
            (["groups", group, "delete"], None) => groups::delete_confirm(page, group),
            (["groups", group, "delete"], Some(form)) => groups::delete(self, page, group, &form).await,
            (["schemas"], None) => schemas::list(self, page, &query),
            (["users"], None) => security::users(self, page, &query).await,
            (["users"], Some(form)) => security::create_user(self, page, &form).await,
            (["users", user, "delete"], None) => security::delete_user_confirm(page, user),
            (["users", user, "delete"], Some(form)) => security::delete_user(self, page, user, &form).await,
            (["users", user, "token"], Some(form)) => security::issue_token(self, page, user, &form).await,
            (["cluster"], None) => cluster_ops::show(self, page),
            (["cluster", "move"], Some(form)) => cluster_ops::start_move(self, page, &form).await,
            (["cluster", "add-node"], Some(form)) => cluster_ops::add_node(self, page, &form).await,
            (["cluster", "rebalance"], Some(form)) => cluster_ops::rebalance(self, page, &form).await,
            (["cluster", "cancel-move"], Some(form)) => cluster_ops::cancel_move(self, page, &form).await,
            (["cluster", "throttle"], Some(form)) => cluster_ops::throttle(self, page, &form).await,
            (["cluster", "elect"], Some(form)) => cluster_ops::elect(self, page, &form).await,
            (["quotas"], None) => quotas::list(self, page).await,
            (["quotas"], Some(form)) => quotas::change(self, page, &form).await,
            (["acls"], None) => security::acls(self, page, &query).await,
            (["acls"], Some(form)) => security::add_acl(self, page, &form).await,
            (["acls", "remove"], Some(form)) => security::remove_acl(self, page, &form).await,
            (["clients"], None) => clients::list(self, page),
            (["clients", "subscriptions"], Some(form)) => clients::subscribe(self, page, &form).await,
            (["clients", "subscriptions", "remove"], Some(form)) => clients::remove(self, page, &form).await,
            (["schemas", subject], None) => schemas::show(self, page, subject, &query),
            (["schemas", "register"], Some(form)) => schema_changes::register(self, page, &form).await,
            (["schemas", "compatibility"], Some(form)) => schema_changes::compatibility(self, page, None, &form).await,
            (["schemas", "mode"], Some(form)) => schema_changes::mode(self, page, &form).await,
            (["schemas", subject, "compatibility"], Some(form)) => {
                schema_changes::compatibility(self, page, Some(subject), &form).await
            }
            (["schemas", subject, "delete"], Some(form)) => schema_changes::delete(self, page, subject, &form).await,
            (_, None) => page.error(404, "Not found", "No console page has this address."),
            (_, Some(_)) => page.error(405, "Not allowed", "This address takes no form."),
        }
    }

    /// The DNS-rebinding guard: the request must be addressed to an IP address, `localhost` or a name in
    /// `console_hosts`. A page of another site whose name resolves to this machine would otherwise be this
    /// console's own origin to the browser, and could read its pages and token and post its forms.
    fn check_host(&self, page: Page<'_>, request: &Request) -> Result<(), Response> {
        let host = request.host.as_deref().unwrap_or_default();
        if is_allowed_host(host, &self.node.config.console_hosts) {
            return Ok(());
        }
        Err(page.error(
            403,
            "Not this address",
            &format!(
                "The console answers requests addressed to an IP address, localhost or a name listed in the \
                 broker's console_hosts setting, not to \"{host}\". Add the name to console_hosts to use it."
            ),
        ))
    }

    /// The frame and identity of a page for `caller`: its session's CSRF token (the process's without one).
    fn page<'a>(&'a self, caller: &'a Caller, principal: &'a Principal) -> Page<'a> {
        let (csrf_token, signed_in) = match caller {
            Caller::Anonymous if self.auth.is_required() => (self.csrf_token.as_str(), SignedIn::NotYet),
            Caller::Anonymous => (self.csrf_token.as_str(), SignedIn::No),
            Caller::Token { .. } => (self.csrf_token.as_str(), SignedIn::ByToken),
            Caller::Session { view, .. } => (view.csrf_token.as_str(), SignedIn::BySession),
        };
        Page { csrf_token, is_read_only: self.is_read_only, principal, signed_in }
    }

    /// The guard on every write: not read-only, then [`Console::check_form`].
    fn check_write(&self, page: Page<'_>, request: &Request, caller: &Caller) -> Result<Form, Response> {
        if self.is_read_only {
            return Err(page.error(
                403,
                "Read-only console",
                "This broker runs its console with --console read-only: nothing can be changed from here.",
            ));
        }
        self.check_form(page, request, caller)
    }

    /// A form from this origin with the page's CSRF token (unless a bearer token authenticated it): what every
    /// POST but the sign-in needs, sign-out too (which a read-only console still allows).
    fn check_form(&self, page: Page<'_>, request: &Request, caller: &Caller) -> Result<Form, Response> {
        self.check_origin(page, request)?;
        let form = Form::parse(&String::from_utf8_lossy(&request.body));
        let has_token = match caller {
            Caller::Token { .. } => true,
            Caller::Anonymous | Caller::Session { .. } => form.get("csrf").is_some_and(|sent| {
                bool::from(subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), page.csrf_token.as_bytes()))
            }),
        };
        if !has_token {
            return Err(page.error(
                403,
                "Form expired or forged",
                "The form's token does not match your session (it may have ended, or the broker restarted): reload \
                 the page and try again.",
            ));
        }
        Ok(form)
    }

    /// A POST is a form sent from the console's own pages: its `Origin` (or `Sec-Fetch-Site`) says so.
    fn check_origin(&self, page: Page<'_>, request: &Request) -> Result<(), Response> {
        let is_form =
            request.content_type.as_deref().is_some_and(|t| t.trim().starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(page.error(415, "Not a form", "Console actions take application/x-www-form-urlencoded forms."));
        }
        let host = request.host.as_deref().unwrap_or("");
        let scheme = if request.is_tls { "https" } else { "http" };
        let is_same_origin = match &request.origin {
            Some(origin) => origin == &format!("{scheme}://{host}"),
            None => request.fetch_site.as_deref().is_none_or(|site| site == "same-origin" || site == "none"),
        };
        if !is_same_origin {
            return Err(page.error(
                403,
                "Cross-site request refused",
                "Console actions are accepted only from the console's own pages (the Origin did not match the Host).",
            ));
        }
        Ok(())
    }
}

/// A gRPC status from the service, as the console shows it: the HTTP status it maps to and its message.
fn status_response(page: Page<'_>, what: &str, status: &tonic::Status) -> Response {
    use tonic::Code;
    let http = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => 409,
        Code::ResourceExhausted => 429,
        Code::Unavailable => 503,
        _ => 500,
    };
    page.error(http, what, status.message())
}

/// Whether `host` (a `Host` header: a name or address, with or without a port) is an IP address, `localhost`
/// or one of `allowed` (compared without case).
fn is_allowed_host(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:9644`: an IPv6 address in brackets.
        Some(bracketed) => {
            return bracketed.split(']').next().is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => {
            host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host })
        }
    };
    !name.is_empty()
        && (name.parse::<std::net::Ipv4Addr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || allowed.iter().any(|allowed| allowed.eq_ignore_ascii_case(name)))
}

#[cfg(test)]
mod host_tests {
    use super::is_allowed_host;

    #[test]
    fn only_addresses_localhost_and_listed_names_are_answered() {
        let listed = vec!["broker1.internal".to_string()];
        for host in ["127.0.0.1:9644", "10.0.0.7", "localhost:9644", "LOCALHOST", "[::1]:9644", "Broker1.Internal:80"] {
            assert!(is_allowed_host(host, &listed), "{host}");
        }
        for host in ["evil.example:9644", "evil.example", "", "127.0.0.1.evil.example", "[evil]:1", "localhost.evil"] {
            assert!(!is_allowed_host(host, &listed), "{host}");
        }
    }
}
