//! Signing in and out of the console (docs/console.md, "Signing in"), served only when the admin listener
//! requires authentication (`auth.admin_auth`).
//!
//! A user signs in with the password `rill user create` set: it is checked against the stored SCRAM credential
//! (`auth/admin.rs`) and a session opens, named by a random cookie that is `HttpOnly` (no script reads it),
//! `SameSite=Strict` (no other site's page sends it), `Secure` over TLS and lives at most the session's
//! lifetime. A wrong user or password gets the same answer, after the per-address backoff.

use super::html::{url_encode, Form, Html};
use super::layout::Page;
use super::Console;
use crate::auth::admin::{Caller, SignInError, SESSION_COOKIE};
use crate::auth::sessions::LIFETIME_LIMIT;
use crate::metrics::admin_http::{unauthorized, Request, Response};

/// The sign-in page, with `failure` shown above the form when the last attempt failed.
pub fn form(page: Page<'_>, next: &str, failure: Option<&str>, status: u16) -> Response {
    let mut body = Html::new();
    if let Some(failure) = failure {
        body.raw("<p class=\"error\" role=\"alert\" id=\"signin-error\">").text(failure).raw("</p>");
    }
    body.raw("<form class=\"signin\" method=\"post\" action=\"/login\">");
    super::layout::hidden(&mut body, "next", next);
    body.raw("<label>User <input name=\"user\" id=\"user\" autocomplete=\"username\" required autofocus></label>");
    body.raw("<label>Password <input name=\"password\" id=\"password\" type=\"password\" ");
    body.raw("autocomplete=\"current-password\" required></label>");
    body.raw("<button id=\"signin\">Sign in</button></form>");
    body.raw("<p class=\"muted\">Users are made with <code>rill user create NAME</code>.</p>");
    page.render(status, "Sign in", body)
}

/// A POST of the sign-in form: a session and a redirect to where the user was going, or the form again.
pub async fn sign_in(console: &Console, page: Page<'_>, request: &Request) -> Response {
    if let Err(refusal) = console.check_origin(page, request) {
        return refusal;
    }
    let form = Form::parse(&String::from_utf8_lossy(&request.body));
    let next = safe_next(form.get("next").unwrap_or("/"));
    let user = form.get("user").unwrap_or("").trim();
    let password = form.get("password").unwrap_or("").to_owned();
    match console.auth.sign_in(user, password, request.peer).await {
        Ok(session) => {
            let mut cookie = format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                session.id,
                LIFETIME_LIMIT.as_secs()
            );
            if request.is_tls {
                cookie.push_str("; Secure");
            }
            redirect(next, Some(cookie))
        }
        Err(SignInError::Refused(refused)) => {
            // The wait is the answer's: the connection holds an admin slot meanwhile, which bounds how many
            // guesses run at once.
            tokio::time::sleep(refused.wait).await;
            form_page_after_failure(page, next)
        }
        Err(SignInError::Unavailable(_)) => self::form(page, next, Some(CLUSTER_UNAVAILABLE), 503),
    }
}

/// What a sign-in or sign-out the cluster could not record says (the log line has the reason).
const CLUSTER_UNAVAILABLE: &str =
    "The cluster could not record the session change (is a majority of the nodes up?). Try again.";

fn form_page_after_failure(page: Page<'_>, next: &str) -> Response {
    form(page, next, Some("Invalid user name or password."), 401)
}

/// A POST of the "Sign out" button: the session ends and the cookie is cleared.
pub async fn sign_out(console: &Console, page: Page<'_>, request: &Request, caller: &Caller) -> Response {
    if let Err(refusal) = console.check_form(page, request, caller) {
        return refusal;
    }
    if let Err(error) = console.auth.sign_out(caller).await {
        // The cookie is kept: clearing it here would leave a session open elsewhere that looks ended.
        tracing::warn!(%error, "console sign-out not recorded");
        return page.error(503, "Not signed out", CLUSTER_UNAVAILABLE);
    }
    let mut cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if request.is_tls {
        cookie.push_str("; Secure");
    }
    redirect("/login", Some(cookie))
}

/// What a caller who is not signed in gets: a page is sent to the sign-in form (and back after it); the JSON
/// download, read by scripts, gets 401 and how to authenticate.
pub fn needed(request: &Request) -> Response {
    if request.path.ends_with("/messages.json") {
        return unauthorized("unauthorized: sign in to the console, or send `Authorization: Bearer TOKEN`");
    }
    let target = if request.query.is_empty() || request.method == "POST" {
        request.path.clone()
    } else {
        format!("{}?{}", request.path, request.query)
    };
    redirect(&format!("/login?next={}", url_encode(&target)), None)
}

/// A 303 to `location` (a path of this console), setting `cookie` if given.
fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut headers = vec![("location", location.to_string()), ("cache-control", "no-store".to_string())];
    if let Some(cookie) = cookie {
        headers.push(("set-cookie", cookie));
    }
    Response { status: 303, content_type: "text/plain; charset=utf-8", headers, body: b"see other\n".to_vec() }
}

/// `next` if it is a path of this console, else `/`: a sign-in link must not send the user to another site
/// (`//evil.example` and `/\evil.example` are other sites to a browser).
pub fn safe_next(next: &str) -> &str {
    let is_local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.bytes().any(|b| b.is_ascii_control())
        && next != "/login";
    if is_local {
        next
    } else {
        "/"
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/topics/orders?x=1"), "/topics/orders?x=1");
        for elsewhere in ["//evil.example/", "https://evil.example", "/\\evil.example", "evil", "/a\r\nx: y", ""] {
            assert_eq!(safe_next(elsewhere), "/", "{elsewhere:?}");
        }
    }
}
