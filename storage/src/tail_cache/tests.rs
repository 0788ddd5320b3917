use super::*;
use rill_protocol::{Record, RecordBatchBuilder};

/// `count` batches of `records` records each from `base_offset`, as one entry's bytes.
fn run_of_batches(base_offset: i64, count: usize, records: usize) -> (Bytes, i64) {
    let mut bytes = Vec::new();
    let mut next = base_offset;
    for _ in 0..count {
        let mut builder = RecordBatchBuilder::default();
        for i in 0..records {
            builder.push(&Record {
                key: None,
                value: Some(format!("record {}", next + i as i64).into_bytes()),
                headers: vec![],
                timestamp_ms: 1,
            });
        }
        let mut batch = builder.build();
        batch[..8].copy_from_slice(&next.to_be_bytes());
        next += records as i64;
        bytes.extend_from_slice(&batch);
    }
    (Bytes::from(bytes), next)
}

fn offsets_of(bytes: &Bytes) -> Vec<(i64, i64)> {
    rill_protocol::BatchIter::new(bytes.clone())
        .map(|b| b.expect("whole batches"))
        .map(|b| (b.header.base_offset, b.header.next_offset()))
        .collect()
}

/// Inserts `bytes` as a direct write's entry: a buffer of its own, counted at its capacity.
fn insert_bytes(tail: &LogTail, base_offset: i64, next_offset: i64, bytes: &[u8]) {
    let mut buffer = tail.buffer(bytes.len());
    buffer.extend_from_slice(bytes);
    let capacity = buffer.capacity();
    tail.insert_kept(base_offset, next_offset, buffer.freeze(), capacity, 0..bytes.len());
}

/// Inserts `bytes` as a small append's copy, into the log's chunk.
fn insert_copied(tail: &LogTail, base_offset: i64, next_offset: i64, bytes: &[u8]) {
    tail.insert_copy(base_offset, next_offset, bytes.len(), |into| into.extend_from_slice(bytes));
}

fn insert_run(tail: &LogTail, base_offset: i64, count: usize) -> (Bytes, i64) {
    let (bytes, next) = run_of_batches(base_offset, count, 3);
    insert_bytes(tail, base_offset, next, &bytes);
    (bytes, next)
}

/// What one small entry counts against the limit: its buffer's capacity.
const SMALL_ENTRY_BYTES: u64 = BUFFER_GRANULE_BYTES as u64;

#[test]
fn a_limit_of_zero_makes_no_cache() {
    assert!(TailCache::new(0).is_none());
}

#[test]
fn reads_start_at_the_batch_holding_the_offset_and_stop_at_whole_batches() {
    let cache = TailCache::new(1 << 20).unwrap();
    let tail = cache.for_log();
    let (bytes, next) = insert_run(&tail, 10, 4);
    assert_eq!(next, 22);
    let read = tail.read(14, usize::MAX, i64::MAX, true).expect("offset 14 is cached");
    assert_eq!(offsets_of(&read), vec![(13, 16), (16, 19), (19, 22)]);
    assert_eq!(&read[..], &bytes[bytes.len() / 4..]);
    // Slices of the one entry, not copies (the four batches are of one size: offsets 10 to 21 print alike).
    let whole = tail.read(10, usize::MAX, i64::MAX, true).unwrap();
    assert_eq!(read.as_ptr(), whole[bytes.len() / 4..].as_ptr());
    // One byte of room still gets the whole first batch, and no more.
    assert_eq!(offsets_of(&tail.read(10, 1, i64::MAX, true).unwrap()), vec![(10, 13)]);
    // Nothing at or past the limit (the high watermark).
    assert_eq!(offsets_of(&tail.read(10, usize::MAX, 16, true).unwrap()), vec![(10, 13), (13, 16)]);
    assert!(tail.read(16, usize::MAX, 16, true).is_none());
    assert!(tail.read(22, usize::MAX, i64::MAX, true).is_none());
    assert!(tail.read(9, usize::MAX, i64::MAX, true).is_none());
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (4, 3));
    assert_eq!(stats.hit_bytes, read.len() as u64 + bytes.len() as u64 / 4 * 3 + bytes.len() as u64);
    assert_eq!(tail.stats().hits, 4);
}

#[test]
fn evicts_the_oldest_entries_of_any_log_first_and_counts_bytes_exactly() {
    let entry_bytes = SMALL_ENTRY_BYTES;
    let cache = TailCache::new(entry_bytes * 3).unwrap();
    let (first, second) = (cache.for_log(), cache.for_log());
    insert_run(&first, 0, 1);
    insert_run(&second, 0, 1);
    insert_run(&first, 3, 1);
    assert_eq!(cache.stats().used_bytes, entry_bytes * 3);
    insert_run(&second, 3, 1);
    // The oldest (first log, offset 0) went; the rest stay.
    assert!(first.read(0, usize::MAX, i64::MAX, false).is_none());
    assert!(second.read(0, usize::MAX, i64::MAX, false).is_some());
    assert!(first.read(3, usize::MAX, i64::MAX, false).is_some());
    insert_run(&first, 6, 1);
    assert!(second.read(0, usize::MAX, i64::MAX, false).is_none());
    let stats = cache.stats();
    assert_eq!((stats.used_bytes, stats.entries, stats.evictions), (entry_bytes * 3, 3, 2));
}

#[test]
fn an_entry_bigger_than_the_limit_is_not_kept() {
    let (bytes, next) = run_of_batches(0, 4, 3);
    let cache = TailCache::new(SMALL_ENTRY_BYTES - 1).unwrap();
    let tail = cache.for_log();
    insert_bytes(&tail, 0, next, &bytes);
    assert_eq!(cache.stats().used_bytes, 0);
    assert!(tail.read(0, usize::MAX, i64::MAX, true).is_none());
}

#[test]
fn truncation_drops_entries_at_or_past_the_cut_and_a_straddling_one_whole() {
    let cache = TailCache::new(1 << 20).unwrap();
    let tail = cache.for_log();
    let (_, next) = insert_run(&tail, 0, 2);
    let (_, next) = insert_run(&tail, next, 2);
    insert_run(&tail, next, 2);
    tail.remove_from(7);
    assert!(tail.read(0, usize::MAX, i64::MAX, false).is_some());
    assert!(tail.read(6, usize::MAX, i64::MAX, false).is_none(), "the entry holding 7 starts at 6");
    assert!(tail.read(12, usize::MAX, i64::MAX, false).is_none());
    assert_eq!(cache.stats().used_bytes, SMALL_ENTRY_BYTES);
    assert_eq!(cache.stats().entries, 1);
}

#[test]
fn retention_drops_entries_wholly_below_the_new_log_start() {
    let cache = TailCache::new(1 << 20).unwrap();
    let tail = cache.for_log();
    let (_, next) = insert_run(&tail, 0, 2);
    insert_run(&tail, next, 2);
    tail.remove_below(6);
    assert!(tail.read(0, usize::MAX, i64::MAX, false).is_none());
    assert!(tail.read(6, usize::MAX, i64::MAX, false).is_some());
    assert_eq!(cache.stats().used_bytes, SMALL_ENTRY_BYTES);
}

#[test]
fn a_dropped_log_leaves_nothing_and_a_new_log_sees_none_of_it() {
    let cache = TailCache::new(1 << 20).unwrap();
    let other = cache.for_log();
    insert_run(&other, 0, 1);
    {
        let tail = cache.for_log();
        insert_run(&tail, 0, 2);
    }
    let recreated = cache.for_log();
    assert!(recreated.read(0, usize::MAX, i64::MAX, false).is_none());
    assert_eq!(cache.stats().entries, 1);
    other.clear();
    assert_eq!((cache.stats().used_bytes, cache.stats().entries), (0, 0));
}

#[test]
fn removed_entries_do_not_grow_the_eviction_queue_without_bound() {
    let cache = TailCache::new(1 << 30).unwrap();
    let tail = cache.for_log();
    for _ in 0..5000 {
        insert_run(&tail, 0, 1);
        tail.remove_from(0);
    }
    let state = cache.lock();
    assert!(state.order.len() <= 1024 + 1, "queue holds {} ghosts", state.order.len());
    assert_eq!(state.used_bytes, 0);
}

#[test]
fn small_consecutive_entries_are_joined_up_to_max_bytes_and_the_limit() {
    let cache = TailCache::new(1 << 20).unwrap();
    let tail = cache.for_log();
    let (first, next) = insert_run(&tail, 0, 2);
    let (second, next) = insert_run(&tail, next, 2);
    let (third, _) = insert_run(&tail, next, 2);
    let batch_bytes = first.len() / 2;
    let all = tail.read(3, usize::MAX, i64::MAX, true).expect("cached");
    assert_eq!(&all[..], [&first[batch_bytes..], &second[..], &third[..]].concat());
    // Room for three batches: the second entry's and one of the third's, never a torn one.
    let three = tail.read(3, batch_bytes * 3 + 10, i64::MAX, true).unwrap();
    assert_eq!(offsets_of(&three), vec![(3, 6), (6, 9), (9, 12)]);
    assert_eq!(offsets_of(&tail.read(0, usize::MAX, 9, true).unwrap()), vec![(0, 3), (3, 6), (6, 9)]);
}

#[test]
fn a_large_entry_is_answered_with_a_slice_even_when_more_follows() {
    let cache = TailCache::new(1 << 30).unwrap();
    let tail = cache.for_log();
    let (big, next) = run_of_batches(0, 2, 5000);
    assert!(big.len() / 2 >= COALESCE_BELOW_BYTES, "batches of about {} bytes", big.len() / 2);
    insert_bytes(&tail, 0, next, &big);
    insert_run(&tail, next, 2);
    let read = tail.read(5000, usize::MAX, i64::MAX, true).unwrap();
    let whole = tail.read(0, 1, i64::MAX, true).unwrap();
    assert_eq!(read.as_ptr(), whole.as_ptr().wrapping_add(whole.len()), "a slice of the entry");
    assert_eq!(offsets_of(&read), vec![(5000, 10000)]);
}

#[test]
fn an_evicted_buffer_no_reader_holds_is_reused_and_one_held_is_not() {
    let cache = TailCache::new(SMALL_ENTRY_BYTES * 2).unwrap();
    let tail = cache.for_log();
    let (_, next) = insert_run(&tail, 0, 1);
    let held = tail.read(0, usize::MAX, i64::MAX, false).unwrap();
    let (_, next) = insert_run(&tail, next, 1);
    let free = tail.read(next - 3, usize::MAX, i64::MAX, false).unwrap().as_ptr();
    insert_run(&tail, next, 1); // evicts the held entry: its reader keeps it
    assert_eq!(cache.lock().recycled.len(), 0);
    assert_eq!(offsets_of(&held), vec![(0, 3)], "a held slice outlives eviction, unchanged");
    insert_run(&tail, next + 3, 1); // evicts the free one
    assert_eq!(cache.lock().recycled.len(), 1);
    let reused = tail.buffer(10);
    assert_eq!(reused.as_ptr(), free, "the evicted buffer comes back");
    assert_eq!(cache.stats().used_bytes, SMALL_ENTRY_BYTES * 2, "recycled buffers are not counted as held");
}

/// The bytes counted for the chunks of the cache, and whether each open chunk is one of them.
fn chunk_bytes(cache: &TailCache) -> u64 {
    let state = cache.lock();
    assert!(state.open_chunks.values().all(|open| state.chunks.get(&open.id).is_some_and(|c| c.is_open)));
    state.chunks.values().map(|c| c.bytes).sum()
}

#[test]
fn small_appends_share_their_logs_chunk_and_cost_only_their_length() {
    let cache = TailCache::new(64 << 20).unwrap();
    let tail = cache.for_log();
    let mut next = 0;
    let mut runs = Vec::new();
    for _ in 0..100 {
        let (bytes, end) = run_of_batches(next, 1, 3);
        insert_copied(&tail, next, end, &bytes);
        runs.push((next, bytes));
        next = end;
    }
    let stats = cache.stats();
    assert_eq!(stats.entries, 100);
    let payload: usize = runs.iter().map(|(_, bytes)| bytes.len()).sum();
    assert!(payload < CHUNK_BYTES_MIN, "the test's {payload} bytes fit one chunk");
    assert_eq!(stats.used_bytes, chunk_bytes(&cache), "only the chunk is counted, not its entries again");
    assert!(stats.used_bytes >= CHUNK_BYTES_MIN as u64 && stats.used_bytes < 2 * CHUNK_BYTES_MIN as u64);
    let first = tail.read(0, 1, i64::MAX, false).unwrap();
    for (base, bytes) in &runs {
        let read = tail.read(*base, bytes.len(), i64::MAX, false).unwrap();
        assert_eq!(&read[..], &bytes[..]);
    }
    let last = tail.read(runs[99].0, 1, i64::MAX, false).unwrap();
    assert_eq!(last.as_ptr(), first.as_ptr().wrapping_add(payload - last.len()), "one after the other in one chunk");
}

#[test]
fn a_chunk_grows_up_to_its_maximum_and_big_appends_get_their_own_buffer() {
    let cache = TailCache::new(1 << 30).unwrap();
    let tail = cache.for_log();
    let (bytes, _) = run_of_batches(0, 1, 1000);
    assert!(
        bytes.len() > 16 << 10 && bytes.len() < CHUNK_BYTES_MIN && bytes.len() <= CHUNK_BYTES_MAX / 4,
        "a batch of {} bytes",
        bytes.len()
    );
    let mut next = 0;
    for _ in 0..200 {
        let (bytes, end) = run_of_batches(next, 1, 1000);
        insert_copied(&tail, next, end, &bytes);
        next = end;
    }
    let sizes: Vec<usize> = cache.lock().chunks.values().map(|c| c.bytes as usize).collect();
    assert!(sizes.contains(&CHUNK_BYTES_MIN) && sizes.contains(&CHUNK_BYTES_MAX), "chunk sizes {sizes:?}");
    assert!(sizes.iter().all(|&bytes| bytes <= CHUNK_BYTES_MAX));
    let before = cache.stats().used_bytes;
    let (big, end) = run_of_batches(next, 1, 200_000);
    assert!(big.len() > CHUNK_BYTES_MAX / 4);
    insert_copied(&tail, next, end, &big);
    assert_eq!(cache.stats().used_bytes, before + big.len() as u64, "a big append is counted at its own length");
    assert_eq!(&tail.read(next, usize::MAX, i64::MAX, false).unwrap()[..], &big[..]);
}

#[test]
fn chunks_are_counted_until_their_last_entry_goes_and_memory_stays_within_the_limit() {
    let limit = 1 << 20;
    let cache = TailCache::new(limit).unwrap();
    let logs: Vec<LogTail> = (0..5).map(|_| cache.for_log()).collect();
    let mut next = [0i64; 5];
    let mut held = Vec::new();
    for round in 0..3000 {
        let log = round * 7 % 5;
        let (bytes, end) = run_of_batches(next[log], 1, 1 + round % 40);
        insert_copied(&logs[log], next[log], end, &bytes);
        if round % 500 == 0 {
            // A slow reader: its slice outlives the entry's eviction, unchanged by every append after it.
            held.push((logs[log].read(next[log], usize::MAX, i64::MAX, false).unwrap(), bytes));
        }
        next[log] = end;
        let stats = cache.stats();
        assert!(stats.used_bytes <= limit, "round {round}: {} bytes counted", stats.used_bytes);
        let own: u64 = {
            let state = cache.lock();
            state
                .logs
                .values()
                .flat_map(|m| m.values())
                .filter_map(|e| match e.charge {
                    Charge::Own(bytes) => Some(bytes),
                    Charge::Chunk(_) => None,
                })
                .sum()
        };
        assert_eq!(stats.used_bytes, chunk_bytes(&cache) + own, "round {round}: counted is what is pinned");
    }
    assert!(cache.stats().evictions > 0, "the test fills the cache past its limit");
    for (slice, bytes) in &held {
        assert_eq!(&slice[..], &bytes[..], "a held slice is never overwritten");
    }
    // The first logs go idle while the last keeps appending: their chunks go with their last entries.
    for _ in 0..5000 {
        let (bytes, end) = run_of_batches(next[4], 1, 40);
        insert_copied(&logs[4], next[4], end, &bytes);
        next[4] = end;
    }
    let state = cache.lock();
    assert_eq!(state.open_chunks.keys().copied().collect::<Vec<_>>(), vec![logs[4].log_id], "idle logs pin no chunk");
    drop(state);
    for log in &logs {
        log.clear();
    }
    let stats = cache.stats();
    assert_eq!((stats.used_bytes, stats.entries), (0, 0));
    assert!(cache.lock().chunks.is_empty());
}

#[test]
fn truncating_a_log_into_its_chunk_serves_only_the_new_appends() {
    let cache = TailCache::new(64 << 20).unwrap();
    let tail = cache.for_log();
    let (first, next) = run_of_batches(0, 1, 3);
    insert_copied(&tail, 0, next, &first);
    let (dropped, _) = run_of_batches(next, 1, 5);
    insert_copied(&tail, next, next + 5, &dropped);
    tail.remove_from(next);
    let (replacement, end) = run_of_batches(next, 1, 2);
    insert_copied(&tail, next, end, &replacement);
    assert_eq!(&tail.read(0, usize::MAX, i64::MAX, false).unwrap()[..], [&first[..], &replacement[..]].concat());
    assert_eq!(tail.read(end, usize::MAX, i64::MAX, false), None);
}
