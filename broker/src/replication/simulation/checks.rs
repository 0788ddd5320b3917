//! What a seed must end with: the replicas' logs converged (byte-identical from the highest log start up to the
//! high watermark), every acknowledged record at or above that start kept once and in order, no leader epoch
//! written by two nodes, no log start below what a DeleteRecords was answered.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use rill_protocol::{BatchIter, RecordBatch};

use super::deletions::Deletions;
use super::{lock, World, MIN_ACKNOWLEDGED, NODES, TOPIC};

/// The replicas once converged: each one's log start, and its log from the highest of them to the high watermark.
pub(super) struct Converged {
    pub(super) log_starts: BTreeMap<u64, i64>,
    high_watermark: i64,
    /// From the highest log start over the replicas: below it some replica no longer holds the records.
    from: i64,
    logs: BTreeMap<u64, Bytes>,
}

/// The replicas' logs once every replica's high watermark is the same log end and every follower has taken the
/// leader's log start (it does on its next answer: its high watermark is then at least the leader's start). A
/// follower's start may be above the leader's: a deletion the leader did not finish answering may have reached
/// a follower before a failover made another, which had not taken it yet, leader.
pub(super) fn converged_logs(world: &World) -> Option<Converged> {
    let leader = world.controller.committed().topics.get(TOPIC)?.partitions.first()?.leader?;
    let mut ends = BTreeSet::new();
    let mut log_starts = BTreeMap::new();
    let mut logs = BTreeMap::new();
    for node_id in NODES {
        let log = Arc::clone(world.node(node_id)?.registry.partition(TOPIC, 0).ok()?.log());
        ends.insert((log.log_end_offset(), log.high_watermark()));
        log_starts.insert(node_id, log.log_start_offset());
        logs.insert(node_id, log);
    }
    let (end, high_watermark) = *ends.first()?;
    let leader_start = *log_starts.get(&leader)?;
    if ends.len() != 1 || end != high_watermark || log_starts.values().any(|s| *s < leader_start) {
        return None;
    }
    let from = *log_starts.values().max()?;
    let mut read = BTreeMap::new();
    for (node_id, log) in logs {
        let batches = if from < end { log.read_to_end(from, 64 << 20).ok()?.batches } else { Bytes::new() };
        read.insert(node_id, batches);
    }
    Some(Converged { log_starts, high_watermark, from, logs: read })
}

impl Converged {
    /// Where the converged logs start being compared: below it some replica no longer holds the records.
    pub(super) fn from(&self) -> i64 {
        self.from
    }

    /// The converged log's batches by base offset.
    pub(super) fn batches(&self) -> Result<BTreeMap<i64, Bytes>, String> {
        let log = self.logs.get(&NODES[0]).ok_or("no log of node 1")?;
        BatchIter::new(log.clone())
            .map(|batch| {
                batch.map(|b| (b.header.base_offset, b.bytes)).map_err(|e| format!("bad converged batch: {e}"))
            })
            .collect()
    }
}

pub(super) fn check(
    world: &World,
    converged: &Converged,
    acknowledged: &[(u64, i64)],
    deletions: &Deletions,
) -> Result<(), String> {
    let violations = lock(&world.violations).clone();
    if !violations.is_empty() {
        return Err(violations.join("; "));
    }
    for (epoch, writers) in lock(&world.writers).iter() {
        if writers.len() > 1 {
            return Err(format!("leader epoch {epoch} was written by several nodes: {writers:?}"));
        }
    }
    let reference = converged.logs.get(&NODES[0]).ok_or("no log of node 1")?;
    for (node_id, log) in &converged.logs {
        if log != reference {
            return Err(format!(
                "node {node_id}'s log differs from node {}'s from {} up to the high watermark",
                NODES[0], converged.from
            ));
        }
    }
    for (node_id, start) in &converged.log_starts {
        if *start > converged.high_watermark {
            return Err(format!(
                "node {node_id}'s log start {start} is above the high watermark {}",
                converged.high_watermark
            ));
        }
        // The low watermark answered is the smallest start over the ISR then, and no start ever goes back.
        if *start < deletions.deleted_to {
            return Err(format!(
                "node {node_id}'s log start {start} is below {}, which a DeleteRecords was answered as deleted",
                deletions.deleted_to
            ));
        }
    }
    if world.restarts_checked.load(Ordering::Relaxed) == 0 {
        return Err("no restarted node was checked against a checkpointed high watermark above 0".into());
    }
    if acknowledged.len() < MIN_ACKNOWLEDGED {
        return Err(format!("only {} records acknowledged: the workload did not run", acknowledged.len()));
    }
    let sequences = sequences_in(reference)?;
    let positions: BTreeMap<u64, usize> = sequences.iter().enumerate().map(|(at, s)| (*s, at)).collect();
    if positions.len() != sequences.len() {
        return Err("a record is in the log twice".into());
    }
    let mut previous: Option<usize> = None;
    // Records below the highest start were deleted on purpose; every one at or above it must have survived.
    for (sequence, offset) in acknowledged.iter().filter(|(_, offset)| *offset >= converged.from) {
        let at = *positions
            .get(sequence)
            .ok_or_else(|| format!("acknowledged record {sequence} at offset {offset} is lost"))?;
        if previous.is_some_and(|p| at < p) {
            return Err(format!("acknowledged record {sequence} is before one acknowledged earlier"));
        }
        previous = Some(at);
    }
    Ok(())
}

/// The producer's sequence numbers, in log order; the batches' leader epochs must never go down.
fn sequences_in(log: &Bytes) -> Result<Vec<u64>, String> {
    let mut sequences = Vec::new();
    let mut epoch = i32::MIN;
    for batch in BatchIter::new(log.clone()) {
        let batch: RecordBatch = batch.map_err(|e| format!("bad batch in the converged log: {e}"))?;
        if batch.header.partition_leader_epoch < epoch {
            return Err(format!(
                "batch at {} has leader epoch {} after a batch of epoch {epoch}",
                batch.header.base_offset, batch.header.partition_leader_epoch
            ));
        }
        epoch = batch.header.partition_leader_epoch;
        for record in batch.records().map_err(|e| e.to_string())? {
            let record = record.map_err(|e| e.to_string())?;
            let value: [u8; 8] = record.value.and_then(|v| v.try_into().ok()).ok_or("a record without a sequence")?;
            sequences.push(u64::from_be_bytes(value));
        }
    }
    Ok(sequences)
}
