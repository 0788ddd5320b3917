//! Records inside a v2 batch, and the builder that encodes them into one.
//!
//! A record is: length (varint, bytes after it), attributes (i8, unused, 0), timestamp delta
//! (varlong, from the batch's base timestamp), offset delta (varint, from the base offset), key
//! length (varint, -1 for null) and key, value length (varint, -1 for null) and value, header count
//! (varint), then per header: key length (varint) and UTF-8 key, value length (varint, -1 for null)
//! and value.

use crate::batch::{self, BatchHeader, Compression, HEADER_BYTES, MAGIC_V2};
use crate::varint::{
    get_varint, get_varlong, put_varint, put_varlong, varlong_len, write_varint, write_varlong, MAX_VARINT_BYTES,
    MAX_VARLONG_BYTES,
};
use crate::BatchError;

/// A record as a producer builds it and a consumer receives it, borrowing nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// A record decoded in place from a batch: its fields borrow the batch's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub offset: i64,
    pub offset_delta: i32,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

impl RecordView<'_> {
    pub fn to_record(&self) -> Record {
        Record {
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self
                .headers
                .iter()
                .map(|(key, value)| Header { key: (*key).to_owned(), value: value.map(<[u8]>::to_vec) })
                .collect(),
            timestamp_ms: self.timestamp_ms,
        }
    }
}

/// Iterates the records section of an uncompressed batch. Stops with an error at the first record
/// that does not parse; never reads past `buf`.
pub struct RecordIter<'a> {
    rest: &'a [u8],
    base_offset: i64,
    base_timestamp: i64,
}

impl<'a> RecordIter<'a> {
    pub fn new(records: &'a [u8], base_offset: i64, base_timestamp: i64) -> Self {
        Self { rest: records, base_offset, base_timestamp }
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, BatchError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = parse_record(self.rest, self.base_offset, self.base_timestamp);
        match parsed {
            Ok((record, used)) => {
                self.rest = &self.rest[used..];
                Some(Ok(record))
            }
            Err(err) => {
                self.rest = &[];
                Some(Err(err))
            }
        }
    }
}

/// A cursor over one record's bytes; every read is bounds-checked.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    #[inline]
    fn varint(&mut self) -> Result<i32, BatchError> {
        let (v, n) = get_varint(self.buf)?;
        self.buf = &self.buf[n..];
        Ok(v)
    }

    #[inline]
    fn varlong(&mut self) -> Result<i64, BatchError> {
        let (v, n) = get_varlong(self.buf)?;
        self.buf = &self.buf[n..];
        Ok(v)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        if n > self.buf.len() {
            return Err(BatchError::MalformedRecord("field longer than the record"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// A length-prefixed byte field; length -1 is null.
    #[inline]
    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        match self.varint()? {
            -1 => Ok(None),
            len if len < -1 => Err(BatchError::MalformedRecord("negative field length")),
            len => self.take(len as usize).map(Some),
        }
    }
}

pub(crate) fn parse_record(
    buf: &[u8],
    base_offset: i64,
    base_timestamp: i64,
) -> Result<(RecordView<'_>, usize), BatchError> {
    let mut headers = Vec::new();
    let (fields, end) = parse_fields(buf, |count, key, value| {
        headers.reserve_exact(count - headers.len());
        headers.push((key, value));
    })?;
    let record = RecordView {
        offset: base_offset.saturating_add(i64::from(fields.offset_delta)),
        offset_delta: fields.offset_delta,
        timestamp_ms: base_timestamp.saturating_add(fields.timestamp_delta),
        key: fields.key,
        value: fields.value,
        headers,
    };
    Ok((record, end))
}

/// Checks that `buf` is a sequence of well-formed records (as [`RecordIter`] would read them) and returns
/// their offset and timestamp deltas, in order, through `on_record`. Builds no [`RecordView`]: this is the
/// per-record validation of storage's append and of the broker's produce path, where only the framing, the
/// deltas and the timestamps matter.
#[inline]
pub(crate) fn walk_records(
    mut buf: &[u8],
    mut on_record: impl FnMut(i32, i64) -> Result<(), BatchError>,
) -> Result<(), BatchError> {
    while !buf.is_empty() {
        let (offset_delta, timestamp_delta, end) = match skim_record(buf) {
            Some(skimmed) => skimmed,
            None => parse_fields(buf, |_, _, _| {})
                .map(|(fields, end)| (fields.offset_delta, fields.timestamp_delta, end))?,
        };
        on_record(offset_delta, timestamp_delta)?;
        buf = &buf[end..];
    }
    Ok(())
}

/// The common record, checked fast: every varint one or two bytes long, no headers. Returns its offset delta,
/// timestamp delta and length, or `None` for anything else, which [`parse_fields`] then reads (and names the fault of). It
/// accepts only records `parse_fields` accepts, so the fallback changes the speed of a check, never its result
/// (`a_skimmed_record_is_read_as_parse_fields_reads_it` below). For 100-byte records the whole validation walk
/// (`check_records_strictly`, callgrind, inclusive) takes ~145 instructions a record: ~210 without this fast
/// path, 161 with its fields read byte by byte instead of as one word. Always inlined: with two callers (the
/// produce check with and without the timestamp range) the compiler otherwise keeps it a call, ~30 instructions
/// a record more.
#[inline(always)]
fn skim_record(buf: &[u8]) -> Option<(i32, i64, usize)> {
    let mut at = 0;
    let length = short_varint(buf, &mut at)?;
    let end = at + usize::try_from(length).ok()?;
    let record = buf.get(..end)?;
    // After the attributes, the timestamp delta, offset delta, key length and (for a null key) value length take
    // at most 8 bytes when each takes one or two: read as one word and decoded with shifts, rather than byte by
    // byte with a bounds check each. A record too short for the word (a value under 3 bytes) goes the slow way.
    let fields = u64::from_le_bytes(record.get(at + 1..at + 9)?.try_into().ok()?);
    let mut word = Word { bits: fields, taken: 0 };
    let timestamp_delta = word.short_varint()?; // any value a short varint holds is valid
    let offset_delta = i32::try_from(word.short_varint()?).ok().filter(|d| *d >= 0)?;
    let key_length = word.short_varint()?;
    let value_length = if key_length == -1 {
        let value_length = word.short_varint()?;
        at += 1 + word.taken;
        value_length
    } else {
        at = (at + 1 + word.taken).checked_add(usize::try_from(key_length).ok()?)?;
        short_varint(record, &mut at)?
    };
    if value_length != -1 {
        at = at.checked_add(usize::try_from(value_length).ok()?)?;
    }
    let header_count = short_varint(record, &mut at)?;
    (header_count == 0 && at == end).then_some((offset_delta, timestamp_delta, end))
}

/// Up to 8 bytes of a record, least significant first, read one short varint at a time.
struct Word {
    bits: u64,
    /// Bytes read so far.
    taken: usize,
}

impl Word {
    /// As [`short_varint`]: a zig-zag varint of one or two bytes, `None` if it is longer. Never reads past the
    /// 8 bytes: four varints of at most two bytes fill them exactly, and no caller reads a fifth.
    #[inline(always)]
    fn short_varint(&mut self) -> Option<i64> {
        let first = self.bits & 0xff;
        let raw = if first < 0x80 {
            self.bits >>= 8;
            self.taken += 1;
            first
        } else {
            let second = (self.bits >> 8) & 0xff;
            if second >= 0x80 {
                return None;
            }
            self.bits >>= 16;
            self.taken += 2;
            (first & 0x7f) | (second << 7)
        };
        Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }
}

/// A zig-zag varint of one or two bytes at `buf[*at..]`, moving `at` past it; `None` if it is longer or cut.
/// Always inlined, as [`skim_record`] is.
#[inline(always)]
fn short_varint(buf: &[u8], at: &mut usize) -> Option<i64> {
    let first = *buf.get(*at)?;
    let raw = if first < 0x80 {
        *at += 1;
        u64::from(first)
    } else {
        let second = *buf.get(*at + 1)?;
        if second >= 0x80 {
            return None;
        }
        *at += 2;
        u64::from(first & 0x7f) | (u64::from(second) << 7)
    };
    Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// The fixed fields of one record.
struct RecordFields<'a> {
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

/// Parses the record at the front of `buf`, handing each header to `on_header` with the record's header count
/// (already checked against the bytes left); returns its fields and the bytes it took.
/// Inlined into both callers, so the validating walk pays for no header collection it does not do.
#[inline(always)]
fn parse_fields<'a>(
    buf: &'a [u8],
    mut on_header: impl FnMut(usize, &'a str, Option<&'a [u8]>),
) -> Result<(RecordFields<'a>, usize), BatchError> {
    let (length, prefix) = get_varint(buf)?;
    if length < 0 {
        return Err(BatchError::MalformedRecord("negative record length"));
    }
    let end = prefix + length as usize;
    if end > buf.len() {
        return Err(BatchError::MalformedRecord("record longer than its batch"));
    }
    let mut cur = Cursor { buf: &buf[prefix..end] };
    let _attributes = cur.take(1)?;
    let timestamp_delta = cur.varlong()?;
    let offset_delta = cur.varint()?;
    if offset_delta < 0 {
        return Err(BatchError::BadOffsetDelta(offset_delta));
    }
    let key = cur.nullable_bytes()?;
    let value = cur.nullable_bytes()?;
    let header_count = cur.varint()?;
    if header_count < 0 {
        return Err(BatchError::MalformedRecord("negative header count"));
    }
    // Each header takes at least two bytes, so a count above that bound is a lie; checking it first
    // keeps a hostile count from reserving memory.
    if header_count as usize > cur.buf.len() / 2 {
        return Err(BatchError::MalformedRecord("header count larger than the record"));
    }
    for _ in 0..header_count {
        let key = cur.nullable_bytes()?.ok_or(BatchError::MalformedRecord("null header key"))?;
        let key = std::str::from_utf8(key).map_err(|_| BatchError::MalformedRecord("header key is not UTF-8"))?;
        on_header(header_count as usize, key, cur.nullable_bytes()?);
    }
    if !cur.buf.is_empty() {
        return Err(BatchError::MalformedRecord("record has bytes after its last header"));
    }
    Ok((RecordFields { timestamp_delta, offset_delta, key, value }, end))
}

/// Encodes records into one uncompressed v2 batch, straight into its output buffer.
///
/// The base offset is 0 and the partition leader epoch is [`batch::NO_PARTITION_LEADER_EPOCH`]:
/// the broker stamps both on append without touching the CRC.
pub struct RecordBatchBuilder {
    buf: Vec<u8>,
    record_count: i32,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    producer: ProducerFields,
}

/// The idempotent producer's fields of a batch header: who wrote it, and the sequence of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerFields {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl ProducerFields {
    /// A batch from a producer that is not idempotent.
    pub const NONE: ProducerFields =
        ProducerFields { producer_id: batch::NO_PRODUCER_ID, producer_epoch: -1, base_sequence: -1 };
}

impl Default for RecordBatchBuilder {
    fn default() -> Self {
        Self::with_capacity(4096)
    }
}

impl RecordBatchBuilder {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(HEADER_BYTES));
        buf.resize(HEADER_BYTES, 0);
        Self { buf, record_count: 0, base_timestamp: None, max_timestamp: i64::MIN, producer: ProducerFields::NONE }
    }

    /// Marks the batch as an idempotent producer's (the fields are covered by the CRC, so they are set before
    /// [`RecordBatchBuilder::build`]).
    pub fn set_producer(&mut self, producer: ProducerFields) {
        self.producer = producer;
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    pub fn record_count(&self) -> usize {
        self.record_count as usize
    }

    /// Bytes the batch would take if built now.
    pub fn encoded_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Bytes `record` would add to the batch.
    pub fn record_bytes(&self, record: &Record) -> usize {
        self.fields_bytes(record.timestamp_ms, record.key.as_deref(), record.value.as_deref(), header_fields(record))
    }

    /// Bytes a record made of these borrowed fields would add to the batch (see [`Self::push_fields`]).
    pub fn fields_bytes<'h, H>(&self, timestamp_ms: i64, key: Option<&[u8]>, value: Option<&[u8]>, headers: H) -> usize
    where
        H: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
        H::IntoIter: ExactSizeIterator,
    {
        let body = body_len(self.timestamp_delta(timestamp_ms), self.record_count, key, value, headers.into_iter());
        varlong_len(body as i64) + body
    }

    fn timestamp_delta(&self, timestamp_ms: i64) -> i64 {
        timestamp_ms.wrapping_sub(self.base_timestamp.unwrap_or(timestamp_ms))
    }

    /// Appends one record. Records get consecutive offset deltas from 0.
    pub fn push(&mut self, record: &Record) {
        self.push_fields(record.timestamp_ms, record.key.as_deref(), record.value.as_deref(), header_fields(record));
    }

    /// Appends one record given as borrowed fields, so a caller holding its bytes in any container (`Bytes`,
    /// slices of a bigger buffer) encodes them straight into the batch without building a [`Record`] first.
    /// `headers` is walked twice (once to size the record, once to write it), hence `Clone`.
    pub fn push_fields<'h, H>(&mut self, timestamp_ms: i64, key: Option<&[u8]>, value: Option<&[u8]>, headers: H)
    where
        H: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
        H::IntoIter: ExactSizeIterator + Clone,
    {
        let headers = headers.into_iter();
        let base = *self.base_timestamp.get_or_insert(timestamp_ms);
        let timestamp_delta = timestamp_ms.wrapping_sub(base);
        let offset_delta = self.record_count;
        if key.is_none() && headers.len() == 0 {
            // The common record of a throughput producer, with its constant fields written as constants.
            self.push_value(timestamp_delta, offset_delta, value);
        } else {
            self.push_all(timestamp_delta, offset_delta, key, value, headers);
        }
        self.record_count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp_ms);
    }

    /// A record with no key and no headers: its fields before the value are assembled in a small array and
    /// appended at once. Pushing them a byte at a time (a capacity check each) cost ~150 instructions a record,
    /// more than the rest of a 100-byte record's encoding.
    #[inline(always)]
    fn push_value(&mut self, timestamp_delta: i64, offset_delta: i32, value: Option<&[u8]>) {
        // The length goes in front of the fields, and its size depends on theirs: the fields are written after
        // room for the longest length, and the length is written to end where they start.
        const FIELDS_AT: usize = MAX_VARINT_BYTES;
        const MOST_BYTES: usize = MAX_VARINT_BYTES + 1 + MAX_VARLONG_BYTES + MAX_VARINT_BYTES + 1 + MAX_VARINT_BYTES;
        // Room to copy MOST_BYTES from any start: a copy of constant length is a few moves, not a `memcpy` call.
        let mut head = [0u8; FIELDS_AT + MOST_BYTES];
        // Attributes (unused in v2) stay 0.
        let mut end = write_varlong(&mut head, FIELDS_AT + 1, timestamp_delta);
        end = write_varint(&mut head, end, offset_delta);
        head[end] = 1; // key length -1 (null), zig-zag encoded
        let value_bytes = value.unwrap_or_default();
        end = write_varint(&mut head, end + 1, value.map_or(-1, |v| v.len() as i32));
        // The value, then a header count of 0.
        let body = end - FIELDS_AT + value_bytes.len() + 1;
        let start = FIELDS_AT - varlong_len(body as i64);
        write_varint(&mut head, start, body as i32);
        let fields_end = self.buf.len() + (end - start);
        if self.buf.capacity() - self.buf.len() > MOST_BYTES + value_bytes.len() {
            self.buf.extend_from_slice(&head[start..start + MOST_BYTES]);
            self.buf.truncate(fields_end);
        } else {
            // Near the end of a batch sized to its limit: grow by what the record takes, not by the copy's slack.
            self.buf.reserve(end - start + value_bytes.len() + 1);
            self.buf.extend_from_slice(&head[start..end]);
        }
        self.buf.extend_from_slice(value_bytes);
        self.buf.push(0);
    }

    // Kept out of `push_fields`, so the common record's path there stays small.
    #[inline(never)]
    fn push_all<'h>(
        &mut self,
        timestamp_delta: i64,
        offset_delta: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl ExactSizeIterator<Item = (&'h str, Option<&'h [u8]>)> + Clone,
    ) {
        let body = body_len(timestamp_delta, offset_delta, key, value, headers.clone());
        self.buf.reserve(varlong_len(body as i64) + body);
        put_varint(&mut self.buf, body as i32);
        self.buf.push(0); // record attributes: unused in v2
        put_varlong(&mut self.buf, timestamp_delta);
        put_varint(&mut self.buf, offset_delta);
        put_nullable(&mut self.buf, key);
        put_nullable(&mut self.buf, value);
        put_varint(&mut self.buf, headers.len() as i32);
        for (header_key, header_value) in headers {
            put_nullable(&mut self.buf, Some(header_key.as_bytes()));
            put_nullable(&mut self.buf, header_value);
        }
    }

    /// Finishes the header (lengths, timestamps, CRC) and returns the batch bytes.
    pub fn build(mut self) -> Vec<u8> {
        let base_timestamp = self.base_timestamp.unwrap_or(0);
        let max_timestamp = if self.record_count == 0 { base_timestamp } else { self.max_timestamp };
        let header = BatchHeader {
            base_offset: 0,
            batch_length: (self.buf.len() - batch::LOG_OVERHEAD) as i32,
            partition_leader_epoch: batch::NO_PARTITION_LEADER_EPOCH,
            magic: MAGIC_V2,
            crc: 0,
            attributes: Compression::None.attribute_bits(),
            last_offset_delta: (self.record_count - 1).max(0),
            base_timestamp,
            max_timestamp,
            producer_id: self.producer.producer_id,
            producer_epoch: self.producer.producer_epoch,
            base_sequence: self.producer.base_sequence,
            record_count: self.record_count,
        };
        write_header(&mut self.buf, &header);
        self.buf
    }
}

/// Writes `header` over the first `HEADER_BYTES` of `buf` and sets the CRC over the rest.
pub fn write_header(buf: &mut [u8], header: &BatchHeader) {
    buf[0..8].copy_from_slice(&header.base_offset.to_be_bytes());
    buf[8..12].copy_from_slice(&header.batch_length.to_be_bytes());
    buf[12..16].copy_from_slice(&header.partition_leader_epoch.to_be_bytes());
    buf[16] = header.magic as u8;
    buf[21..23].copy_from_slice(&header.attributes.to_be_bytes());
    buf[23..27].copy_from_slice(&header.last_offset_delta.to_be_bytes());
    buf[27..35].copy_from_slice(&header.base_timestamp.to_be_bytes());
    buf[35..43].copy_from_slice(&header.max_timestamp.to_be_bytes());
    buf[43..51].copy_from_slice(&header.producer_id.to_be_bytes());
    buf[51..53].copy_from_slice(&header.producer_epoch.to_be_bytes());
    buf[53..57].copy_from_slice(&header.base_sequence.to_be_bytes());
    buf[57..61].copy_from_slice(&header.record_count.to_be_bytes());
    let crc = batch::batch_crc(buf);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn nullable_len(field: Option<&[u8]>) -> usize {
    match field {
        None => 1,
        Some(bytes) => varlong_len(bytes.len() as i64) + bytes.len(),
    }
}

fn put_nullable(out: &mut Vec<u8>, field: Option<&[u8]>) {
    match field {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, bytes.len() as i32);
            out.extend_from_slice(bytes);
        }
    }
}

fn header_fields(record: &Record) -> impl ExactSizeIterator<Item = (&str, Option<&[u8]>)> + Clone {
    record.headers.iter().map(|h| (h.key.as_str(), h.value.as_deref()))
}

fn body_len<'h>(
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: impl ExactSizeIterator<Item = (&'h str, Option<&'h [u8]>)>,
) -> usize {
    let count = headers.len();
    let headers: usize = headers.map(|(k, v)| nullable_len(Some(k.as_bytes())) + nullable_len(v)).sum();
    1 + varlong_len(timestamp_delta)
        + varlong_len(i64::from(offset_delta))
        + nullable_len(key)
        + nullable_len(value)
        + varlong_len(count as i64)
        + headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The array-assembled encoding of a record with no key and no headers is the general encoder's, byte for
        /// byte, over the whole range of every field (long timestamp deltas, offsets and lengths of 1–5 bytes).
        #[test]
        fn a_keyless_headerless_record_encodes_as_the_general_encoder_does(
            timestamp_delta in prop_oneof![-200i64..200, any::<i64>()],
            offset_delta in prop_oneof![0i32..300, 0i32..i32::MAX],
            value in proptest::option::of(prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                proptest::collection::vec(any::<u8>(), 8000..20_000),
            ]),
        ) {
            let mut fast = RecordBatchBuilder::default();
            fast.push_value(timestamp_delta, offset_delta, value.as_deref());
            let mut general = RecordBatchBuilder::default();
            general.push_all(timestamp_delta, offset_delta, None, value.as_deref(), std::iter::empty());
            prop_assert_eq!(fast.buf, general.buf);
        }

        /// The fast check of the validation walk reads a record exactly as the general parser does, or leaves it to
        /// it: over records of any shape (keys, null values, headers, fields of 1–3 bytes, values of 0–3 bytes that
        /// are too short for its word), each with one byte possibly overwritten, and over bytes of no shape at all.
        #[test]
        fn a_skimmed_record_is_read_as_parse_fields_reads_it(
            timestamp_delta in prop_oneof![-70i64..70, -20_000i64..20_000],
            offset_delta in prop_oneof![0i32..70, -3i32..20_000],
            key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..4)),
            value in proptest::option::of(prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..4),
                proptest::collection::vec(any::<u8>(), 60..9000),
            ]),
            headers in 0usize..2,
            overwrite in proptest::option::of((any::<proptest::sample::Index>(), any::<u8>())),
            noise in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let mut builder = RecordBatchBuilder::default();
            let header_fields = vec![("h", Some(&b"v"[..])); headers];
            builder.push_all(timestamp_delta, offset_delta, key.as_deref(), value.as_deref(), header_fields.into_iter());
            let mut record = builder.buf[HEADER_BYTES..].to_vec();
            if let Some((at, byte)) = overwrite {
                let at = at.index(record.len());
                record[at] = byte;
            }
            for bytes in [&record[..], &noise[..]] {
                if let Some((skimmed_offset, skimmed_timestamp, skimmed_end)) = skim_record(bytes) {
                    let (fields, end) = parse_fields(bytes, |_, _, _| {}).expect("skimmed, so well formed");
                    prop_assert_eq!(
                        (skimmed_offset, skimmed_timestamp, skimmed_end),
                        (fields.offset_delta, fields.timestamp_delta, end)
                    );
                }
            }
        }
    }
}
