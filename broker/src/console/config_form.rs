//! The form a page of configs shares (a topic's settings, the cluster's topic defaults): a table of keys with
//! their values and sources, an input to give each a new value and a box to put it back to its default, the
//! changes a submitted form asks for, and the "now → after" table of the confirmation carrying them on.

use super::html::{Form, Html};
use super::layout::hidden;

/// A field giving a key a new value (`set.retention.ms=3600000`; empty: unchanged).
const SET_PREFIX: &str = "set.";
/// A field putting a key back to its default (`reset.retention.ms=yes`).
const RESET_PREFIX: &str = "reset.";

/// One key of the table.
pub struct Row<'a> {
    pub key: &'a str,
    pub value: &'a str,
    /// Where the value comes from, as the page words it.
    pub source: &'static str,
    pub can_set: bool,
    /// Whether the key holds a value of its own that can go back to the default.
    pub can_reset: bool,
}

/// The table `id` of `rows`; with `has_inputs` (a console that may change things), inside a form the caller
/// opened, with each row's input and box and the "Review" button, and the form closed.
pub fn table(body: &mut Html, id: &'static str, rows: &[Row<'_>], has_inputs: bool) {
    body.raw("<table id=\"").raw(id).raw("\"><tr><th>setting</th><th>value</th><th>from</th>");
    if has_inputs {
        body.raw("<th>new value</th><th>back to the default</th>");
    }
    body.raw("</tr>");
    for row in rows {
        body.raw("<tr><td><code>").text(row.key).raw("</code></td>").cell(row.value).cell(row.source);
        if has_inputs {
            body.raw("<td>");
            if row.can_set {
                body.raw("<input name=\"").text(format!("{SET_PREFIX}{}", row.key)).raw("\" placeholder=\"");
                body.raw("unchanged\" aria-label=\"").text(format!("new {}", row.key)).raw("\">");
            }
            body.raw("</td><td>");
            if row.can_reset {
                body.raw("<input type=\"checkbox\" value=\"yes\" name=\"").text(format!("{RESET_PREFIX}{}", row.key));
                body.raw("\" aria-label=\"").text(format!("{} back to the default", row.key)).raw("\">");
            }
            body.raw("</td>");
        }
        body.raw("</tr>");
    }
    body.raw("</table>");
    if has_inputs {
        body.raw("<p><button id=\"review\">Review the changes…</button></p></form>");
    }
}

/// A change a form asks for: a key and its new value, or `None` to put it back to the default.
pub type Asked = (String, Option<String>);

/// The changes a submitted form asks for, in the form's order, each key `known` (else the refusal names it and
/// `what_is_known`), none twice, at least one; or what is wrong with it.
pub fn asked(form: &Form, known: impl Fn(&str) -> bool, what_is_known: &str) -> Result<Vec<Asked>, String> {
    let mut changes: Vec<Asked> = Vec::new();
    for (field, value) in form.fields() {
        let (key, value) = if let Some(key) = field.strip_prefix(SET_PREFIX) {
            match value.trim() {
                "" => continue,
                value => (key, Some(value.to_owned())),
            }
        } else if let Some(key) = field.strip_prefix(RESET_PREFIX) {
            match value {
                "yes" => (key, None),
                _ => return Err(format!("{field} is \"yes\" or absent, not {value:?}")),
            }
        } else {
            continue;
        };
        if !known(key) {
            return Err(format!("{key:?} is not a setting that can change here; those that can are {what_is_known}"));
        }
        if changes.iter().any(|(named, _)| named == key) {
            return Err(format!("{key} is named twice: give it a new value or put it back to the default, not both"));
        }
        changes.push((key.to_owned(), value));
    }
    if changes.is_empty() {
        return Err("nothing to change: give a setting a new value, or tick one to put back to the default".into());
    }
    Ok(changes)
}

/// The confirmation's table of `changes` (each key's value `now` and after), and their fields for the form the
/// caller opened, which it closes.
pub fn confirmation(body: &mut Html, changes: &[Asked], now: impl Fn(&str) -> Option<String>) {
    body.raw("<table id=\"changes\"><tr><th>setting</th><th>now</th><th>after</th></tr>");
    for (key, value) in changes {
        body.raw("<tr><td><code>").text(key).raw("</code></td>").cell(now(key).unwrap_or_default());
        body.cell(value.as_deref().unwrap_or("the default")).raw("</tr>");
    }
    body.raw("</table>");
}

/// The hidden fields carrying `changes` on to the confirmed form.
pub fn carry(body: &mut Html, changes: &[Asked]) {
    for (key, value) in changes {
        match value {
            Some(value) => hidden(body, &format!("{SET_PREFIX}{key}"), value),
            None => hidden(body, &format!("{RESET_PREFIX}{key}"), "yes"),
        }
    }
    hidden(body, "confirm", "yes");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked_of(encoded: &str) -> Result<Vec<Asked>, String> {
        asked(
            &Form::parse(encoded),
            |key| ["retention.ms", "cleanup.policy", "compression.type"].contains(&key),
            "A, B",
        )
    }

    #[test]
    fn a_form_sets_the_keys_given_and_resets_those_ticked() {
        let asked =
            asked_of("csrf=x&set.retention.ms=3600000&set.compression.type=&reset.cleanup.policy=yes&confirm=yes");
        let expected =
            vec![("retention.ms".to_owned(), Some("3600000".to_owned())), ("cleanup.policy".to_owned(), None)];
        assert_eq!(asked, Ok(expected), "an empty input is unchanged");
        let spaced = asked_of("set.compression.type=+zstd+");
        assert_eq!(spaced, Ok(vec![("compression.type".to_owned(), Some("zstd".to_owned()))]));
    }

    #[test]
    fn a_form_that_asks_nothing_twice_or_unknown_is_refused_saying_why() {
        let nothing = asked_of("csrf=x&set.retention.ms=").expect_err("nothing");
        assert!(nothing.starts_with("nothing to change"), "{nothing}");
        let twice = asked_of("set.retention.ms=1&reset.retention.ms=yes").expect_err("both");
        assert!(twice.contains("retention.ms is named twice"), "{twice}");
        let unknown = asked_of("set.num.partitions=3").expect_err("unknown");
        assert!(unknown.contains("\"num.partitions\" is not a setting") && unknown.ends_with("are A, B"), "{unknown}");
        let odd = asked_of("reset.retention.ms=on").expect_err("not yes");
        assert!(odd.contains("reset.retention.ms is \"yes\" or absent"), "{odd}");
    }
}
