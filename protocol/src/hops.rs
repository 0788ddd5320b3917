//! Hop timestamps of sampled record batches: where a batch's time goes between a producer's `send` and a
//! consumer's decode (`rill bench e2e --breakdown`).
//!
//! Why here: the client and the broker both mark hops, and this crate is the one both depend on. The marks go
//! into a process-wide ring of atomics, so the broker's hops are only seen by a process that embeds the broker
//! (`rill bench --embedded`); nothing travels on the wire and no message or API changes.
//!
//! Cost when off (the normal case): each call site loads one relaxed `AtomicBool` and branches. The ring is
//! allocated by [`start`], so a process that never samples never holds it.
//!
//! Identity: a batch is known by its `base_sequence` (an idempotent producer's, stamped when the batch is
//! sealed and carried unchanged through the broker, the log and the fetch). That names one batch only while a
//! single producer writes a single partition, which is what `--breakdown` allows. The first record of each
//! batch is the one measured: its [`Hop::Sent`] is the `send` of the record whose sequence is the batch's base.
//!
//! Marks are racy by design (no lock on any path): a mark that loses a race with its slot's reuse is lost, and
//! that entry never becomes whole. [`take`] returns entries whole or not at all. Points need not come in
//! [`Hop`] order: a fetch may read a batch before the writer publishes the high watermark.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use crate::batch::{BatchHeader, LOG_OVERHEAD};

/// The points a sampled batch passes, in path order. Each hop of the breakdown is the time between two
/// consecutive points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Hop {
    /// The benchmark calls `Producer::send` with the batch's first record.
    Sent,
    /// The client sealed the batch (header, sequence and CRC written).
    Sealed,
    /// The client's produce call handed the batch's last chunk to HTTP/2.
    RequestWritten,
    /// The broker decoded the ProduceRequest that carries it.
    BrokerDecoded,
    /// The partition's writer task took it from its queue.
    WriterTook,
    /// The blocking-pool thread started its append.
    AppendStarted,
    /// The append (the write, and the tail cache's copy) returned.
    Appended,
    /// The writer published the new high watermark, back on the async thread.
    HighWatermarkPublished,
    /// A waiting fetch woke and read it.
    FetchRead,
    /// The fetch answer's last chunk went to HTTP/2.
    ResponseWritten,
    /// The consumer decoded it into records.
    ClientDecoded,
}

/// Number of [`Hop`] points.
pub const POINTS: usize = Hop::ClientDecoded as usize + 1;

/// Every point, in path order.
pub const ALL: [Hop; POINTS] = [
    Hop::Sent,
    Hop::Sealed,
    Hop::RequestWritten,
    Hop::BrokerDecoded,
    Hop::WriterTook,
    Hop::AppendStarted,
    Hop::Appended,
    Hop::HighWatermarkPublished,
    Hop::FetchRead,
    Hop::ResponseWritten,
    Hop::ClientDecoded,
];

/// Slots in the ring: at 10k batches a second, 6.5 s of batches before the first slot is reused.
pub const SLOTS: usize = 1 << 16;

/// Marks are ns since this instant, plus 1 (0 is "not marked").
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

struct Slot {
    /// `base_sequence + 1` of the batch this slot holds; 0 when empty.
    key: AtomicU64,
    marks: [AtomicU64; POINTS],
}

static IS_ON: AtomicBool = AtomicBool::new(false);
static RING: OnceLock<Box<[Slot]>> = OnceLock::new();

/// Whether sampling is on: the one check every call site makes first.
#[inline]
pub fn is_on() -> bool {
    IS_ON.load(Ordering::Relaxed)
}

/// Allocates the ring (once per process) and turns sampling on.
pub fn start() {
    epoch();
    RING.get_or_init(|| {
        (0..SLOTS).map(|_| Slot { key: AtomicU64::new(0), marks: std::array::from_fn(|_| AtomicU64::new(0)) }).collect()
    });
    IS_ON.store(true, Ordering::Release);
}

/// Turns sampling off; marks already made stay for [`take`].
pub fn stop() {
    IS_ON.store(false, Ordering::Release);
}

fn slot(sequence: i32) -> Option<(&'static Slot, u64)> {
    let ring = RING.get()?;
    let sequence = u64::try_from(sequence).ok()?;
    Some((&ring[(sequence % SLOTS as u64) as usize], sequence + 1))
}

fn now_mark() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
}

/// Marks `hop` for the batch whose base sequence is `sequence`. [`Hop::Sent`] claims the slot (clearing what an
/// older batch left there); a later hop of a batch that does not hold its slot is dropped.
pub fn mark(sequence: i32, hop: Hop) {
    if !is_on() {
        return;
    }
    let Some((slot, key)) = slot(sequence) else { return };
    if hop == Hop::Sent {
        slot.key.store(0, Ordering::Release);
        for mark in &slot.marks {
            mark.store(0, Ordering::Relaxed);
        }
        slot.marks[Hop::Sent as usize].store(now_mark(), Ordering::Relaxed);
        slot.key.store(key, Ordering::Release);
    } else if slot.key.load(Ordering::Acquire) == key {
        // The first mark wins: a retried call or a second fetch of the same batch is not the path measured.
        let _ = slot.marks[hop as usize].compare_exchange(0, now_mark(), Ordering::Relaxed, Ordering::Relaxed);
    }
}

/// Marks `hop` for every batch in `batches` (whole v2 batches back to back, as produced or fetched). Stops at
/// the first header that does not parse: marking never fails a call.
pub fn mark_batches(batches: &[u8], hop: Hop) {
    if !is_on() {
        return;
    }
    let mut rest = batches;
    while let Ok(header) = BatchHeader::parse(rest) {
        mark(header.base_sequence, hop);
        let Some(next) = usize::try_from(header.batch_length).ok().and_then(|len| rest.get(len + LOG_OVERHEAD..))
        else {
            break;
        };
        rest = next;
    }
}

/// One batch's marks, ns since the process's hop epoch, in [`Hop`] order.
pub type Marks = [u64; POINTS];

/// Every entry whose points are all marked, emptying those slots. Entries still missing a point stay.
pub fn take() -> Vec<Marks> {
    let Some(ring) = RING.get() else { return Vec::new() };
    let mut whole = Vec::new();
    for slot in ring.iter() {
        if slot.key.load(Ordering::Acquire) == 0 {
            continue;
        }
        let marks: Marks = std::array::from_fn(|i| slot.marks[i].load(Ordering::Relaxed));
        if marks.iter().all(|&mark| mark != 0) {
            slot.key.store(0, Ordering::Release);
            whole.push(marks.map(|mark| mark - 1));
        }
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProducerFields, Record, RecordBatchBuilder};

    fn batch_with_sequence(base_sequence: i32) -> Vec<u8> {
        let mut builder = RecordBatchBuilder::with_capacity(128);
        builder.push(&Record { value: Some(b"v".to_vec()), ..Record::default() });
        builder.set_producer(ProducerFields { producer_id: 7, producer_epoch: 0, base_sequence });
        builder.build()
    }

    // One test, not several: the ring is process-wide and tests run in parallel.
    #[test]
    fn a_batch_marked_at_every_point_comes_back_once_in_order_and_others_do_not() {
        mark(1, Hop::Sent); // off: nothing is kept
        start();
        let sequences = [10_000, 10_001];
        for sequence in sequences {
            mark(sequence, Hop::Sent);
        }
        let mut fetched = batch_with_sequence(sequences[0]);
        fetched.extend(batch_with_sequence(sequences[1]));
        for hop in &ALL[1..] {
            mark_batches(&fetched, *hop);
        }
        // A slot claimed for a newer batch drops the older batch's late marks.
        mark(20_000, Hop::Sent);
        mark(20_000 + SLOTS as i32, Hop::Sealed);
        let whole = take();
        assert_eq!(whole.len(), 2, "{whole:?}");
        for marks in &whole {
            assert!(marks.windows(2).all(|pair| pair[0] <= pair[1]), "{marks:?}");
        }
        assert!(take().is_empty(), "taken entries are gone; the unfinished one is not whole");
        stop();
    }
}
