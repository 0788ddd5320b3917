//! On a cluster, a partition's records are read, listed, written and deleted on its leader only (`not-leader`
//! elsewhere), and a group is described, reset and deleted on its coordinator only (`not-coordinator`). The
//! console of any node shows and changes them all the same: it calls this node's handler first, as on a single
//! node, and when that refuses naming the leader (or coordinator), it sends the same request to that node's
//! `Records` (or `ConsumerGroups`) service over a peer channel (`tls/peer.rs`), with the page's principal in
//! `rill-forwarded-principal` (`auth/forwarded.rs`), so that node authorizes the console's user, not this node.
//! A DeleteRecords answers each partition on its own: those refused `not-leader` go to their leaders by this
//! node's metadata (`TopicAdmin` there).
//!
//! Invariants:
//! - One hop: a request sent on is never sent on again (a leader that moved meanwhile answers `not-leader`,
//!   shown as such); a single node and the leader's own path never leave this node.
//! - Bounded: a leader that does not answer within [`FORWARD_TIMEOUT`] (connect included) is a 503 naming it.
//! - A produce that named no partition is pinned to the partition this node picked (by key or round-robin,
//!   given back in the refusal), so the leader does not pick another one it might not lead.

use std::future::Future;
use std::time::Duration;

use rill_protocol::reason::{
    reason_of, Reason, COORDINATOR_ADDRESS_KEY, COORDINATOR_ID_KEY, LEADER_ADDRESS_KEY, LEADER_ID_KEY, PARTITION_KEY,
};
use rill_protocol::v1::consumer_groups_client::ConsumerGroupsClient;
use rill_protocol::v1::records_client::RecordsClient;
use rill_protocol::v1::topic_admin_client::TopicAdminClient;
use rill_protocol::v1::{
    self, consumer_groups_server::ConsumerGroups, records_server::Records, topic_admin_server::TopicAdmin,
};
use tonic::Status;

use super::layout::Page;
use super::Console;
use crate::auth::forwarded::ForwardedCaller;
use crate::tls::PeerChannel;

/// How long the console waits for a partition's leader, connecting included, before a page says it is out of
/// reach: a page must never hang on a node that is down.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// The partition leader a `not-leader` refusal names, or the group coordinator a `not-coordinator` one does.
#[derive(Debug, PartialEq, Eq)]
struct Leader {
    /// What it is to the call: "leader" or "coordinator".
    role: &'static str,
    id: Option<u64>,
    address: String,
    /// The partition refused: the one a produce without a partition was given.
    partition: Option<u32>,
}

impl std::fmt::Display for Leader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.id {
            Some(id) => write!(f, "node {id} at {}", self.address),
            None => write!(f, "the node at {}", self.address),
        }
    }
}

/// The node `status` sends the call to, if it is a `not-leader` or `not-coordinator` refusal naming one with an
/// address.
fn leader_in(status: &Status) -> Option<Leader> {
    let (role, id_key, address_key) = match reason_of(status)? {
        Reason::NotLeader => ("leader", LEADER_ID_KEY, LEADER_ADDRESS_KEY),
        Reason::NotCoordinator => ("coordinator", COORDINATOR_ID_KEY, COORDINATOR_ADDRESS_KEY),
        _ => return None,
    };
    let text = |key: &str| status.metadata().get(key).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let address = text(address_key).filter(|a| !a.is_empty())?;
    Some(Leader {
        role,
        id: text(id_key).and_then(|id| id.parse().ok()),
        address,
        partition: text(PARTITION_KEY).and_then(|p| p.parse().ok()),
    })
}

/// Sends `message` to `leader` as the page's principal (`call` picks the service and method), answering within
/// the timeout.
async fn on_leader<T, R, Call, Answer>(
    console: &Console,
    page: Page<'_>,
    leader: &Leader,
    message: T,
    call: Call,
) -> Result<R, Status>
where
    Call: FnOnce(PeerChannel, tonic::Request<T>) -> Answer,
    Answer: Future<Output = Result<tonic::Response<R>, Status>>,
{
    let out_of_reach = |why: String| {
        Status::unavailable(format!(
            "this node is not the {}, and the {}, {leader}, {why}; try again once it is back, or open its own console",
            leader.role, leader.role
        ))
    };
    let channel = crate::tls::channel_to(&leader.address, &console.node.config)
        .map_err(|e| out_of_reach(format!("cannot be dialled: {e}")))?;
    let mut request = tonic::Request::new(message);
    ForwardedCaller::of(&page.request(())).send_on(request.metadata_mut());
    request.set_timeout(FORWARD_TIMEOUT);
    tracing::debug!(%leader, role = leader.role, principal = %page.principal, "console call sent on");
    let timed_out = || out_of_reach(format!("did not answer within {} s", FORWARD_TIMEOUT.as_secs()));
    match tokio::time::timeout(FORWARD_TIMEOUT, call(channel, request)).await {
        Ok(Ok(answer)) => Ok(answer.into_inner()),
        Ok(Err(status)) if status.code() == tonic::Code::Unavailable && reason_of(&status).is_none() => {
            Err(out_of_reach(format!("could not be reached: {}", status.message())))
        }
        // The request's own deadline (`set_timeout`) is enforced by the channel too, which ends the call with
        // CANCELLED "Timeout expired" just before the wait below: the same silence, not an error of the call.
        Ok(Err(status))
            if matches!(status.code(), tonic::Code::Cancelled | tonic::Code::DeadlineExceeded)
                && reason_of(&status).is_none() =>
        {
            Err(timed_out())
        }
        Ok(Err(status)) => Err(status),
        Err(_) => Err(timed_out()),
    }
}

/// `here`, this node's handler, for `request`; when it refuses naming the node that answers instead, `there` on
/// that node (over [`on_leader`]).
async fn here_or_there<T, R, Here, HereAnswer, There, ThereAnswer>(
    console: &Console,
    page: Page<'_>,
    request: T,
    here: Here,
    there: There,
) -> Result<R, Status>
where
    T: Clone,
    Here: FnOnce(tonic::Request<T>) -> HereAnswer,
    HereAnswer: Future<Output = Result<tonic::Response<R>, Status>>,
    There: FnOnce(PeerChannel, tonic::Request<T>) -> ThereAnswer,
    ThereAnswer: Future<Output = Result<tonic::Response<R>, Status>>,
{
    match here(page.request(request.clone())).await {
        Ok(answer) => Ok(answer.into_inner()),
        Err(status) => match leader_in(&status) {
            Some(leader) => on_leader(console, page, &leader, request, there).await,
            None => Err(status),
        },
    }
}

/// `Records/Fetch`, on this node or the partition's leader.
pub async fn fetch(console: &Console, page: Page<'_>, request: v1::FetchRequest) -> Result<v1::FetchResponse, Status> {
    here_or_there(
        console,
        page,
        request,
        |r| console.service.fetch(r),
        |c, r| async move { RecordsClient::new(c).fetch(r).await },
    )
    .await
}

/// `Records/ListOffsets`, on this node or the partition's leader.
pub async fn list_offsets(
    console: &Console,
    page: Page<'_>,
    request: v1::ListOffsetsRequest,
) -> Result<v1::ListOffsetsResponse, Status> {
    here_or_there(
        console,
        page,
        request,
        |r| console.service.list_offsets(r),
        |c, r| async move { RecordsClient::new(c).list_offsets(r).await },
    )
    .await
}

/// `Records/Produce`, on this node or the leader of the partition it names or this node picked.
pub async fn produce(
    console: &Console,
    page: Page<'_>,
    request: v1::ProduceRequest,
) -> Result<v1::ProduceResponse, Status> {
    match console.service.produce(page.request(request.clone())).await {
        Ok(answer) => Ok(answer.into_inner()),
        Err(status) => match leader_in(&status) {
            Some(leader) => {
                let partition = request.partition.or(leader.partition);
                let request = v1::ProduceRequest { partition, ..request };
                on_leader(console, page, &leader, request, |c, r| async move { RecordsClient::new(c).produce(r).await })
                    .await
            }
            None => Err(status),
        },
    }
}

/// `ConsumerGroups/DescribeGroup`, on this node or the group's coordinator.
pub async fn describe_group(
    console: &Console,
    page: Page<'_>,
    request: v1::DescribeGroupRequest,
) -> Result<v1::DescribeGroupResponse, Status> {
    here_or_there(
        console,
        page,
        request,
        |r| console.service.describe_group(r),
        |c, r| async move { ConsumerGroupsClient::new(c).describe_group(r).await },
    )
    .await
}

/// `ConsumerGroups/ResetOffsets`, on this node or the group's coordinator.
pub async fn reset_offsets(
    console: &Console,
    page: Page<'_>,
    request: v1::ResetOffsetsRequest,
) -> Result<v1::ResetOffsetsResponse, Status> {
    here_or_there(
        console,
        page,
        request,
        |r| console.service.reset_offsets(r),
        |c, r| async move { ConsumerGroupsClient::new(c).reset_offsets(r).await },
    )
    .await
}

/// `ConsumerGroups/DeleteGroup`, on this node or the group's coordinator.
pub async fn delete_group(
    console: &Console,
    page: Page<'_>,
    request: v1::DeleteGroupRequest,
) -> Result<v1::DeleteGroupResponse, Status> {
    here_or_there(
        console,
        page,
        request,
        |r| console.service.delete_group(r),
        |c, r| async move { ConsumerGroupsClient::new(c).delete_group(r).await },
    )
    .await
}

/// `TopicAdmin/DeleteRecords`, on this node for the partitions it leads and on each other partition's leader (by
/// this node's metadata) for the rest, answered in the request's order. A leader out of reach answers its
/// partitions with the reason and message the page shows.
pub async fn delete_records(
    console: &Console,
    page: Page<'_>,
    request: v1::DeleteRecordsRequest,
) -> Result<Vec<v1::DeleteRecordsResult>, Status> {
    let mut results = console.service.delete_records(page.request(request.clone())).await?.into_inner().partitions;
    let Some(replication) = &console.node.replication else { return Ok(results) };
    let metadata = replication.metadata();
    let not_leader = Reason::NotLeader.as_str();
    let mut by_leader: std::collections::BTreeMap<u64, Vec<usize>> = std::collections::BTreeMap::new();
    for (at, result) in results.iter().enumerate() {
        let placed = metadata.topics.get(&request.topic).and_then(|t| t.partitions.get(result.partition as usize));
        if let (true, Some(leader)) = (result.error_reason == not_leader, placed.and_then(|p| p.leader)) {
            by_leader.entry(leader).or_default().push(at);
        }
    }
    for (id, at) in by_leader {
        let Some(address) = metadata.address_of(id) else { continue };
        let leader = Leader { role: "leader", id: Some(id), address: address.to_owned(), partition: None };
        let asked: Vec<v1::DeleteRecordsBefore> = at
            .iter()
            .filter_map(|&i| request.partitions.iter().find(|p| p.partition == results[i].partition).cloned())
            .collect();
        let sent = v1::DeleteRecordsRequest { partitions: asked, ..request.clone() };
        let answered =
            on_leader(
                console,
                page,
                &leader,
                sent,
                |c, r| async move { TopicAdminClient::new(c).delete_records(r).await },
            )
            .await;
        for i in at {
            let partition = results[i].partition;
            results[i] = match &answered {
                Ok(answer) => match answer.partitions.iter().find(|r| r.partition == partition) {
                    Some(result) => result.clone(),
                    None => continue,
                },
                Err(status) => v1::DeleteRecordsResult {
                    partition,
                    low_watermark: -1,
                    error_reason: reason_of(status).map_or("unavailable", Reason::as_str).to_owned(),
                    error_message: status.message().to_owned(),
                },
            };
        }
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_not_leader_refusal_naming_an_address_is_sent_on() {
        let mut refusal = Reason::NotLeader.status("node 2 does not lead partition 3");
        assert_eq!(leader_in(&refusal), None, "no address: nowhere to send it");
        refusal.metadata_mut().insert(LEADER_ADDRESS_KEY, "127.0.0.1:9093".parse().expect("ascii"));
        refusal.metadata_mut().insert(LEADER_ID_KEY, 1u64.into());
        refusal.metadata_mut().insert(PARTITION_KEY, 3u32.into());
        let leader = leader_in(&refusal).expect("a leader");
        let expected = Leader { role: "leader", id: Some(1), address: "127.0.0.1:9093".into(), partition: Some(3) };
        assert_eq!(leader, expected);
        assert_eq!(leader.to_string(), "node 1 at 127.0.0.1:9093");

        let mut unavailable = Status::unavailable("down");
        unavailable.metadata_mut().insert(LEADER_ADDRESS_KEY, "127.0.0.1:9093".parse().expect("ascii"));
        assert_eq!(leader_in(&unavailable), None, "only not-leader is a question of where");
    }
}
