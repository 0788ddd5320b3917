//! Markup that is XSS-safe by construction: [`Html`] takes markup only as `&'static str` (written in this
//! crate's source) and everything else through [`Html::text`], which escapes it. A topic name, a group id, a
//! key, a value or a header can therefore never become markup, whatever bytes it holds.

use std::fmt::{Display, Write};

/// An HTML fragment being written.
#[derive(Debug, Default)]
pub struct Html(String);

impl Html {
    pub fn new() -> Self {
        Self(String::with_capacity(16 << 10))
    }

    /// Markup from this crate's source: the `'static` bound keeps data out.
    pub fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// Any value, escaped for both element content and quoted attribute values.
    pub fn text(&mut self, value: impl Display) -> &mut Self {
        let mut plain = String::new();
        let _ = write!(plain, "{value}");
        escape_into(&plain, &mut self.0);
        self
    }

    /// A number with one decimal (digits, a sign and a point: nothing to escape), for SVG geometry.
    pub fn number(&mut self, value: f64) -> &mut Self {
        let _ = write!(self.0, "{:.1}", if value.is_finite() { value } else { 0.0 });
        self
    }

    /// A whole fragment written by another `Html`.
    pub fn fragment(&mut self, other: Html) -> &mut Self {
        self.0.push_str(&other.0);
        self
    }

    /// `<a href="{href}">{label}</a>`, both escaped.
    pub fn link(&mut self, href: &str, label: impl Display) -> &mut Self {
        self.raw("<a href=\"").text(href).raw("\">").text(label).raw("</a>")
    }

    /// `<td>{value}</td>`.
    pub fn cell(&mut self, value: impl Display) -> &mut Self {
        self.raw("<td>").text(value).raw("</td>")
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The one escaping function: `&`, `<`, `>`, `"` and `'` become character references.
pub fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `text` as one URL path segment or query value: everything but unreserved characters percent-encoded.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

/// Decodes a percent-encoded path segment or form value (`+` is a space in forms only).
pub fn url_decode(text: &str, is_form: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'%' if at + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[at + 1..at + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        at += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if is_form => out.push(b' '),
            byte => out.push(byte),
        }
        at += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The fields of a query string or an `application/x-www-form-urlencoded` body.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(encoded: &str) -> Self {
        Self(
            encoded
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (url_decode(name, true), url_decode(value, true))
                })
                .collect(),
        )
    }

    /// The field's value, `None` when absent or empty (an empty form input means "not given").
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// Every field in the order sent, empty ones included.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The field parsed as `T`, or a message naming the field and what it accepts.
    pub fn number<T: std::str::FromStr>(&self, name: &str, accepts: &str) -> Result<Option<T>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| format!("{name} {text:?} is not {accepts}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_markup_character_of_data_is_escaped() {
        let mut html = Html::new();
        html.raw("<p title=\"").text("\"><script>alert('x')</script>&").raw("\">");
        assert_eq!(html.into_string(), "<p title=\"&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;\">");
    }

    #[test]
    fn url_encoding_round_trips_any_text() {
        for text in ["plain", "a b+c/d?e&f=g", "<script>", "ünï", "%zz", "100%"] {
            assert_eq!(url_decode(&url_encode(text), false), text);
        }
        assert_eq!(url_decode("a+b%20c%2", true), "a b c%2");
        let form = Form::parse("name=a%26b&partitions=3&empty=");
        assert_eq!(form.get("name"), Some("a&b"));
        assert_eq!(form.number::<u32>("partitions", "a count"), Ok(Some(3)));
        assert_eq!(form.get("empty"), None);
        assert!(form.number::<u32>("name", "a count").is_err());
    }
}
