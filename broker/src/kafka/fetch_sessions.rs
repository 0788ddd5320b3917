//! Fetch sessions (Kafka's KIP-227, Fetch v7+): a consumer that fetches many partitions names them once, and each
//! later fetch carries only what changed (a partition whose fetch offset moved, one added, those forgotten); the
//! answer carries only the partitions with something to say (records, an error, a moved high watermark, last
//! stable offset or log start, a diverging epoch, another replica to read from). An idle consumer of a thousand
//! partitions then sends and receives a few bytes per fetch instead of a thousand entries each way.
//!
//! The protocol, by the request's `(session_id, session_epoch)`:
//! - `(0, -1)`: no session, a full fetch (what clients without sessions send, and every Fetch below v7).
//! - `(0, 0)`: a full fetch that opens a session: the answer names the new session's id and carries every
//!   partition. With no room for one more session, the answer's id is 0 and the client goes on with full
//!   fetches, as against a Kafka broker whose cache is full.
//! - `(id, 0)`: closes session `id` and opens a new one, as above.
//! - `(id, -1)`: closes session `id`; a full fetch without a session.
//! - `(id, n)`, n > 0: an incremental fetch of session `id`, which must expect epoch `n` (it expects 1 after
//!   opening, and one more after each fetch, 1 again after `i32::MAX`). An unknown id, or a session another
//!   principal opened, is FETCH_SESSION_ID_NOT_FOUND (70); another epoch INVALID_FETCH_SESSION_EPOCH (71):
//!   the client then opens a new session with a full fetch.
//!
//! From Fetch v13 topics are named by id (KIP-516), and a session keeps each partition under its topic's id as
//! well as its name: a topic deleted and created again under the same name is another topic to the session, and
//! the old one's partitions, still in the session until the client forgets them, are answered UNKNOWN_TOPIC_ID
//! (the caller checks each id against the topic its name holds now), never read from the new topic. A forgotten
//! topic whose id names no topic any more is forgotten by its id.
//!
//! Bounded: at most [`MAX_SESSIONS`] sessions (Kafka's `max.incremental.fetch.session.cache.slots`) of at most
//! [`MAX_SESSION_PARTITIONS`] partitions each; when full, a session unused for [`EVICTABLE_AFTER`] (Kafka's
//! two minutes) gives its place to a new one, the least recently used first, and a session that was evicted is
//! FETCH_SESSION_ID_NOT_FOUND at its next fetch. Sessions live in memory, one cache for the node's Kafka listeners
//! (`Node::fetch_sessions`); a restarted broker knows none, and its clients open new ones.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::{EpochEndOffset, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;

use crate::auth::Principal;

/// Sessions the node keeps at most (Kafka's `max.incremental.fetch.session.cache.slots` default).
pub const MAX_SESSIONS: usize = 1_000;
/// Partitions one session holds at most; a full fetch naming more is served without a session.
pub const MAX_SESSION_PARTITIONS: usize = 10_000;
/// How long a session must go unused before a new one may take its place.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(120);

/// What a request asks of a partition, as its session keeps it between fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    fetch_offset: i64,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    log_start_offset: i64,
    partition_max_bytes: i32,
}

impl Wanted {
    fn of(asked: &FetchPartition) -> Wanted {
        Wanted {
            fetch_offset: asked.fetch_offset,
            current_leader_epoch: asked.current_leader_epoch,
            last_fetched_epoch: asked.last_fetched_epoch,
            log_start_offset: asked.log_start_offset,
            partition_max_bytes: asked.partition_max_bytes,
        }
    }
}

/// The bounds a session's answer last told the client of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Told {
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

#[derive(Debug)]
struct CachedPartition {
    wanted: Wanted,
    told: Option<Told>,
}

/// A session's partition: its topic's id (nil below Fetch v13, where topics go by name alone), its topic's name,
/// and its index.
type PartitionKey = (Uuid, String, i32);

#[derive(Debug)]
struct Session {
    /// The epoch the next incremental fetch must carry.
    next_epoch: i32,
    principal: Principal,
    /// By topic id, name and partition index: a topic's partitions together, in the order a full answer lists them.
    partitions: BTreeMap<PartitionKey, CachedPartition>,
    last_used: Instant,
}

/// How a request is served, as its session fields decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Without a session: the answer carries every partition asked, and session id 0.
    Sessionless,
    /// A full fetch that opened session `id`: the answer carries every partition, and the id.
    Opened(i32),
    /// An incremental fetch of session `id`, whose partitions the request now names: the answer carries only the
    /// partitions with something to say.
    Incremental(i32),
}

impl Served {
    pub fn session_id(self) -> i32 {
        match self {
            Served::Sessionless => 0,
            Served::Opened(id) | Served::Incremental(id) => id,
        }
    }
}

/// A refused request: its top-level code and why.
pub type Refused = (i16, String);

/// The node's fetch sessions.
#[derive(Debug, Default)]
pub struct FetchSessions {
    sessions: Mutex<HashMap<i32, Session>>,
}

impl FetchSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Session>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decides how `request` (Fetch v7+) is served; an incremental one's `topics` become every partition of its
    /// session, with the fetch offsets and limits the session keeps, so it is read as a full one would be.
    pub fn open(&self, request: &mut FetchRequest, principal: &Principal, now: Instant) -> Result<Served, Refused> {
        let (id, epoch) = (request.session_id, request.session_epoch);
        let mut sessions = self.lock();
        match epoch {
            -1 => {
                if id != 0 {
                    sessions.remove(&id);
                }
                Ok(Served::Sessionless)
            }
            0 => {
                if id != 0 {
                    sessions.remove(&id);
                }
                Ok(open_session(&mut sessions, request, principal, now))
            }
            epoch if epoch < -1 => Err((
                ResponseError::InvalidFetchSessionEpoch.code(),
                format!("session epoch {epoch} is not allowed: -1 (no session), 0 (open one), or the session's next"),
            )),
            epoch => {
                let Some(session) = sessions.get_mut(&id).filter(|session| session.principal == *principal) else {
                    return Err((
                        ResponseError::FetchSessionIdNotFound.code(),
                        format!(
                            "no fetch session {id} (evicted, closed, or the broker restarted): open one with epoch 0"
                        ),
                    ));
                };
                if epoch != session.next_epoch {
                    return Err((
                        ResponseError::InvalidFetchSessionEpoch.code(),
                        format!("fetch session {id} expects epoch {}, not {epoch}", session.next_epoch),
                    ));
                }
                let mut is_full = false;
                for topic in &request.topics {
                    for asked in &topic.partitions {
                        let key = (topic.topic_id, topic.topic.0.to_string(), asked.partition);
                        let held = session.partitions.len();
                        match session.partitions.entry(key) {
                            Entry::Occupied(mut cached) => cached.get_mut().wanted = Wanted::of(asked),
                            Entry::Vacant(free) if held < MAX_SESSION_PARTITIONS => {
                                free.insert(CachedPartition { wanted: Wanted::of(asked), told: None });
                            }
                            Entry::Vacant(_) => is_full = true,
                        }
                    }
                }
                // Forgotten after the request's partitions are applied, as Kafka's session update has it.
                for topic in &request.forgotten_topics_data {
                    forget(session, topic);
                }
                if is_full {
                    sessions.remove(&id);
                    return Err((
                        ResponseError::FetchSessionIdNotFound.code(),
                        format!(
                            "fetch session {id} would hold more than {MAX_SESSION_PARTITIONS} partitions: it is \
                             closed; fetch without a session"
                        ),
                    ));
                }
                session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
                session.last_used = now;
                request.topics = every_partition(session);
                Ok(Served::Incremental(id))
            }
        }
    }

    /// Shapes the answer for how it was served: an incremental one keeps only the partitions with something to
    /// say; a session's answer records the bounds it told. Sets the answer's session id.
    pub fn answered(&self, served: Served, responses: &mut Vec<FetchableTopicResponse>) -> i32 {
        if served == Served::Sessionless {
            return 0;
        }
        let mut sessions = self.lock();
        let Some(session) = sessions.get_mut(&served.session_id()) else { return 0 };
        for topic in responses.iter_mut() {
            let (topic_id, name) = (topic.topic_id, topic.topic.0.to_string());
            topic.partitions.retain(|data| {
                let told = Told {
                    high_watermark: data.high_watermark,
                    last_stable_offset: data.last_stable_offset,
                    log_start_offset: data.log_start_offset,
                };
                let Some(cached) = session.partitions.get_mut(&(topic_id, name.clone(), data.partition_index)) else {
                    return true;
                };
                let keep = matches!(served, Served::Opened(_)) || has_news(data) || cached.told != Some(told);
                if keep {
                    cached.told = Some(told);
                }
                keep
            });
        }
        responses.retain(|topic| !topic.partitions.is_empty());
        served.session_id()
    }
}

/// Takes `topic`'s forgotten partitions out of `session`: by id and name, or, for a topic whose id names no topic
/// any more (no name), by id alone.
fn forget(session: &mut Session, topic: &ForgottenTopic) {
    let name = topic.topic.0.as_str();
    if !name.is_empty() || topic.topic_id.is_nil() {
        for partition in &topic.partitions {
            session.partitions.remove(&(topic.topic_id, name.to_owned(), *partition));
        }
        return;
    }
    let of_the_id: Vec<PartitionKey> = session
        .partitions
        .range((topic.topic_id, String::new(), i32::MIN)..)
        .map(|(key, _)| key)
        .take_while(|(id, _, _)| *id == topic.topic_id)
        .filter(|(_, _, index)| topic.partitions.contains(index))
        .cloned()
        .collect();
    for key in of_the_id {
        session.partitions.remove(&key);
    }
}

/// Whether an incremental answer must carry a partition whatever its bounds: records, an error, a diverging
/// epoch, or another replica to read from.
fn has_news(data: &PartitionData) -> bool {
    data.records.as_ref().is_some_and(|records| !records.is_empty())
        || data.error_code != 0
        || data.diverging_epoch != EpochEndOffset::default()
        || data.preferred_read_replica.0 >= 0
}

/// A full fetch with epoch 0: a new session of the request's partitions, if there is room for it.
fn open_session(
    sessions: &mut HashMap<i32, Session>,
    request: &FetchRequest,
    principal: &Principal,
    now: Instant,
) -> Served {
    let mut partitions = BTreeMap::new();
    for topic in &request.topics {
        for asked in &topic.partitions {
            partitions.insert(
                (topic.topic_id, topic.topic.0.to_string(), asked.partition),
                CachedPartition { wanted: Wanted::of(asked), told: None },
            );
        }
    }
    if partitions.len() > MAX_SESSION_PARTITIONS {
        return Served::Sessionless;
    }
    if sessions.len() >= MAX_SESSIONS {
        let evictable = sessions
            .iter()
            .filter(|(_, session)| now.saturating_duration_since(session.last_used) >= EVICTABLE_AFTER)
            .min_by_key(|(_, session)| session.last_used)
            .map(|(id, _)| *id);
        match evictable {
            Some(id) => {
                sessions.remove(&id);
            }
            None => return Served::Sessionless,
        }
    }
    let id = loop {
        let id = rand::random::<i32>() & i32::MAX;
        if id != 0 && !sessions.contains_key(&id) {
            break id;
        }
    };
    sessions.insert(id, Session { next_epoch: 1, principal: principal.clone(), partitions, last_used: now });
    Served::Opened(id)
}

/// Every partition of `session` as a request names them, with what the session keeps of each.
fn every_partition(session: &Session) -> Vec<FetchTopic> {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for ((topic_id, topic, index), cached) in &session.partitions {
        let wanted = &cached.wanted;
        let partition = FetchPartition::default()
            .with_partition(*index)
            .with_fetch_offset(wanted.fetch_offset)
            .with_current_leader_epoch(wanted.current_leader_epoch)
            .with_last_fetched_epoch(wanted.last_fetched_epoch)
            .with_log_start_offset(wanted.log_start_offset)
            .with_partition_max_bytes(wanted.partition_max_bytes);
        match topics.last_mut() {
            Some(last) if last.topic_id == *topic_id && last.topic.0.as_str() == topic => {
                last.partitions.push(partition)
            }
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_topic_id(*topic_id)
                    .with_partitions(vec![partition]),
            ),
        }
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use kafka_protocol::messages::BrokerId;

    fn asked(partition: i32, offset: i64) -> FetchPartition {
        FetchPartition::default().with_partition(partition).with_fetch_offset(offset).with_partition_max_bytes(1 << 20)
    }

    fn request(id: i32, epoch: i32, partitions: &[(i32, i64)]) -> FetchRequest {
        let partitions = partitions.iter().map(|(p, offset)| asked(*p, *offset)).collect();
        FetchRequest::default().with_session_id(id).with_session_epoch(epoch).with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("orders")))
            .with_partitions(partitions)])
    }

    /// The (partition, fetch offset) pairs a request names.
    fn named(request: &FetchRequest) -> Vec<(i32, i64)> {
        request.topics.iter().flat_map(|t| &t.partitions).map(|p| (p.partition, p.fetch_offset)).collect()
    }

    fn answer(partitions: &[(i32, i64, &'static [u8])]) -> Vec<FetchableTopicResponse> {
        let data = partitions
            .iter()
            .map(|(p, high_watermark, records)| {
                PartitionData::default()
                    .with_partition_index(*p)
                    .with_high_watermark(*high_watermark)
                    .with_last_stable_offset(*high_watermark)
                    .with_preferred_read_replica(BrokerId(-1))
                    .with_records(Some(Bytes::from_static(records)))
            })
            .collect();
        vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("orders")))
            .with_partitions(data)]
    }

    fn partitions_of(responses: &[FetchableTopicResponse]) -> Vec<i32> {
        responses.iter().flat_map(|t| &t.partitions).map(|p| p.partition_index).collect()
    }

    #[test]
    fn a_session_carries_only_what_changed_each_way() {
        let (sessions, me, now) = (FetchSessions::default(), Principal::Anonymous, Instant::now());
        let mut first = request(0, 0, &[(0, 0), (1, 0), (2, 0)]);
        let Ok(Served::Opened(id)) = sessions.open(&mut first, &me, now) else { panic!("a session opens") };
        let mut full = answer(&[(0, 5, b"batch"), (1, 0, b""), (2, 0, b"")]);
        assert_eq!(sessions.answered(Served::Opened(id), &mut full), id);
        assert_eq!(partitions_of(&full), [0, 1, 2], "the opening answer carries every partition");

        // The client moved on in partition 0 only: it names that one, and the session fills in the rest.
        let mut next = request(id, 1, &[(0, 5)]);
        assert_eq!(sessions.open(&mut next, &me, now), Ok(Served::Incremental(id)));
        assert_eq!(named(&next), [(0, 5), (1, 0), (2, 0)]);
        // Nothing new in 0 and 2; partition 1 got records: only it is answered.
        let mut incremental = answer(&[(0, 5, b""), (1, 3, b"batch"), (2, 0, b"")]);
        sessions.answered(Served::Incremental(id), &mut incremental);
        assert_eq!(partitions_of(&incremental), [1]);
        // A high watermark that moved without records for this client is news too.
        let mut quiet = request(id, 2, &[]);
        sessions.open(&mut quiet, &me, now).expect("epoch 2");
        let mut moved = answer(&[(0, 9, b""), (1, 3, b""), (2, 0, b"")]);
        sessions.answered(Served::Incremental(id), &mut moved);
        assert_eq!(partitions_of(&moved), [0]);
        // Nothing at all: an empty answer.
        let mut idle = request(id, 3, &[]);
        sessions.open(&mut idle, &me, now).expect("epoch 3");
        let mut nothing = answer(&[(0, 9, b""), (1, 3, b""), (2, 0, b"")]);
        sessions.answered(Served::Incremental(id), &mut nothing);
        assert!(nothing.is_empty());

        // A forgotten partition is no longer read; an added one is.
        let mut changed = request(id, 4, &[(7, 0)]);
        changed.forgotten_topics_data = vec![ForgottenTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("orders")))
            .with_partitions(vec![2])];
        sessions.open(&mut changed, &me, now).expect("epoch 4");
        assert_eq!(named(&changed), [(0, 5), (1, 0), (7, 0)]);
    }

    #[test]
    fn by_topic_id_a_name_may_hold_two_topics_and_a_gone_one_is_forgotten_by_id() {
        let (sessions, me, now) = (FetchSessions::default(), Principal::Anonymous, Instant::now());
        let (old, new) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let by_id = |id: i32, epoch: i32, topic_id: Uuid, partitions: &[(i32, i64)]| {
            let mut request = request(id, epoch, partitions);
            request.topics.iter_mut().for_each(|topic| topic.topic_id = topic_id);
            request
        };
        let Ok(Served::Opened(id)) = sessions.open(&mut by_id(0, 0, old, &[(0, 4)]), &me, now) else { panic!() };
        let answer_of = |topic_id: Uuid| {
            let mut answer = answer(&[(0, 0, b"")]);
            answer[0].topic_id = topic_id;
            answer
        };
        sessions.answered(Served::Opened(id), &mut answer_of(old));
        // The same name under another id is another topic: both are in the session, each with its id.
        let mut added = by_id(id, 1, new, &[(0, 0)]);
        sessions.open(&mut added, &me, now).expect("epoch 1");
        let topics: Vec<(Uuid, i64)> =
            added.topics.iter().map(|t| (t.topic_id, t.partitions[0].fetch_offset)).collect();
        assert_eq!(topics, [(old, 4), (new, 0)]);
        // An answer is matched to the session's partitions by id: the same bounds are news for the new topic
        // only, the old one's were told.
        let mut answer: Vec<FetchableTopicResponse> = answer_of(old).into_iter().chain(answer_of(new)).collect();
        sessions.answered(Served::Incremental(id), &mut answer);
        assert_eq!(answer.iter().map(|t| t.topic_id).collect::<Vec<_>>(), [new]);
        // The old id names no topic any more (no name): forgotten by id alone.
        let mut forget = by_id(id, 2, new, &[]);
        forget.forgotten_topics_data = vec![ForgottenTopic::default().with_topic_id(old).with_partitions(vec![0])];
        sessions.open(&mut forget, &me, now).expect("epoch 2");
        assert_eq!(forget.topics.iter().map(|t| t.topic_id).collect::<Vec<_>>(), [new]);
    }

    #[test]
    fn a_wrong_epoch_an_unknown_id_or_another_principal_is_refused_and_minus_one_closes() {
        let (sessions, me, now) = (FetchSessions::default(), Principal::User("app".into()), Instant::now());
        let mut first = request(0, 0, &[(0, 0)]);
        let Ok(Served::Opened(id)) = sessions.open(&mut first, &me, now) else { panic!("a session opens") };
        let epoch_code = ResponseError::InvalidFetchSessionEpoch.code();
        let not_found = ResponseError::FetchSessionIdNotFound.code();
        assert_eq!(sessions.open(&mut request(id, 2, &[]), &me, now).map_err(|e| e.0), Err(epoch_code));
        assert_eq!(sessions.open(&mut request(id + 1, 1, &[]), &me, now).map_err(|e| e.0), Err(not_found));
        let other = Principal::User("mallory".into());
        assert_eq!(sessions.open(&mut request(id, 1, &[]), &other, now).map_err(|e| e.0), Err(not_found));
        assert_eq!(sessions.open(&mut request(id, -2, &[]), &me, now).map_err(|e| e.0), Err(epoch_code));
        // The refusals changed nothing: epoch 1 is still the next.
        assert_eq!(sessions.open(&mut request(id, 1, &[]), &me, now), Ok(Served::Incremental(id)));
        assert_eq!(sessions.open(&mut request(id, -1, &[(0, 3)]), &me, now), Ok(Served::Sessionless));
        assert!(sessions.is_empty(), "-1 closes the session");
        assert_eq!(sessions.open(&mut request(id, 2, &[]), &me, now).map_err(|e| e.0), Err(not_found));
        assert_eq!(sessions.open(&mut request(0, -1, &[(0, 3)]), &me, now), Ok(Served::Sessionless));
        assert!(sessions.is_empty());
    }

    #[test]
    fn the_epoch_wraps_to_one_and_an_epoch_zero_replaces_the_session() {
        let (sessions, me, now) = (FetchSessions::default(), Principal::Anonymous, Instant::now());
        let Ok(Served::Opened(id)) = sessions.open(&mut request(0, 0, &[(0, 0)]), &me, now) else { panic!() };
        sessions.lock().get_mut(&id).expect("open").next_epoch = i32::MAX;
        assert_eq!(sessions.open(&mut request(id, i32::MAX, &[]), &me, now), Ok(Served::Incremental(id)));
        assert_eq!(sessions.open(&mut request(id, 1, &[]), &me, now), Ok(Served::Incremental(id)));
        let Ok(Served::Opened(new)) = sessions.open(&mut request(id, 0, &[(1, 0)]), &me, now) else { panic!() };
        assert_ne!(new, id);
        assert_eq!(sessions.len(), 1, "the old session was closed");
    }

    #[test]
    fn sessions_are_bounded_and_only_an_idle_one_gives_its_place() {
        let (sessions, me, now) = (FetchSessions::default(), Principal::Anonymous, Instant::now());
        let mut ids = Vec::new();
        for _ in 0..MAX_SESSIONS {
            let Ok(Served::Opened(id)) = sessions.open(&mut request(0, 0, &[(0, 0)]), &me, now) else { panic!() };
            ids.push(id);
        }
        let soon = now + Duration::from_secs(1);
        assert_eq!(sessions.open(&mut request(0, 0, &[(0, 0)]), &me, soon), Ok(Served::Sessionless), "full");
        // Every session but the first is used later; once the first has been idle long enough, it goes.
        let later = now + EVICTABLE_AFTER;
        for id in &ids[1..] {
            sessions.lock().get_mut(id).expect("open").last_used = later;
        }
        let Ok(Served::Opened(_)) = sessions.open(&mut request(0, 0, &[(0, 0)]), &me, later) else { panic!() };
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(!sessions.lock().contains_key(&ids[0]), "the idle one was evicted");
        // A full fetch naming more partitions than a session may hold is served without one.
        let many: Vec<(i32, i64)> = (0..=MAX_SESSION_PARTITIONS as i32).map(|p| (p, 0)).collect();
        let fresh = FetchSessions::default();
        assert_eq!(fresh.open(&mut request(0, 0, &many), &me, now), Ok(Served::Sessionless));
    }
}
