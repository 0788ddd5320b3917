//! Node sessions, kept by the controller leader alone, in memory: when it last heard each node's heartbeat and
//! from which process (incarnation). Only the decisions that follow (fence, alive again) go through raft, so
//! heartbeats cost no log writes, and no decision compares clocks of two machines.
//!
//! A new leader starts a node's session from the last time this node itself heard that node over raft
//! ([`RaftContact`]: an AppendEntries, vote or snapshot it received, on its own monotonic clock), and every other
//! node's afresh. So the old leader, which sent AppendEntries until it died, is fenced a session after it last
//! spoke rather than a session after the election; and a node is still fenced only after this node itself has
//! not heard from it for `node_session_timeout_ms`. A seeded session is never shorter than a grace of a few
//! heartbeats, so a live node has the time to find the new leader and heartbeat before it could be fenced.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

struct Session {
    /// 0 until this leader heard the node: any process may then claim the id.
    incarnation: u64,
    address: String,
    /// The rack its heartbeats name.
    rack: Option<String>,
    last_heard: Instant,
    is_heard_by_this_leader: bool,
}

struct Table {
    /// The raft term this table was started for; a table from an earlier leadership is stale.
    term: u64,
    sessions: BTreeMap<u64, Session>,
    /// Per node, the incarnation of a process that stopped gracefully ([`Sessions::stopped`]): a
    /// heartbeat it sent before it stopped, arriving late, is ignored.
    stopped: BTreeMap<u64, u64>,
}

/// Why a heartbeat was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatRefused {
    #[error(
        "node id {node_id} is held by another running process (heard {age_ms} ms ago from {address}); each node \
         needs its own id. A restarted node is accepted once the old process's session expires"
    )]
    DuplicateNodeId { node_id: u64, address: String, age_ms: u64 },
    #[error("this node is not the controller leader")]
    NotLeader,
}

/// When this node last received a raft RPC from each peer, on this node's monotonic clock. Kept on every node,
/// in memory, so whichever node becomes controller leader knows when it last heard the old one.
#[derive(Default)]
pub struct RaftContact {
    last_heard: Mutex<BTreeMap<u64, Instant>>,
}

impl RaftContact {
    pub fn heard(&self, node_id: u64, now: Instant) {
        // Plain data, whole after every statement: a panic elsewhere cannot leave it half-changed.
        let mut last_heard = self.last_heard.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = last_heard.entry(node_id).or_insert(now);
        *entry = (*entry).max(now);
    }

    pub fn last_heard(&self, node_id: u64) -> Option<Instant> {
        self.last_heard.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&node_id).copied()
    }
}

pub struct Sessions {
    session_timeout: Duration,
    /// The shortest session a new leader grants a node it seeds from [`RaftContact`].
    seeded_session_min: Duration,
    table: Mutex<Option<Table>>,
}

impl Sessions {
    pub fn new(session_timeout: Duration, seeded_session_min: Duration) -> Self {
        Self { session_timeout, seeded_session_min: seeded_session_min.min(session_timeout), table: Mutex::new(None) }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Option<Table>> {
        // The table is plain data, whole after every statement: a panic elsewhere cannot leave it half-changed.
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Called while this node leads at `term`: starts a fresh table when the term is new. A node this node heard
    /// over raft (`contact`) keeps the rest of the session that contact started, but at least
    /// `seeded_session_min`; any other node gets a full session from `now`.
    pub fn lead(&self, term: u64, nodes: impl IntoIterator<Item = (u64, String)>, now: Instant, contact: &RaftContact) {
        let mut table = self.table();
        if table.as_ref().is_some_and(|t| t.term == term) {
            return;
        }
        let latest_seed = now.checked_sub(self.session_timeout - self.seeded_session_min);
        let sessions = nodes
            .into_iter()
            .map(|(node_id, address)| {
                let last_heard = match (contact.last_heard(node_id), latest_seed) {
                    (Some(heard), Some(latest_seed)) => heard.max(latest_seed).min(now),
                    _ => now,
                };
                (node_id, Session { incarnation: 0, address, rack: None, last_heard, is_heard_by_this_leader: false })
            })
            .collect();
        *table = Some(Table { term, sessions, stopped: BTreeMap::new() });
    }

    /// This node no longer leads.
    pub fn stop_leading(&self) {
        *self.table() = None;
    }

    /// Records a heartbeat. Refused when another process (a different incarnation) holds the node id and its
    /// session has not expired.
    pub fn heard(
        &self,
        node_id: u64,
        address: &str,
        rack: Option<&str>,
        incarnation: u64,
        now: Instant,
    ) -> Result<(), HeartbeatRefused> {
        let mut table = self.table();
        let table = table.as_mut().ok_or(HeartbeatRefused::NotLeader)?;
        if table.stopped.get(&node_id) == Some(&incarnation) {
            return Ok(());
        }
        if let Some(session) = table.sessions.get(&node_id) {
            let age = now.saturating_duration_since(session.last_heard);
            let is_other_process = session.incarnation != 0 && session.incarnation != incarnation;
            if is_other_process && age < self.session_timeout {
                return Err(HeartbeatRefused::DuplicateNodeId {
                    node_id,
                    address: session.address.clone(),
                    age_ms: age.as_millis() as u64,
                });
            }
        }
        let session = Session {
            incarnation,
            address: address.to_owned(),
            rack: rack.map(str::to_owned),
            last_heard: now,
            is_heard_by_this_leader: true,
        };
        table.sessions.insert(node_id, session);
        Ok(())
    }

    /// Nodes whose session has expired.
    pub fn expired(&self, now: Instant) -> Vec<u64> {
        let table = self.table();
        let Some(table) = table.as_ref() else { return Vec::new() };
        table
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_duration_since(s.last_heard) >= self.session_timeout)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Nodes silent for longer than `late` whose session has not expired, with the address to reach them at:
    /// the ones to probe (`liveness.rs`).
    pub fn overdue(&self, now: Instant, late: Duration) -> Vec<(u64, String)> {
        let table = self.table();
        let Some(table) = table.as_ref() else { return Vec::new() };
        table
            .sessions
            .iter()
            .filter(|(_, s)| {
                let silence = now.saturating_duration_since(s.last_heard);
                silence > late && silence < self.session_timeout
            })
            .map(|(id, s)| (*id, s.address.clone()))
            .collect()
    }

    /// `node_ids` that have a session, with the address each gave.
    pub fn addresses_of(&self, node_ids: &std::collections::BTreeSet<u64>) -> Vec<(u64, String)> {
        let table = self.table();
        let Some(table) = table.as_ref() else { return Vec::new() };
        node_ids.iter().filter_map(|id| table.sessions.get(id).map(|s| (*id, s.address.clone()))).collect()
    }

    /// The node's address refused a connection, so its process is gone: it no longer counts as heard (not
    /// [`Sessions::live`], which would mark it alive again) until it heartbeats, and the id is free for the next
    /// process (a restart need not wait for the dead one's session to run out, as it must when nothing says
    /// whether the first process still runs).
    pub fn refused(&self, node_id: u64) {
        if let Some(session) = self.table().as_mut().and_then(|t| t.sessions.get_mut(&node_id)) {
            session.is_heard_by_this_leader = false;
            session.incarnation = 0;
        }
    }

    /// The metadata says the process `incarnation` of the node stopped gracefully (it fenced itself,
    /// `Controller::hand_over_leaderships`). It heartbeats no more, so a heartbeat of it still in flight must not
    /// mark it alive again, whenever it arrives, even at a leader that never heard it before; and its restart (a
    /// new incarnation) may take the id at once. A node fenced by the leader (its session expired, or its port
    /// refused) has no stopped incarnation: a hung process that wakes up is alive again at its next heartbeat.
    pub fn stopped(&self, node_id: u64, incarnation: u64) {
        let mut table = self.table();
        let Some(table) = table.as_mut() else { return };
        table.stopped.insert(node_id, incarnation);
        if let Some(session) = table.sessions.get_mut(&node_id).filter(|s| s.incarnation == incarnation) {
            session.is_heard_by_this_leader = false;
            session.incarnation = 0;
        }
    }

    /// A node removed from the cluster: no session, so it is neither fenced nor marked alive again.
    pub fn forget(&self, node_id: u64) {
        if let Some(table) = self.table().as_mut() {
            table.sessions.remove(&node_id);
        }
    }

    /// Nodes heard by this leader within their session, with the address and rack they gave.
    pub fn live(&self, now: Instant) -> Vec<(u64, String, Option<String>)> {
        let table = self.table();
        let Some(table) = table.as_ref() else { return Vec::new() };
        table
            .sessions
            .iter()
            .filter(|(_, s)| s.is_heard_by_this_leader)
            .filter(|(_, s)| now.saturating_duration_since(s.last_heard) < self.session_timeout)
            .map(|(id, s)| (*id, s.address.clone(), s.rack.clone()))
            .collect()
    }

    /// How long ago this leader last heard the node, if it has.
    pub fn heartbeat_age(&self, node_id: u64, now: Instant) -> Option<Duration> {
        let table = self.table();
        let session = table.as_ref()?.sessions.get(&node_id)?;
        session.is_heard_by_this_leader.then(|| now.saturating_duration_since(session.last_heard))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(6);
    const SEEDED_MIN: Duration = Duration::from_millis(500);

    fn leading(now: Instant) -> Sessions {
        let sessions = Sessions::new(TIMEOUT, SEEDED_MIN);
        sessions.lead(1, [(1, "a:1".into()), (2, "b:2".into())], now, &RaftContact::default());
        sessions
    }

    #[test]
    fn a_process_that_stopped_is_not_heard_again_and_its_restart_is_taken_at_once() {
        let now = Instant::now();
        let sessions = leading(now);
        sessions.heard(2, "b:2", None, 7, now).expect("heard");
        sessions.stopped(2, 7);
        // Its last heartbeat, in flight when it stopped, arrives late: ignored.
        sessions.heard(2, "b:2", None, 7, now + Duration::from_millis(10)).expect("not refused, just ignored");
        assert!(sessions.live(now + Duration::from_millis(10)).iter().all(|(id, ..)| *id != 2));
        // Restarted: a new process, taken at its first heartbeat.
        sessions.heard(2, "b:2", None, 8, now + Duration::from_millis(20)).expect("the new process");
        assert!(sessions.live(now + Duration::from_millis(20)).iter().any(|(id, ..)| *id == 2));
        // Told again (each turn reads the metadata): the new process keeps its session.
        sessions.stopped(2, 7);
        assert!(sessions.live(now + Duration::from_millis(20)).iter().any(|(id, ..)| *id == 2));
    }

    #[test]
    fn a_stopped_process_heard_late_by_a_leader_that_never_heard_it_is_ignored() {
        // The leader was elected just before node 2 stopped: its session is seeded, never heard under this term.
        let now = Instant::now();
        let sessions = leading(now);
        sessions.stopped(2, 7);
        sessions.heard(2, "b:2", None, 7, now + Duration::from_millis(10)).expect("not refused, just ignored");
        assert!(sessions.live(now + Duration::from_millis(10)).is_empty(), "it would be marked alive again");
    }

    #[test]
    fn a_suspect_is_probed_at_the_address_of_its_session_and_an_unknown_one_not_at_all() {
        let sessions = leading(Instant::now());
        let suspects = [2, 9].into_iter().collect();
        assert_eq!(sessions.addresses_of(&suspects), vec![(2, "b:2".to_owned())]);
        sessions.stop_leading();
        assert!(sessions.addresses_of(&suspects).is_empty(), "only the leader probes");
    }

    #[test]
    fn a_new_leader_starts_the_old_leaders_session_when_it_last_heard_it_over_raft() {
        let start = Instant::now();
        let contact = RaftContact::default();
        // Node 1 led and sent AppendEntries until `start`; node 3 is heard of only through heartbeats.
        contact.heard(1, start - Duration::from_millis(100));
        contact.heard(1, start);
        let elected = start + Duration::from_secs(2);
        let sessions = Sessions::new(TIMEOUT, SEEDED_MIN);
        sessions.lead(2, [(1, "a:1".into()), (2, "b:2".into()), (3, "c:3".into())], elected, &contact);
        assert!(sessions.expired(start + TIMEOUT - Duration::from_millis(1)).is_empty());
        assert_eq!(sessions.expired(start + TIMEOUT), vec![1], "the old leader's session ran from its last message");
        assert_eq!(sessions.expired(elected + TIMEOUT), vec![1, 2, 3], "the others had a full session");
        assert_eq!(sessions.heartbeat_age(1, elected), None, "a raft message is not a heartbeat to this leader");
        assert!(sessions.live(elected).is_empty(), "a seeded session marks no node alive");
    }

    #[test]
    fn a_seeded_session_leaves_a_live_node_the_time_to_heartbeat() {
        let start = Instant::now();
        let contact = RaftContact::default();
        contact.heard(1, start);
        let elected = start + 2 * TIMEOUT;
        let sessions = Sessions::new(TIMEOUT, SEEDED_MIN);
        sessions.lead(2, [(1, "a:1".into())], elected, &contact);
        assert!(sessions.expired(elected + SEEDED_MIN - Duration::from_millis(1)).is_empty());
        assert_eq!(sessions.expired(elected + SEEDED_MIN), vec![1]);
        // It is alive after all: its heartbeat restarts its session, whatever its process.
        sessions.heard(1, "a:1", None, 9, elected + SEEDED_MIN).unwrap();
        assert!(sessions.expired(elected + SEEDED_MIN).is_empty());
    }

    #[test]
    fn a_new_leader_fences_only_after_a_full_session_of_its_own() {
        let start = Instant::now();
        let sessions = leading(start);
        assert!(sessions.expired(start + TIMEOUT / 2).is_empty());
        assert_eq!(sessions.expired(start + TIMEOUT), vec![1, 2]);
        sessions.heard(2, "b:2", None, 7, start + TIMEOUT).unwrap();
        assert_eq!(sessions.expired(start + TIMEOUT), vec![1]);
        assert_eq!(sessions.live(start + TIMEOUT), vec![(2, "b:2".to_owned(), None)]);
    }

    #[test]
    fn a_second_process_with_the_same_node_id_is_refused_until_the_first_one_expires() {
        let start = Instant::now();
        let sessions = leading(start);
        sessions.heard(2, "b:2", None, 7, start).unwrap();
        let refused = sessions.heard(2, "b:2", None, 8, start + TIMEOUT / 2).unwrap_err();
        assert!(matches!(refused, HeartbeatRefused::DuplicateNodeId { node_id: 2, .. }));
        sessions.heard(2, "b:2", None, 7, start + TIMEOUT / 2).unwrap();
        // The first process died: after its session expires, the restarted one takes the id.
        sessions.heard(2, "b:2", None, 8, start + TIMEOUT / 2 + TIMEOUT).unwrap();
    }

    #[test]
    fn a_node_is_overdue_between_a_late_heartbeat_and_its_session_end() {
        let start = Instant::now();
        let sessions = leading(start);
        let late = Duration::from_millis(150);
        sessions.heard(2, "b:2", None, 7, start).unwrap();
        assert!(sessions.overdue(start + late, late).is_empty(), "exactly `late` is not overdue yet");
        let overdue = sessions.overdue(start + 2 * late, late);
        assert_eq!(overdue, vec![(1, "a:1".to_owned()), (2, "b:2".to_owned())], "seeded and heard sessions alike");
        sessions.heard(2, "b:2", None, 7, start + 2 * late).unwrap();
        assert_eq!(sessions.overdue(start + 2 * late, late), vec![(1, "a:1".to_owned())]);
        let both_expired = start + 2 * late + TIMEOUT;
        assert!(sessions.overdue(both_expired, late).is_empty(), "an expired session is fenced, not probed");
    }

    #[test]
    fn a_refused_node_is_not_live_again_until_a_process_heartbeats_for_it() {
        let start = Instant::now();
        let sessions = leading(start);
        sessions.heard(2, "b:2", None, 7, start).unwrap();
        let probed = start + Duration::from_millis(300);
        sessions.refused(2);
        assert!(sessions.live(probed).is_empty(), "a refused node must not be marked alive again");
        assert_eq!(sessions.heartbeat_age(2, probed), None);
        assert_eq!(sessions.expired(start + TIMEOUT), vec![1, 2], "its session still ends when it would have");
        // The restarted process takes the id at once: the old one's address refused, so it is gone.
        let restarted = probed + Duration::from_millis(200);
        sessions.heard(2, "b:2", None, 8, restarted).unwrap();
        assert_eq!(sessions.live(restarted), vec![(2, "b:2".to_owned(), None)]);
        let refused = sessions.heard(2, "b:2", None, 9, restarted).unwrap_err();
        assert!(matches!(refused, HeartbeatRefused::DuplicateNodeId { node_id: 2, .. }), "the new one holds it");
    }

    #[test]
    fn a_follower_refuses_heartbeats() {
        let sessions = Sessions::new(TIMEOUT, SEEDED_MIN);
        assert_eq!(sessions.heard(1, "a:1", None, 1, Instant::now()), Err(HeartbeatRefused::NotLeader));
        let sessions = leading(Instant::now());
        sessions.stop_leading();
        assert_eq!(sessions.heard(1, "a:1", None, 1, Instant::now()), Err(HeartbeatRefused::NotLeader));
    }
}
