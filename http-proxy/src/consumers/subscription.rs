//! `POST .../subscription`: topics by name, or a `topic_pattern` (a regular expression a whole topic name must
//! match, as Kafka's consumers take one). A pattern is matched against the topics when given and again, at a
//! `records` request, every `metadata.max.age.ms` of the instance (10 s by default): when the matching topics change, the instance's consumer leaves
//! its group and joins again subscribed to the new set (committing first with `auto.commit.enable`), as a Kafka
//! consumer's subscription follows its pattern when topics come and go.

use std::time::Instant;

use regex::Regex;
use rill_client::{Admin, Client};
use serde_json::{json, Value};

use super::ConsumerInstance;
use crate::error::ApiError;
use crate::server::ApiResponse;

/// Largest compiled pattern: a pattern is the caller's input.
const MAX_PATTERN_BYTES: usize = 1 << 20;

pub(super) struct TopicPattern {
    text: String,
    regex: Regex,
    matched_at: Instant,
}

pub(super) async fn subscribe(instance: &mut ConsumerInstance, body: &Value) -> Result<ApiResponse, ApiError> {
    let (topics, pattern) = match (body.get("topics"), body.get("topic_pattern")) {
        (Some(_), Some(_)) => return Err(ApiError::unprocessable("give \"topics\" or \"topic_pattern\", not both")),
        (Some(Value::Array(topics)), None) if !topics.is_empty() => {
            let topics = topics
                .iter()
                .map(|t| t.as_str().filter(|t| !t.is_empty()).map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| ApiError::unprocessable("\"topics\" holds topic names (non-empty strings)"))?;
            (topics, None)
        }
        (None, Some(Value::String(text))) => {
            let regex =
                regex::RegexBuilder::new(&format!("^(?:{text})$")).size_limit(MAX_PATTERN_BYTES).build().map_err(
                    |err| ApiError::unprocessable(format!("topic_pattern {text:?} is not a regular expression: {err}")),
                )?;
            (Vec::new(), Some(TopicPattern { text: text.clone(), regex, matched_at: Instant::now() }))
        }
        _ => {
            return Err(ApiError::unprocessable(
                "the body is {\"topics\": [\"name\", ...]} with at least one topic, or {\"topic_pattern\": \"REGEX\"}",
            ))
        }
    };
    if !instance.is_subscribed() && !instance.consumer.assignment().is_empty() {
        return Err(ApiError::illegal_state(
            "this instance reads partitions assigned by hand: POST assignments with no partitions before subscribing",
        ));
    }
    if instance.is_subscribed() {
        instance.renew_consumer().await?;
    }
    let topics = match &pattern {
        Some(pattern) => matching(instance.client.clone(), &pattern.regex).await?,
        None => topics,
    };
    instance.pattern = pattern;
    join(instance, topics)
}

/// `GET .../subscription`: the topics (for a pattern, those it matched last), and the pattern.
pub(super) fn describe(instance: &ConsumerInstance) -> Value {
    match &instance.pattern {
        Some(pattern) => json!({ "topics": instance.subscription, "topic_pattern": pattern.text }),
        None => json!({ "topics": instance.subscription }),
    }
}

/// Before a `records` request: matches a pattern subscription against the topics again if it is due, and
/// follows a change.
pub(super) async fn follow_pattern(instance: &mut ConsumerInstance) -> Result<(), ApiError> {
    let Some(pattern) = &instance.pattern else { return Ok(()) };
    if pattern.matched_at.elapsed() < instance.metadata_max_age {
        return Ok(());
    }
    let regex = pattern.regex.clone();
    let topics = matching(instance.client.clone(), &regex).await?;
    if let Some(pattern) = &mut instance.pattern {
        pattern.matched_at = Instant::now();
    }
    if topics == instance.subscription {
        return Ok(());
    }
    tracing::info!(group = %instance.group, ?topics, "topic_pattern matches other topics now: joining again");
    let pattern = instance.pattern.take();
    instance.renew_consumer().await?;
    instance.pattern = pattern;
    join(instance, topics).map(|_| ())
}

/// The topics whose whole name `regex` matches, sorted.
async fn matching(client: Client, regex: &Regex) -> Result<Vec<String>, ApiError> {
    let topics = Admin::new(client).list_topics().await.map_err(|e| ApiError::from_client(&e))?;
    let mut names: Vec<String> = topics.into_iter().map(|t| t.name).filter(|name| regex.is_match(name)).collect();
    names.sort();
    Ok(names)
}

/// Subscribes the consumer to `topics` (none: stays out of the group until a pattern matches some).
fn join(instance: &mut ConsumerInstance, topics: Vec<String>) -> Result<ApiResponse, ApiError> {
    if !topics.is_empty() {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let group = instance.group.clone();
        instance.consumer.subscribe(&group, &names).map_err(|e| ApiError::from_client(&e))?;
    }
    instance.subscription = topics;
    Ok(ApiResponse::NoContent)
}
