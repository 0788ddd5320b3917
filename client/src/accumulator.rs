//! Per-partition batching for one topic: which partition a record goes to, and the open batch it is encoded into.
//!
//! [`TopicBatches`] is plain data with `&mut self` methods; the producer keeps one per topic behind its lock and
//! never holds that lock across an `.await`. Each record is encoded straight into its partition's open
//! [`RecordBatchBuilder`] buffer: no per-record allocation. The records of a batch share one acknowledgement
//! (a `Shared` oneshot), so a record's delivery future costs a reference count, not an allocation.
//!
//! A batch is sealed (built and handed to the partition's sender) when the next record would take it past
//! `batch_bytes`, when it reaches `batch_bytes`, when its linger expires, or on flush. Keyless records without an
//! explicit partition stick to one partition until that partition's batch is sealed, then move to the next
//! (Kafka's sticky partitioner: full batches for keyless traffic instead of one small batch per partition).
//!
//! An idempotent producer's batches are stamped as they are sealed with its producer id, epoch and the
//! partition's next sequence: batches are sealed, queued and sent in the same order per partition, so the
//! sequences the broker sees follow each other, and a retry resends the same stamped bytes.

use futures_util::future::{FutureExt, Shared};
use rill_protocol::batch::HEADER_BYTES;
use rill_protocol::hops::{self, Hop};
use rill_protocol::partitioner::partition_for_key;
use rill_protocol::varint::{MAX_VARINT_BYTES, MAX_VARLONG_BYTES};
use rill_protocol::{ProducerFields, RecordBatchBuilder};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::record::ProducerRecord;

/// What a batch's produce call came to: the base offset the broker gave it, or why it failed.
pub(crate) type BatchOutcome = Result<i64, Error>;
/// The shared acknowledgement of one batch, awaited by the delivery future of each of its records.
pub(crate) type BatchAck = Shared<oneshot::Receiver<BatchOutcome>>;

/// A batch closed for appends, ready to send.
#[derive(Debug)]
pub(crate) struct SealedBatch {
    pub partition: u32,
    /// Uncompressed v2 batch bytes (the sender compresses, outside the producer's lock).
    pub bytes: Vec<u8>,
    pub record_count: usize,
    /// Buffer-memory bytes its records reserved; released once the batch is answered.
    pub reserved_bytes: usize,
    pub ack: oneshot::Sender<BatchOutcome>,
    /// When its first record was appended: its `delivery_timeout` runs from here.
    pub opened_at: Instant,
}

/// Where [`TopicBatches::append`] put a record.
pub(crate) struct Appended {
    pub partition: u32,
    /// Position of the record in its batch: its offset is the batch's base offset plus this.
    pub index: usize,
    /// Which of the partition's batches took the record.
    pub batch_id: u64,
    /// The batch's acknowledgement; `None` when it is the batch the caller said it already holds the
    /// acknowledgement of (a reference count saved per record of a `send_batch`).
    pub ack: Option<BatchAck>,
    /// Set when the record opened a new batch: its id, to arm that batch's linger timer.
    pub opened: Option<u64>,
}

/// A record on its way into a batch, with what the producer worked out for it.
struct Incoming<'r> {
    record: &'r ProducerRecord,
    timestamp_ms: i64,
    /// What the record took from the producer's buffer budget; its batch gives it back when answered.
    reserved_bytes: usize,
}

/// At least the bytes `record` adds to a batch, whatever its timestamp and offset deltas: every varint at its
/// longest.
fn max_encoded_bytes(record: &ProducerRecord) -> usize {
    let field = |b: &Option<bytes::Bytes>| MAX_VARINT_BYTES + b.as_ref().map_or(0, bytes::Bytes::len);
    let headers: usize = record.headers.iter().map(|h| MAX_VARINT_BYTES + h.key.len() + field(&h.value)).sum();
    // Length, attributes, timestamp delta (a varlong), offset delta, key, value, header count.
    MAX_VARINT_BYTES
        + 1
        + MAX_VARLONG_BYTES
        + MAX_VARINT_BYTES
        + field(&record.key)
        + field(&record.value)
        + MAX_VARINT_BYTES
        + headers
}

/// Where [`TopicBatches::append_sticky_run`] put its records.
pub(crate) struct StickyRun {
    pub partition: u32,
    pub batch_id: u64,
    /// Position of the run's first record in its batch.
    pub first_index: usize,
    pub count: usize,
    pub ack: Option<BatchAck>,
}

struct OpenBatch {
    id: u64,
    opened_at: Instant,
    builder: RecordBatchBuilder,
    reserved_bytes: usize,
    ack_tx: oneshot::Sender<BatchOutcome>,
    ack: BatchAck,
}

#[derive(Default)]
struct PartitionBatches {
    open: Option<OpenBatch>,
    next_id: u64,
    /// Whether the open batch's linger was cut short already (see [`TopicBatches::expire_lingers`]).
    is_linger_expired: bool,
    /// Whether the last batch was sealed for being full: then the next one is allocated at full size at once
    /// instead of growing by doubling (each doubling copies the batch).
    was_last_full: bool,
    /// The sequence of the next record sealed into a batch (idempotent producers).
    next_sequence: i32,
}

impl PartitionBatches {
    /// Seals the open batch, stamped with `producer`'s id and epoch and the partition's next sequence.
    fn seal_open(&mut self, partition: u32, producer: Option<(i64, i16)>) -> Option<SealedBatch> {
        let mut open = self.open.take()?;
        let mut base_sequence = None;
        if let Some((producer_id, producer_epoch)) = producer {
            let sequence = self.next_sequence;
            open.builder.set_producer(ProducerFields { producer_id, producer_epoch, base_sequence: sequence });
            self.next_sequence = next_sequence(sequence, open.builder.record_count());
            base_sequence = Some(sequence);
        }
        let sealed = open.seal(partition);
        if let Some(sequence) = base_sequence.filter(|_| hops::is_on()) {
            hops::mark(sequence, Hop::Sealed);
        }
        Some(sealed)
    }
}

/// The sequence `records` records after `sequence`: Kafka's, wrapping from `i32::MAX` to 0.
fn next_sequence(sequence: i32, records: usize) -> i32 {
    let next = (i64::from(sequence) + records as i64).rem_euclid(i64::from(i32::MAX) + 1);
    i32::try_from(next).expect("a remainder modulo 2^31 fits an i32")
}

/// The open batches of one topic's partitions, and its sticky-partition state.
pub(crate) struct TopicBatches {
    partitions: Vec<PartitionBatches>,
    batch_bytes: usize,
    sticky: Option<u32>,
    next_sticky: u32,
    /// An idempotent producer's id and epoch, stamped into every batch sealed.
    producer: Option<(i64, i16)>,
}

/// First allocation of a batch that is not expected to fill (a lone record waiting for its linger).
const SMALL_BATCH_BYTES: usize = 16 << 10;

impl TopicBatches {
    pub fn new(partition_count: u32, batch_bytes: usize) -> Self {
        let mut batches = Self { partitions: Vec::new(), batch_bytes, sticky: None, next_sticky: 0, producer: None };
        batches.grow(partition_count);
        batches
    }

    /// Makes every batch sealed from now on an idempotent producer's: `producer_id` at `epoch`, with sequences
    /// per partition from 0.
    pub fn set_producer(&mut self, producer_id: i64, epoch: i16) {
        self.producer = Some((producer_id, epoch));
    }

    pub fn partition_count(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// Seals batches at `batch_bytes` from now on (the topic's own limit may be below the producer's setting).
    pub fn set_batch_bytes(&mut self, batch_bytes: usize) {
        self.batch_bytes = batch_bytes;
    }

    /// Takes in partitions added to the topic. Partition counts never shrink (the broker refuses to).
    pub fn grow(&mut self, partition_count: u32) {
        let count = partition_count.max(1) as usize;
        if count > self.partitions.len() {
            self.partitions.resize_with(count, PartitionBatches::default);
        }
    }

    /// The partition `record` goes to: its explicit partition (which must exist), else its key's hash
    /// (`partition_for_key`, the function the broker uses), else the sticky partition.
    pub fn choose_partition(&mut self, topic: &str, record: &ProducerRecord) -> Result<u32> {
        let count = self.partition_count();
        if let Some(partition) = record.partition {
            if partition >= count {
                return Err(Error::UnknownPartition { topic: topic.to_owned(), partition });
            }
            return Ok(partition);
        }
        if let Some(key) = &record.key {
            return Ok(partition_for_key(key, count));
        }
        Ok(*self.sticky.get_or_insert_with(|| {
            let partition = self.next_sticky % count;
            self.next_sticky = self.next_sticky.wrapping_add(1);
            partition
        }))
    }

    /// Picks `record`'s partition (see [`Self::choose_partition`]) and appends it there. A keyless record that
    /// would overflow the sticky partition's batch seals that batch and moves on to the next partition, so the
    /// sticky partition is not left with a one-record batch waiting for its linger.
    ///
    /// The batches this append sealed are pushed to `sealed`, to send in that order (each to its own
    /// partition's sender): the sticky partition's batch the keyless record did not fit, the chosen
    /// partition's previous batch (the record did not fit), the record's own batch (the record filled it).
    pub fn place(
        &mut self,
        topic: &str,
        record: &ProducerRecord,
        timestamp_ms: i64,
        reserved_bytes: usize,
        held: Option<(u32, u64)>,
        sealed: &mut Vec<SealedBatch>,
    ) -> Result<Appended> {
        let mut partition = self.choose_partition(topic, record)?;
        let is_sticky = record.partition.is_none() && record.key.is_none();
        let mut is_known_to_fit = false;
        if is_sticky {
            if self.would_overflow(partition, record, timestamp_ms) {
                sealed.extend(self.seal(partition, None));
                // Sealed because full, not because its linger ended: the partition's next batch will likely fill
                // too, so it starts at full size instead of growing (and copying itself) from a small one.
                if let Some(slot) = self.partitions.get_mut(partition as usize) {
                    slot.was_last_full = true;
                }
                partition = self.choose_partition(topic, record)?;
            } else {
                is_known_to_fit = true;
            }
        }
        let incoming = Incoming { record, timestamp_ms, reserved_bytes };
        Ok(self.append_sized(partition, incoming, is_known_to_fit, held, sealed))
    }

    /// For a `send_batch`: appends the leading records of `records` that a record-by-record [`Self::place`]
    /// would put, one after the other, in the sticky partition's open batch (keyless, no explicit partition,
    /// surely fitting with room to spare), without the per-record partition choice, bookkeeping and hand-off.
    /// Stops at the first record that needs more (a key, a partition, a batch to seal or open): `place` takes
    /// that one. `None` when no record was taken. The acknowledgement is left out when the batch is `held`.
    pub fn append_sticky_run(
        &mut self,
        records: &[ProducerRecord],
        now_ms: i64,
        held: Option<(u32, u64)>,
    ) -> Option<StickyRun> {
        let partition = self.sticky?;
        let batch_bytes = self.batch_bytes;
        let open = self.partitions.get_mut(partition as usize)?.open.as_mut()?;
        let first_index = open.builder.record_count();
        let mut count = 0;
        for record in records {
            if record.partition.is_some() || record.key.is_some() {
                break;
            }
            // Strictly below the limit, so the record neither overflows the batch nor fills it: either would make
            // `place` seal it.
            if open.builder.encoded_bytes() + max_encoded_bytes(record) >= batch_bytes {
                break;
            }
            let headers = record.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref()));
            open.builder.push_fields(record.timestamp_ms.unwrap_or(now_ms), None, record.value.as_deref(), headers);
            open.reserved_bytes += record.buffered_bytes();
            count += 1;
        }
        if count == 0 {
            return None;
        }
        let ack = (held != Some((partition, open.id))).then(|| open.ack.clone());
        Some(StickyRun { partition, batch_id: open.id, first_index, count, ack })
    }

    /// Whether `record` would take `partition`'s open batch past `batch_bytes` (never an empty batch: a record
    /// larger than a batch goes alone). Most records are far from the limit and a bound on their size, with no
    /// varint to measure, settles it; only near the limit is the record sized exactly.
    fn would_overflow(&self, partition: u32, record: &ProducerRecord, timestamp_ms: i64) -> bool {
        let Some(open) = self.partitions.get(partition as usize).and_then(|p| p.open.as_ref()) else { return false };
        if open.builder.is_empty() {
            return false;
        }
        let room = self.batch_bytes.saturating_sub(open.builder.encoded_bytes());
        if max_encoded_bytes(record) <= room {
            return false;
        }
        let headers = record.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref()));
        open.builder.fields_bytes(timestamp_ms, record.key.as_deref(), record.value.as_deref(), headers) > room
    }

    /// Encodes `record` into `partition`'s open batch, sealing batches as they fill. `reserved_bytes` is what
    /// the record took from the producer's buffer budget; the batch gives it back when answered.
    #[cfg(test)]
    pub fn append(
        &mut self,
        partition: u32,
        record: &ProducerRecord,
        timestamp_ms: i64,
        reserved_bytes: usize,
        sealed: &mut Vec<SealedBatch>,
    ) -> Appended {
        let incoming = Incoming { record, timestamp_ms, reserved_bytes };
        self.append_sized(partition, incoming, false, None, sealed)
    }

    /// [`Self::append`], skipping the size check when the caller just made it (`is_known_to_fit`). The
    /// acknowledgement is left out when the record lands in the `held` batch (partition, batch id).
    fn append_sized(
        &mut self,
        partition: u32,
        incoming: Incoming<'_>,
        is_known_to_fit: bool,
        held: Option<(u32, u64)>,
        sealed: &mut Vec<SealedBatch>,
    ) -> Appended {
        let Incoming { record, timestamp_ms, reserved_bytes } = incoming;
        let is_full = !is_known_to_fit && self.would_overflow(partition, record, timestamp_ms);
        let (batch_bytes, producer) = (self.batch_bytes, self.producer);
        let slot = &mut self.partitions[partition as usize];
        let mut has_sealed = false;
        if is_full {
            slot.was_last_full = true;
            sealed.extend(slot.seal_open(partition, producer));
            has_sealed = true;
        }
        let mut opened = None;
        let open = slot.open.get_or_insert_with(|| {
            let id = slot.next_id;
            slot.next_id += 1;
            slot.is_linger_expired = false;
            opened = Some(id);
            let capacity = if slot.was_last_full { batch_bytes } else { SMALL_BATCH_BYTES.min(batch_bytes) };
            OpenBatch::new(id, capacity.max(HEADER_BYTES + reserved_bytes))
        });
        let headers = record.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref()));
        open.builder.push_fields(timestamp_ms, record.key.as_deref(), record.value.as_deref(), headers);
        open.reserved_bytes += reserved_bytes;
        let index = open.builder.record_count() - 1;
        let batch_id = open.id;
        let ack = (held != Some((partition, batch_id))).then(|| open.ack.clone());
        if open.builder.encoded_bytes() >= batch_bytes {
            slot.was_last_full = true;
            sealed.extend(slot.seal_open(partition, producer));
            has_sealed = true;
        }
        if has_sealed {
            self.unstick(partition);
        }
        Appended { partition, index, batch_id, ack, opened }
    }

    /// Seals `partition`'s open batch if it is the batch `id` (its linger expired), or any open batch if `id` is
    /// `None` (a flush).
    pub fn seal(&mut self, partition: u32, id: Option<u64>) -> Option<SealedBatch> {
        let producer = self.producer;
        let slot = self.partitions.get_mut(partition as usize)?;
        let is_match = slot.open.as_ref().is_some_and(|open| id.is_none_or(|id| open.id == id));
        if !is_match {
            return None;
        }
        slot.was_last_full = false;
        let sealed = slot.seal_open(partition, producer);
        self.unstick(partition);
        sealed
    }

    /// The open batches whose linger should end now because `send` is waiting for buffer space: their bytes
    /// only come back once they are sent. Each batch is listed once, so a producer under sustained back-pressure
    /// does not flood its senders; the sender still seals a batch only when it has room to send it, so batches
    /// keep filling while earlier ones are in flight.
    pub fn expire_lingers(&mut self) -> Vec<(u32, u64)> {
        let mut expired = Vec::new();
        for (partition, slot) in self.partitions.iter_mut().enumerate() {
            if let Some(open) = slot.open.as_ref().filter(|_| !slot.is_linger_expired) {
                slot.is_linger_expired = true;
                expired.push((partition as u32, open.id));
            }
        }
        expired
    }

    /// Partitions that have an open batch.
    pub fn open_partitions(&self) -> impl Iterator<Item = u32> + '_ {
        self.partitions.iter().enumerate().filter(|(_, p)| p.open.is_some()).map(|(i, _)| i as u32)
    }

    /// Keyless records move on once the sticky partition's batch is sealed.
    fn unstick(&mut self, partition: u32) {
        if self.sticky == Some(partition) {
            self.sticky = None;
        }
    }
}

impl OpenBatch {
    fn new(id: u64, capacity: usize) -> Self {
        let (ack_tx, ack_rx) = oneshot::channel();
        Self {
            id,
            opened_at: Instant::now(),
            builder: RecordBatchBuilder::with_capacity(capacity),
            reserved_bytes: 0,
            ack_tx,
            ack: ack_rx.shared(),
        }
    }

    fn seal(self, partition: u32) -> SealedBatch {
        let record_count = self.builder.record_count();
        SealedBatch {
            partition,
            bytes: self.builder.build(),
            record_count,
            reserved_bytes: self.reserved_bytes,
            ack: self.ack_tx,
            opened_at: self.opened_at,
        }
    }
}

/// The value of one record of a batch, once the batch is answered.
pub(crate) fn record_offset(outcome: &BatchOutcome, index: usize) -> Result<i64> {
    match outcome {
        Ok(base) if *base < 0 => Ok(-1),
        Ok(base) => Ok(base + index as i64),
        Err(err) => Err(err.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::FutureExt;
    use rill_protocol::{validate, RecordBatch};

    fn record(value_bytes: usize) -> ProducerRecord {
        ProducerRecord::new(vec![b'x'; value_bytes])
    }

    fn decoded_values(batch: &SealedBatch) -> Vec<usize> {
        let batch = RecordBatch::new(Bytes::from(batch.bytes.clone())).expect("a valid batch");
        batch.records().expect("uncompressed").map(|r| r.expect("record").value.map_or(0, <[u8]>::len)).collect()
    }

    #[test]
    fn an_idempotent_producers_batches_carry_its_id_and_consecutive_sequences_per_partition() {
        let mut batches = TopicBatches::new(2, 1024);
        batches.set_producer(42, 3);
        let mut sealed = Vec::new();
        for i in 0..40 {
            batches.append(i % 2, &record(100), 1_000, 140, &mut sealed);
        }
        sealed.extend(batches.seal(0, None));
        sealed.extend(batches.seal(1, None));
        let mut next = [0i32; 2];
        for batch in &sealed {
            let header = validate(&batch.bytes).expect("stamped before the CRC");
            assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
            assert_eq!(header.base_sequence, next[batch.partition as usize], "partition {}", batch.partition);
            next[batch.partition as usize] += header.record_count;
        }
        assert_eq!(next, [20, 20]);
        assert_eq!(next_sequence(i32::MAX - 1, 3), 1, "wraps past i32::MAX to 0, as Kafka's");
        let plain = TopicBatches::new(1, 1024).seal(0, None);
        assert!(plain.is_none());
    }

    #[test]
    fn a_batch_is_sealed_when_the_next_record_would_overflow_it() {
        let mut batches = TopicBatches::new(1, 1024);
        let mut sealed = Vec::new();
        let mut indexes = Vec::new();
        for _ in 0..25 {
            let appended = batches.append(0, &record(100), 1_000, 140, &mut sealed);
            indexes.push(appended.index);
        }
        assert!(!sealed.is_empty());
        for batch in &sealed {
            assert!(batch.bytes.len() <= 1024, "batch of {} bytes", batch.bytes.len());
            assert!(batch.bytes.len() + 110 > 1024, "sealed before it was full: {} bytes", batch.bytes.len());
            assert_eq!(validate(&batch.bytes).expect("valid").record_count as usize, batch.record_count);
            assert_eq!(decoded_values(batch), vec![100; batch.record_count]);
            assert_eq!(batch.reserved_bytes, 140 * batch.record_count);
        }
        // Indexes restart at 0 in each batch and count up.
        let per_batch = sealed[0].record_count;
        assert_eq!(&indexes[..per_batch + 1], &(0..per_batch).chain([0]).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn the_size_bound_is_never_below_a_records_encoded_size() {
        let value = |n: usize| Some(Bytes::from(vec![b'v'; n]));
        let records = [
            ProducerRecord::default(),
            record(0),
            record(127),
            record(128),
            record(70_000).with_key(vec![b'k'; 300]),
            ProducerRecord { headers: vec![crate::Header { key: "h".repeat(200), value: value(20_000) }], ..record(5) },
            ProducerRecord {
                headers: vec![crate::Header { key: String::new(), value: None }; 3],
                ..Default::default()
            },
        ];
        for record in &records {
            let mut builder = rill_protocol::RecordBatchBuilder::default();
            for _ in 0..200 {
                builder.push_fields(0, None, None, std::iter::empty());
            }
            // The farthest deltas: a timestamp long before the batch's base, an offset delta past 127.
            let headers = record.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref()));
            let exact = builder.fields_bytes(i64::MIN, record.key.as_deref(), record.value.as_deref(), headers);
            assert!(max_encoded_bytes(record) >= exact, "{} < {exact}", max_encoded_bytes(record));
        }
    }

    #[test]
    fn a_record_as_large_as_a_batch_goes_alone_after_the_open_batch() {
        let mut batches = TopicBatches::new(1, 1024);
        let mut sealed = Vec::new();
        batches.append(0, &record(10), 1, 50, &mut sealed);
        assert!(sealed.is_empty());
        let appended = batches.place("t", &record(2000).with_partition(0), 1, 2050, None, &mut sealed).unwrap();
        let [previous, own] = <[SealedBatch; 2]>::try_from(sealed).expect("the open batch, then the large record");
        assert_eq!((previous.record_count, own.record_count), (1, 1));
        assert_eq!(decoded_values(&own), vec![2000]);
        assert_eq!(appended.index, 0);
        assert_eq!(batches.open_partitions().count(), 0);
    }

    #[test]
    fn linger_seals_only_the_batch_it_was_armed_for() {
        let mut batches = TopicBatches::new(2, 1 << 20);
        let appended = batches.append(1, &record(10), 1, 50, &mut Vec::new());
        let id = appended.opened.expect("the first record opens a batch");
        assert!(batches.append(1, &record(10), 1, 50, &mut Vec::new()).opened.is_none());
        assert!(batches.seal(1, Some(id + 1)).is_none());
        let sealed = batches.seal(1, Some(id)).expect("the armed batch");
        assert_eq!(sealed.record_count, 2);
        assert!(batches.seal(1, Some(id)).is_none(), "sealed twice");
        assert!(batches.append(1, &record(10), 1, 50, &mut Vec::new()).opened.is_some_and(|next| next != id));
        assert!(batches.seal(7, None).is_none(), "a partition that does not exist");
    }

    #[test]
    fn keyed_records_use_the_shared_partitioner_and_explicit_partitions_are_checked() {
        let mut batches = TopicBatches::new(6, 1 << 20);
        for key in ["a", "user-42", "order-7", ""] {
            let record = ProducerRecord::new("v").with_key(key);
            let expected = partition_for_key(key.as_bytes(), 6);
            assert_eq!(batches.choose_partition("t", &record).unwrap(), expected);
            assert_eq!(batches.choose_partition("t", &record).unwrap(), expected, "stable for {key:?}");
        }
        assert_eq!(
            batches.choose_partition("t", &ProducerRecord::new("v").with_key("k").with_partition(5)).unwrap(),
            5
        );
        let err = batches.choose_partition("t", &ProducerRecord::new("v").with_partition(6)).unwrap_err();
        assert_eq!(err, Error::UnknownPartition { topic: "t".into(), partition: 6 });
    }

    #[test]
    fn keyless_records_stick_to_a_partition_until_its_batch_is_sealed() {
        // A 100-byte value takes 109 bytes in a batch: 8 fit in 1024 bytes after the 61-byte header.
        const PER_BATCH: usize = 8;
        let mut batches = TopicBatches::new(3, 1024);
        let mut partitions = Vec::new();
        for _ in 0..40 {
            let mut sealed = Vec::new();
            let appended = batches.place("t", &record(100), 1, 140, None, &mut sealed).unwrap();
            partitions.push(appended.partition);
            // Only the sticky partition's own full batch is ever sealed.
            for batch in &sealed {
                assert_eq!(batch.record_count, PER_BATCH, "partition {}", batch.partition);
            }
        }
        let mut runs: Vec<(u32, usize)> = Vec::new();
        for p in partitions {
            match runs.last_mut() {
                Some((last, n)) if *last == p => *n += 1,
                _ => runs.push((p, 1)),
            }
        }
        // Each run fills one batch; the partitions rotate.
        assert!(runs.len() >= 3, "{runs:?}");
        assert!(runs[..runs.len() - 1].iter().all(|&(_, n)| n == PER_BATCH), "{runs:?}");
        assert_eq!(runs.iter().take(3).map(|r| r.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        // A linger seal of the sticky partition moves keyless traffic on as well.
        let sticky = batches.choose_partition("t", &record(1)).unwrap();
        batches.append(sticky, &record(1), 1, 41, &mut Vec::new());
        batches.seal(sticky, None);
        assert_ne!(batches.choose_partition("t", &record(1)).unwrap(), sticky);
    }

    #[test]
    fn every_record_of_a_batch_learns_its_own_offset_from_the_shared_ack() {
        let mut batches = TopicBatches::new(1, 1 << 20);
        let acks: Vec<(usize, BatchAck)> = (0..3)
            .map(|_| {
                let appended = batches.append(0, &record(5), 1, 45, &mut Vec::new());
                (appended.index, appended.ack.expect("no batch was held"))
            })
            .collect();
        let sealed = batches.seal(0, None).unwrap();
        sealed.ack.send(Ok(100)).unwrap();
        for (index, ack) in acks {
            let outcome = ack.now_or_never().expect("answered").expect("sender kept");
            assert_eq!(record_offset(&outcome, index).unwrap(), 100 + index as i64);
        }
        assert_eq!(record_offset(&Ok(-1), 2).unwrap(), -1, "acks none: offsets unknown");
        let err = Error::Unavailable { message: "down".into() };
        assert_eq!(record_offset(&Err(err.clone()), 0).unwrap_err(), err);
    }

    #[test]
    fn each_open_batch_has_its_linger_expired_once() {
        let mut batches = TopicBatches::new(3, 1 << 20);
        let first = batches.append(0, &record(1), 1, 41, &mut Vec::new()).opened.expect("opened");
        let second = batches.append(2, &record(1), 1, 41, &mut Vec::new()).opened.expect("opened");
        assert_eq!(batches.expire_lingers(), vec![(0, first), (2, second)]);
        assert!(batches.expire_lingers().is_empty(), "already expired");
        batches.seal(0, None);
        let third = batches.append(0, &record(1), 1, 41, &mut Vec::new()).opened.expect("a new batch");
        assert_eq!(batches.expire_lingers(), vec![(0, third)]);
    }

    #[test]
    fn partitions_only_grow() {
        let mut batches = TopicBatches::new(2, 1 << 20);
        batches.grow(5);
        assert_eq!(batches.partition_count(), 5);
        batches.grow(3);
        assert_eq!(batches.partition_count(), 5);
    }

    proptest::proptest! {
        /// A `send_batch` through sticky runs builds, byte for byte, the batches that placing each record one by
        /// one builds, with the same partitions, indexes and reserved bytes.
        #[test]
        fn sticky_runs_build_what_record_by_record_placement_builds(
            records in proptest::collection::vec((0usize..700, 0u8..10), 1..300),
            batch_bytes in 1024usize..16384,
        ) {
            let records: Vec<ProducerRecord> = records
                .into_iter()
                .map(|(size, kind)| match kind {
                    0 => record(size).with_key(vec![b'k'; kind as usize + 3]),
                    1 => record(size).with_partition(1),
                    2 => record(size).with_header("h", "v"),
                    _ => record(size),
                })
                .collect();
            let mut one_by_one = TopicBatches::new(3, batch_bytes);
            let mut sealed_one = Vec::new();
            let mut placed_one = Vec::new();
            for r in &records {
                let appended = one_by_one.place("t", r, 7, r.buffered_bytes(), None, &mut sealed_one).unwrap();
                placed_one.push((appended.partition, appended.index));
            }
            let mut in_runs = TopicBatches::new(3, batch_bytes);
            let mut sealed_runs = Vec::new();
            let mut placed_runs = Vec::new();
            let mut i = 0;
            while i < records.len() {
                if let Some(run) = in_runs.append_sticky_run(&records[i..], 7, None) {
                    placed_runs.extend((0..run.count).map(|k| (run.partition, run.first_index + k)));
                    i += run.count;
                    continue;
                }
                let r = &records[i];
                let appended = in_runs.place("t", r, 7, r.buffered_bytes(), None, &mut sealed_runs).unwrap();
                placed_runs.push((appended.partition, appended.index));
                i += 1;
            }
            proptest::prop_assert_eq!(placed_runs, placed_one);
            for partition in 0..3 {
                sealed_one.extend(one_by_one.seal(partition, None));
                sealed_runs.extend(in_runs.seal(partition, None));
            }
            proptest::prop_assert_eq!(sealed_runs.len(), sealed_one.len());
            for (a, b) in sealed_runs.iter().zip(&sealed_one) {
                proptest::prop_assert_eq!((a.partition, a.record_count, a.reserved_bytes), (b.partition, b.record_count, b.reserved_bytes));
                proptest::prop_assert!(a.bytes == b.bytes, "batch bytes differ");
            }
        }

        /// Against a model: every record lands in exactly one batch, in order, at its index; no batch is over
        /// `batch_bytes` unless it holds a single record; and the reserved bytes add up.
        #[test]
        fn every_record_lands_once_in_order_in_a_batch_that_fits(
            sizes in proptest::collection::vec(0usize..3000, 1..200),
            batch_bytes in 1024usize..8192,
        ) {
            let mut batches = TopicBatches::new(1, batch_bytes);
            let mut sealed: Vec<SealedBatch> = Vec::new();
            let mut placed = Vec::new();
            for &size in &sizes {
                let appended = batches.place("t", &record(size).with_partition(0), 5, size + 40, None, &mut sealed).unwrap();
                placed.push(appended.index);
            }
            sealed.extend(batches.seal(0, None));
            let decoded: Vec<usize> = sealed.iter().flat_map(decoded_values).collect();
            proptest::prop_assert_eq!(&decoded, &sizes);
            let mut expected_index = Vec::new();
            for batch in &sealed {
                proptest::prop_assert!(batch.bytes.len() <= batch_bytes || batch.record_count == 1);
                expected_index.extend(0..batch.record_count);
            }
            proptest::prop_assert_eq!(placed, expected_index);
            let reserved: usize = sealed.iter().map(|b| b.reserved_bytes).sum();
            proptest::prop_assert_eq!(reserved, sizes.iter().map(|s| s + 40).sum::<usize>());
        }
    }
}
