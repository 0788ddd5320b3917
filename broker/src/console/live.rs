//! Pages that refresh themselves without a script: the Overview, a topic's page and a group's page carry
//! `<meta http-equiv="refresh" content="N">`, so the browser reloads the same address (query included) every N
//! seconds with a GET. The Content-Security-Policy still forbids every script; a meta refresh is a navigation,
//! which it does not govern.
//!
//! Invariants:
//! - Only pages without a form the user fills are live: a reload would throw away what was typed. The message
//!   browser, produce, create, delete, reset and sign-in pages never carry the tag, and neither does an error.
//! - The interval is bounded ([`INTERVAL_S_MIN`] to [`INTERVAL_S_MAX`]); a value outside is refused with a page
//!   saying what is allowed, never clamped silently.

use super::html::{Form, Html};

/// The default: the throughput and lag samplers take a point every 5 s, so a faster refresh would show the
/// same figures again, and a slower one would let a sample go by unseen.
pub const INTERVAL_S_DEFAULT: u32 = 5;
/// Below this a tab left open costs the broker more than it shows (each reload lists every topic).
pub const INTERVAL_S_MIN: u32 = 2;
/// Above this the page is no longer "live"; reload by hand instead.
pub const INTERVAL_S_MAX: u32 = 300;

/// Whether a live page reloads itself, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    Every { seconds: u32 },
    Off,
}

impl Live {
    /// The `live` query parameter: absent is the default, `0` or `off` turns it off, else seconds.
    pub fn from_query(query: &Form) -> Result<Self, String> {
        let Some(text) = query.get("live") else { return Ok(Self::Every { seconds: INTERVAL_S_DEFAULT }) };
        let refusal = || {
            format!(
                "live {text:?} is not 0 (off) or a refresh interval in whole seconds from {INTERVAL_S_MIN} to \
                 {INTERVAL_S_MAX}"
            )
        };
        match text.trim() {
            "0" | "off" => Ok(Self::Off),
            seconds => match seconds.parse::<u32>() {
                Ok(seconds) if (INTERVAL_S_MIN..=INTERVAL_S_MAX).contains(&seconds) => Ok(Self::Every { seconds }),
                _ => Err(refusal()),
            },
        }
    }

    /// The seconds a page's meta refresh waits, `None` when off.
    pub fn interval_s(self) -> Option<u32> {
        match self {
            Self::Every { seconds } => Some(seconds),
            Self::Off => None,
        }
    }

    /// The visible switch: "Live: on, every 5 s · off" with the other state as a link to `path` (already
    /// URL-encoded: the page's own address without its query, which these pages do not take besides `live`).
    pub fn control(self, body: &mut Html, path: &str) {
        body.raw("<p class=\"live\" id=\"live\">Live: ");
        match self {
            Self::Every { seconds } => {
                body.raw("<b>on</b>, every ").text(seconds).raw(" s · ");
                body.link(&format!("{path}?live=0"), "off");
            }
            Self::Off => {
                body.link(&format!("{path}?live={INTERVAL_S_DEFAULT}"), "on");
                body.raw(" · <b>off</b>");
            }
        }
        body.raw("</p>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_the_default_off_or_within_its_bounds() {
        let live = |query: &str| Live::from_query(&Form::parse(query));
        assert_eq!(live(""), Ok(Live::Every { seconds: INTERVAL_S_DEFAULT }));
        assert_eq!(live("live="), Ok(Live::Every { seconds: INTERVAL_S_DEFAULT }), "an empty field is not given");
        assert_eq!(live("live=0"), Ok(Live::Off));
        assert_eq!(live("live=off"), Ok(Live::Off));
        assert_eq!(live("live=2"), Ok(Live::Every { seconds: 2 }));
        assert_eq!(live("live=300"), Ok(Live::Every { seconds: 300 }));
        for bad in ["live=1", "live=301", "live=-5", "live=5.5", "live=fast", "live=99999999999999999999"] {
            let refusal = live(bad).expect_err(bad);
            assert!(refusal.contains("from 2 to 300"), "{bad}: {refusal}");
        }
    }

    #[test]
    fn the_control_links_to_the_other_state() {
        let mut on = Html::new();
        Live::Every { seconds: 5 }.control(&mut on, "/topics/a%20b");
        let on = on.into_string();
        assert!(on.contains("<b>on</b>, every 5 s") && on.contains("href=\"/topics/a%20b?live=0\""), "{on}");
        let mut off = Html::new();
        Live::Off.control(&mut off, "/");
        let off = off.into_string();
        assert!(off.contains("href=\"/?live=5\"") && off.contains("<b>off</b>"), "{off}");
    }
}
