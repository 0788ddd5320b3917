//! Cluster administration: `DescribeCluster`, `AddNode`, `RemoveNode`, `ElectLeaders`, `ReassignPartition`,
//! `CancelReassignment`, `RebalanceReplicas` and `SetReplicationThrottle` over the `ClusterAdmin` service. The answer is the API's own
//! message (`rill_protocol::v1`), re-exported, since the `.proto` is the contract.

use rill_protocol::v1::cluster_admin_client::ClusterAdminClient;
use rill_protocol::v1::{
    AddNodeRequest, CancelReassignmentRequest, DescribeClusterRequest, ElectLeadersRequest, ReassignPartitionRequest,
    RebalanceReplicasRequest, RemoveNodeRequest, SetReplicationThrottleRequest,
};
pub use rill_protocol::v1::{
    AddNodeResponse as NodeAdded, ClusterNode, DescribeClusterResponse as ClusterDescription,
    ElectLeadersResponse as LeadersElected, LeaderElected, LeaderNotElected, NodeState as ClusterNodeState,
    PartitionReassignment, ReassignPartitionResponse as PartitionReassigned,
    RebalanceReplicasResponse as ReplicasRebalanced, RemoveNodeResponse as NodeRemoved, ReplicaMove,
    SetReplicationThrottleResponse as ThrottleSet,
};

/// How long a membership change may take: adding waits for the new node to catch up on the metadata, removing
/// for every moved replica to copy its partition and join the ISR.
const MEMBERSHIP_CHANGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

use crate::connection::{call, request, Client};
use crate::error::{RequestContext, Result};

/// Cluster administration over a [`Client`]'s connection.
#[derive(Debug, Clone)]
pub struct ClusterAdmin {
    client: Client,
}

impl ClusterAdmin {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The cluster's nodes, their states and the controller leader, as the node connected to (or, through it,
    /// the controller leader) sees them.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let timeout = self.client.config().request_timeout;
        let mut admin = ClusterAdminClient::new(self.client.channel());
        call(
            timeout,
            RequestContext::default(),
            admin.describe_cluster(request(DescribeClusterRequest { local_only: false }, timeout)),
        )
        .await
    }

    /// Adds the node running at `address` (started with `--join`) to the cluster; answered once it is a
    /// member (a voter when that makes a larger allowed quorum).
    pub async fn add_node(&self, node_id: u64, address: &str) -> Result<NodeAdded> {
        let mut admin = ClusterAdminClient::new(self.client.channel());
        let add = AddNodeRequest { node_id, address: address.to_owned() };
        call(
            MEMBERSHIP_CHANGE_TIMEOUT,
            RequestContext::default(),
            admin.add_node(request(add, MEMBERSHIP_CHANGE_TIMEOUT)),
        )
        .await
    }

    /// Moves every replica off the node, then takes it out of the cluster; answered once done.
    pub async fn remove_node(&self, node_id: u64) -> Result<NodeRemoved> {
        let mut admin = ClusterAdminClient::new(self.client.channel());
        call(
            MEMBERSHIP_CHANGE_TIMEOUT,
            RequestContext::default(),
            admin.remove_node(request(RemoveNodeRequest { node_id }, MEMBERSHIP_CHANGE_TIMEOUT)),
        )
        .await
    }

    /// Hands the partitions in scope (all, a topic's, or one) back to their preferred replicas where those
    /// may lead now; says which moved and why the others stay.
    pub async fn elect_leaders(&self, topic: Option<&str>, partition: Option<u32>) -> Result<LeadersElected> {
        let timeout = self.client.config().request_timeout;
        let mut admin = ClusterAdminClient::new(self.client.channel());
        let elect = ElectLeadersRequest { topic: topic.map(str::to_owned), partition };
        let context = RequestContext { topic, partition, ..RequestContext::default() };
        call(timeout, context, admin.elect_leaders(request(elect, timeout))).await
    }

    /// Moves the partition onto `replica_ids` (the preferred leader first); answered once the new replicas are
    /// in sync and the old ones gone. The move is recorded in the cluster's metadata as soon as it starts, so it
    /// goes on if this call times out or the controller leader fails over (`cancel_reassignment` stops it).
    pub async fn reassign_partition(
        &self,
        topic: &str,
        partition: u32,
        replica_ids: &[u64],
    ) -> Result<PartitionReassigned> {
        self.reassign(topic, partition, replica_ids, false, MEMBERSHIP_CHANGE_TIMEOUT).await
    }

    /// Starts moving the partition onto `replica_ids` and answers once the move is recorded, as Kafka's
    /// AlterPartitionReassignments does: the answer's `replica_ids` are the target, its ISR and leader those at
    /// the start. The same refusals as `reassign_partition`; `describe_topic` shows the move until it is done.
    pub async fn start_reassignment(
        &self,
        topic: &str,
        partition: u32,
        replica_ids: &[u64],
    ) -> Result<PartitionReassigned> {
        self.reassign(topic, partition, replica_ids, true, self.client.config().request_timeout).await
    }

    async fn reassign(
        &self,
        topic: &str,
        partition: u32,
        replica_ids: &[u64],
        no_wait: bool,
        timeout: std::time::Duration,
    ) -> Result<PartitionReassigned> {
        let mut admin = ClusterAdminClient::new(self.client.channel());
        let reassign =
            ReassignPartitionRequest { topic: topic.to_owned(), partition, replica_ids: replica_ids.to_vec(), no_wait };
        let context = RequestContext::partition(topic, partition);
        call(timeout, context, admin.reassign_partition(request(reassign, timeout))).await
    }

    /// Cancels the partition's move under way: its replicas go back to the original list (in its order) and the
    /// replicas being added leave. Refused (`membership-refused`) when it is not moving, or when none of its
    /// original replicas is in sync.
    pub async fn cancel_reassignment(&self, topic: &str, partition: u32) -> Result<PartitionReassigned> {
        let timeout = self.client.config().request_timeout;
        let mut admin = ClusterAdminClient::new(self.client.channel());
        let cancel = CancelReassignmentRequest { topic: topic.to_owned(), partition };
        let context = RequestContext::partition(topic, partition);
        call(timeout, context, admin.cancel_reassignment(request(cancel, timeout))).await
    }

    /// Spreads the replicas evenly over the alive nodes, one partition after the other; answered once done.
    pub async fn rebalance_replicas(&self) -> Result<ReplicasRebalanced> {
        let mut admin = ClusterAdminClient::new(self.client.channel());
        let rebalance = request(RebalanceReplicasRequest { no_wait: false }, MEMBERSHIP_CHANGE_TIMEOUT);
        call(MEMBERSHIP_CHANGE_TIMEOUT, RequestContext::default(), admin.rebalance_replicas(rebalance)).await
    }

    /// Starts every move that spreads the replicas evenly at once and answers once they are recorded: `moved`
    /// lists each partition's replicas before and its target. The moves copy side by side, each finishing on
    /// its own (`describe_topic` shows them; a replication throttle bounds them).
    pub async fn start_rebalance(&self) -> Result<ReplicasRebalanced> {
        let timeout = self.client.config().request_timeout;
        let mut admin = ClusterAdminClient::new(self.client.channel());
        let rebalance = request(RebalanceReplicasRequest { no_wait: true }, timeout);
        call(timeout, RequestContext::default(), admin.rebalance_replicas(rebalance)).await
    }

    /// Sets the replication throttle for replica moves to `bytes_per_sec`, or clears it (`None`): what a leader
    /// sends, per pair of nodes, for partitions a follower is being added to and is not in sync on yet.
    pub async fn set_replication_throttle(&self, bytes_per_sec: Option<u64>) -> Result<ThrottleSet> {
        let timeout = self.client.config().request_timeout;
        let mut admin = ClusterAdminClient::new(self.client.channel());
        let set = SetReplicationThrottleRequest { bytes_per_sec };
        call(timeout, RequestContext::default(), admin.set_replication_throttle(request(set, timeout))).await
    }
}
