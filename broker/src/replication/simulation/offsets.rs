//! The simulation's committed-offsets workload and checks: a standalone consumer's commits and fetches of one
//! group's offset through the real `ConsumerGroups` service and the replicated offsets store, while the
//! coordinator (the leader of the group's `__consumer_offsets` partition) moves with the faults.

use std::time::Duration;

use rill_protocol::v1;

use super::{host_name, wire, World, NODES, SIM_DEADLINE, TOPIC};

/// The group whose committed offset (of `TOPIC` partition 0) the driver commits and fetches.
const GROUP: &str = "auditors";
/// Fewer acknowledged commits than this means the commit workload did not run.
const MIN_COMMITS: usize = 5;

/// The driver's offset commits for [`GROUP`] and what it learned from them.
#[derive(Debug, Default)]
pub(super) struct Commits {
    /// The last commit acknowledged (commits are strictly increasing).
    acknowledged: Option<i64>,
    count: usize,
    /// Fetches answered by the node the controller named coordinator, at one epoch, throughout.
    checked_fetches: usize,
    /// Checked fetches that returned less than the previous checked fetch: an offset the coordinator showed
    /// before its commit was acknowledged, then lost with a failover (no acknowledged commit is ever lost).
    unacknowledged_seen_then_lost: usize,
    last_fetched: Option<i64>,
    target: usize,
}

/// The offsets partition's leader and leader epoch as the controller has committed them.
pub(super) fn coordinator(world: &World) -> Option<(u64, u32)> {
    let metadata = world.controller.committed();
    let placed = metadata.topics.get(crate::offsets::OFFSETS_TOPIC)?.partitions.first()?.clone();
    Some((placed.leader?, placed.leader_epoch))
}

fn fetch_offsets_request() -> v1::FetchOffsetsRequest {
    v1::FetchOffsetsRequest {
        group: GROUP.into(),
        partitions: vec![v1::TopicPartition { topic: TOPIC.into(), partition: 0 }],
    }
}

impl Commits {
    /// Fetches the group's offset from the node it last reached and checks it against the commits acknowledged
    /// before the fetch (fetching first, so a new coordinator's first answer is checked before a commit
    /// overwrites what it loaded), then commits `offset` there as a standalone consumer (no member id).
    pub(super) async fn round(&mut self, world: &World, offset: i64) {
        let host = host_name(NODES[self.target]);
        let acknowledged_before = self.acknowledged;
        let before = coordinator(world);
        let fetched = wire::fetch_offsets(&host, &fetch_offsets_request()).await;
        let after = coordinator(world);
        let is_coordinator_throughout = before == after && before.is_some_and(|(leader, _)| host == host_name(leader));
        if let (Ok(fetched), true) = (fetched, is_coordinator_throughout) {
            let value = fetched.offsets.first().map_or(-1, |c| c.offset);
            self.checked_fetches += 1;
            if let Some(acknowledged) = acknowledged_before.filter(|a| value < *a) {
                world.violation(format!(
                    "{host}, coordinator at epoch {:?}, answered the committed offset {value}, below the commit of \
                     {acknowledged} acknowledged before the fetch",
                    before.map(|(_, epoch)| epoch)
                ));
            }
            if self.last_fetched.is_some_and(|last| value < last) {
                self.unacknowledged_seen_then_lost += 1;
            }
            self.last_fetched = Some(value);
        }
        let commit = v1::CommitOffsetsRequest {
            group: GROUP.into(),
            member_id: String::new(),
            generation: -1,
            offsets: vec![v1::OffsetCommit { topic: TOPIC.into(), partition: 0, offset, metadata: String::new() }],
        };
        if wire::commit(&host, &commit).await.is_ok() {
            self.acknowledged = Some(offset);
            self.count += 1;
        } else {
            // Not the coordinator, unreachable, or the commit not covered in time: as a client would, move on.
            self.target = (self.target + 1) % NODES.len();
        }
    }

    /// After healing: the coordinator serves at least the last acknowledged commit.
    pub(super) async fn check_final(&self, world: &World) -> Result<(), String> {
        if self.count < MIN_COMMITS || self.checked_fetches == 0 {
            return Err(format!(
                "only {} commits acknowledged and {} fetches checked",
                self.count, self.checked_fetches
            ));
        }
        let deadline = tokio::time::Instant::now() + SIM_DEADLINE;
        loop {
            if let Some((leader, _)) = coordinator(world) {
                if let Ok(fetched) = wire::fetch_offsets(&host_name(leader), &fetch_offsets_request()).await {
                    let value = fetched.offsets.first().map_or(-1, |c| c.offset);
                    return match self.acknowledged.filter(|a| value < *a) {
                        Some(acknowledged) => Err(format!(
                            "after healing the coordinator (node {leader}) serves {value}, below the acknowledged \
                             commit of {acknowledged}"
                        )),
                        None => Ok(()),
                    };
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err("no coordinator answered an offset fetch after healing".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
