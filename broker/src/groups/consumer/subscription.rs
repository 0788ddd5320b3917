//! What a KIP-848 member subscribes to: topic names, a regular expression, or both (librdkafka sends the names
//! and the regexes of one `subscribe` call side by side). The broker resolves the regex against the topics that
//! exist at each heartbeat, so a topic created later joins the member's subscription within a heartbeat, as in
//! Kafka. Internal topics (`__` names) never match.

use std::collections::BTreeSet;
use std::fmt;

/// The longest regex accepted, and the most memory its compiled form may take: a subscription is checked at
/// every heartbeat, so a pathological one must be refused, not evaluated.
pub const MAX_REGEX_BYTES: usize = 1024;
const MAX_COMPILED_BYTES: usize = 1 << 20;

/// A member's subscription as it asked for it; `Group` keeps only the resolved topic set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerSubscription {
    pub names: BTreeSet<String>,
    pub regex: Option<TopicRegex>,
}

impl ConsumerSubscription {
    /// The topics this subscription stands for among `existing`.
    pub fn resolve<'a>(&self, existing: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut topics = self.names.clone();
        if let Some(regex) = &self.regex {
            topics.extend(existing.into_iter().filter(|t| regex.matches(t)).map(str::to_owned));
        }
        topics
    }
}

/// A subscription regex, matched against whole topic names (Java's `Matcher::matches`, which Kafka uses).
#[derive(Clone)]
pub struct TopicRegex {
    source: String,
    whole: regex::Regex,
}

impl TopicRegex {
    /// Compiles `source`; the error says what is wrong and what is allowed.
    pub fn new(source: &str) -> Result<TopicRegex, String> {
        if source.len() > MAX_REGEX_BYTES {
            return Err(format!("subscription regex is {} bytes; at most {MAX_REGEX_BYTES} are allowed", source.len()));
        }
        let whole = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(MAX_COMPILED_BYTES)
            .build()
            .map_err(|err| format!("subscription regex {source:?} is not a valid RE2 regular expression: {err}"))?;
        Ok(TopicRegex { source: source.to_owned(), whole })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, topic: &str) -> bool {
        !topic.starts_with("__") && self.whole.is_match(topic)
    }
}

impl PartialEq for TopicRegex {
    fn eq(&self, other: &TopicRegex) -> bool {
        self.source == other.source
    }
}

impl Eq for TopicRegex {}

impl fmt::Debug for TopicRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicRegex({:?})", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regex_matches_whole_names_and_never_internal_topics() {
        let regex = TopicRegex::new("^orders-.*").expect("compiles");
        assert!(regex.matches("orders-eu"));
        assert!(!regex.matches("old-orders-eu"), "anchored at the start");
        let exact = TopicRegex::new("orders|payments").expect("compiles");
        assert!(exact.matches("orders") && exact.matches("payments"));
        assert!(!exact.matches("orders-eu"), "a whole-name match, as Java's matches()");
        assert!(!TopicRegex::new(".*").expect("compiles").matches("__consumer_offsets"));
    }

    #[test]
    fn a_subscription_is_its_names_and_what_its_regex_matches() {
        let subscription = ConsumerSubscription {
            names: ["audit".to_string()].into(),
            regex: Some(TopicRegex::new("^orders-.*").expect("compiles")),
        };
        let existing = ["orders-eu", "orders-us", "payments", "__consumer_offsets"];
        let expected: BTreeSet<String> = ["audit", "orders-eu", "orders-us"].map(String::from).into();
        assert_eq!(subscription.resolve(existing), expected);
    }

    #[test]
    fn a_bad_or_oversized_regex_is_refused_saying_why() {
        let unclosed = TopicRegex::new("^(orders").unwrap_err();
        assert!(unclosed.contains("\"^(orders\"") && unclosed.contains("not a valid RE2"), "{unclosed}");
        let long = TopicRegex::new(&"a".repeat(MAX_REGEX_BYTES + 1)).unwrap_err();
        assert!(long.contains("at most 1024"), "{long}");
        let huge = TopicRegex::new("(\\w{100}){100}").unwrap_err();
        assert!(huge.contains("not a valid RE2"), "{huge}");
    }
}
