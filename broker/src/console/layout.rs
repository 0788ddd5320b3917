//! The frame every console page shares (head, navigation, stylesheet, security headers), forms with the CSRF
//! token, and how numbers, sizes, durations and times are written.

use super::html::Html;
use super::live::Live;
use crate::auth::Principal;
use crate::metrics::admin_http::Response;

/// No script at all, styles only from the console's own stylesheet, forms only to itself, never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How the caller of a page authenticated, as its frame shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedIn {
    /// Nobody (authentication off): the frame shows no user, as before sign-in existed.
    No,
    /// Nobody yet, and sign-in is required: the frame offers no page but the sign-in form.
    NotYet,
    /// A bearer token: the user is shown, with nothing to sign out of.
    ByToken,
    /// A console session: the user is shown with a "Sign out" button.
    BySession,
}

/// What a page needs to write its frame and forms, and to act as its caller.
#[derive(Clone, Copy)]
pub struct Page<'a> {
    /// The caller's session's token, or with authentication off the process's.
    pub csrf_token: &'a str,
    pub is_read_only: bool,
    /// Who the page acts as: every call to the service carries it ([`Page::request`]).
    pub principal: &'a Principal,
    pub signed_in: SignedIn,
}

impl Page<'_> {
    /// A request to the gRPC service's handlers made as this page's principal, as the same call over gRPC
    /// with the caller's token would be: whatever the service checks of a principal applies to the console too.
    pub fn request<T>(self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.extensions_mut().insert(self.principal.clone());
        request
    }

    /// A whole page: `title` (escaped) over `body`.
    pub fn render(self, status: u16, title: &str, body: Html) -> Response {
        self.render_live(status, title, body, Live::Off)
    }

    /// [`Page::render`] for a page of live figures: with `live` on, the browser reloads it (a GET of the same
    /// address) every so many seconds.
    pub fn render_live(self, status: u16, title: &str, body: Html, live: Live) -> Response {
        let mut html = Html::new();
        html.raw("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
            .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        if let Some(seconds) = live.interval_s() {
            html.raw("<meta http-equiv=\"refresh\" content=\"").text(seconds).raw("\">");
        }
        html.raw("<title>")
            .text(title)
            .raw(" · rill</title><link rel=\"stylesheet\" href=\"/console.css\"></head><body>")
            .raw("<nav><a class=\"brand\" href=\"/\">rill</a>");
        if self.signed_in == SignedIn::NotYet {
            html.raw("</nav><main><h1>").text(title).raw("</h1>").fragment(body).raw("</main></body></html>\n");
            return self.response(status, html);
        }
        html.raw("<a href=\"/\">Overview</a><a href=\"/topics\">Topics</a><a href=\"/groups\">Consumer groups</a>")
            .raw("<a href=\"/schemas\">Schemas</a><a href=\"/clients\">Clients</a><a href=\"/users\">Users</a>")
            .raw("<a href=\"/acls\">ACLs</a><a href=\"/quotas\">Quotas</a>");
        if !self.is_read_only {
            html.raw("<a href=\"/create-topic\">Create topic</a>");
        } else {
            html.raw("<span class=\"badge\">read-only</span>");
        }
        if matches!(self.signed_in, SignedIn::ByToken | SignedIn::BySession) {
            html.raw("<span class=\"who\" id=\"principal\">").text(self.principal).raw("</span>");
        }
        if self.signed_in == SignedIn::BySession {
            self.form_open(&mut html, "/logout");
            html.raw("<button class=\"signout\">Sign out</button></form>");
        }
        html.raw("</nav><main><h1>").text(title).raw("</h1>").fragment(body).raw("</main></body></html>\n");
        self.response(status, html)
    }

    fn response(self, status: u16, html: Html) -> Response {
        Response {
            status,
            content_type: "text/html; charset=utf-8",
            headers: vec![
                ("content-security-policy", CONTENT_SECURITY_POLICY.to_string()),
                ("x-content-type-options", "nosniff".to_string()),
                ("referrer-policy", "same-origin".to_string()),
                ("cache-control", "no-store".to_string()),
            ],
            body: html.into_string().into_bytes(),
        }
    }

    /// A page saying what went wrong and, in `detail`, what is allowed.
    pub fn error(self, status: u16, title: &str, detail: &str) -> Response {
        let mut body = Html::new();
        body.raw("<p class=\"error\" role=\"alert\">").text(detail).raw("</p>");
        body.raw("<p><a href=\"/\">Overview</a> · <a href=\"/topics\">Topics</a> · <a href=\"/groups\">Consumer groups</a></p>");
        self.render(status, title, body)
    }

    /// Opens a POST form to `action` carrying the CSRF token; the caller closes it with `</form>`.
    pub fn form_open(self, html: &mut Html, action: &str) {
        html.raw("<form method=\"post\" action=\"")
            .text(action)
            .raw("\"><input type=\"hidden\" name=\"csrf\" value=\"")
            .text(self.csrf_token)
            .raw("\">");
    }
}

/// Adds a hidden field (both escaped).
pub fn hidden(html: &mut Html, name: &str, value: &str) {
    html.raw("<input type=\"hidden\" name=\"").text(name).raw("\" value=\"").text(value).raw("\">");
}

/// `1234567` as `1,234,567`.
pub fn count(value: impl Into<i128>) -> String {
    let value: i128 = value.into();
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Bytes in binary units: `1.5 MiB`.
pub fn bytes(value: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut scaled = value as f64;
    let mut unit = 0;
    while scaled >= 1024.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} B")
    } else {
        format!("{scaled:.1} {}", UNITS[unit])
    }
}

/// A retention or interval: `7 d`, `12 h`, `30 s`; `None` is `forever`.
pub fn duration_ms(value: Option<u64>) -> String {
    match value {
        None | Some(u64::MAX) => "forever".to_string(),
        Some(ms) if ms % 86_400_000 == 0 && ms > 0 => format!("{} d", ms / 86_400_000),
        Some(ms) if ms % 3_600_000 == 0 && ms > 0 => format!("{} h", ms / 3_600_000),
        Some(ms) if ms % 60_000 == 0 && ms > 0 => format!("{} min", ms / 60_000),
        Some(ms) if ms % 1_000 == 0 && ms > 0 => format!("{} s", ms / 1_000),
        Some(ms) => format!("{ms} ms"),
    }
}

/// Milliseconds since the Unix epoch as `2024-05-01 12:34:56.789Z` (UTC).
pub fn timestamp(ms: i64) -> String {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1_000 % 60, ms_of_day % 1_000);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}.{milli:03}Z")
}

/// `2024-05-01T12:34[:56[.789]][Z]` (a `datetime-local` input, taken as UTC) or plain epoch milliseconds.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let text = text.trim_end_matches('Z');
    let (date, time) = text.split_once(['T', ' '])?;
    let mut date_parts = date.split('-').map(str::parse::<i64>);
    let (year, month, day) = (date_parts.next()?.ok()?, date_parts.next()?.ok()?, date_parts.next()?.ok()?);
    let (hms, milli) = time.split_once('.').unwrap_or((time, "0"));
    let mut time_parts = hms.split(':').map(str::parse::<i64>);
    let (h, m) = (time_parts.next()?.ok()?, time_parts.next()?.ok()?);
    let s = time_parts.next().transpose().ok()?.unwrap_or(0);
    let milli: i64 = format!("{milli:0<3}").get(..3)?.parse().ok()?;
    let valid = (1..=12).contains(&month) && (1..=31).contains(&day) && h < 24 && m < 60 && s < 61;
    valid.then(|| days_from_civil(year, month, day) * 86_400_000 + h * 3_600_000 + m * 60_000 + s * 1_000 + milli)
}

// Howard Hinnant's algorithms (chrono-compatible, proleptic Gregorian), to keep a date crate out for two
// conversions.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pages_service_request_carries_its_principal_and_its_frame_names_it() {
        let alice = Principal::User("alice".into());
        let page = Page { csrf_token: "t", is_read_only: false, principal: &alice, signed_in: SignedIn::BySession };
        let request = page.request(());
        assert_eq!(request.extensions().get::<Principal>(), Some(&alice), "the service sees who calls");
        let shown = String::from_utf8(page.render(200, "x", Html::new()).body).expect("utf-8");
        assert!(shown.contains(">User:alice</span>") && shown.contains("action=\"/logout\""), "{shown}");
        let gate = Page { signed_in: SignedIn::NotYet, principal: &Principal::Anonymous, ..page };
        let shown = String::from_utf8(gate.render(401, "Sign in", Html::new()).body).expect("utf-8");
        assert!(!shown.contains("/topics") && !shown.contains("User:"), "nothing but the form: {shown}");
    }

    #[test]
    fn times_are_written_and_read_in_utc() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(timestamp(1_714_566_896_789), "2024-05-01 12:34:56.789Z");
        assert_eq!(parse_timestamp("2024-05-01T12:34:56.789Z"), Some(1_714_566_896_789));
        assert_eq!(parse_timestamp("2024-05-01T12:34"), Some(1_714_566_840_000));
        assert_eq!(parse_timestamp("1714566896789"), Some(1_714_566_896_789));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2024-13-01T00:00"), None);
    }

    #[test]
    fn figures_are_written_for_people() {
        assert_eq!(count(1_234_567u32), "1,234,567");
        assert_eq!(count(-1_000i64), "-1,000");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(duration_ms(Some(7 * 86_400_000)), "7 d");
        assert_eq!(duration_ms(None), "forever");
    }
}
