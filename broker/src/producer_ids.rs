//! Producer ids for idempotent producers (Kafka's InitProducerId, rill's gRPC `InitProducerId`): never issued
//! twice, across restarts and crashes.
//!
//! Ids are handed out from a block reserved ahead: a block is durable (fsynced) before the first id of it is
//! issued, so a crash loses at most the rest of a block, never re-issues an id. Where blocks come from is
//! [`ProducerIdBlocks`]: on a single node the data dir's `__producer_ids` file ([`LocalProducerIdBlocks`]); in a
//! cluster, the controller commits each block as a metadata command so that every node's ids are disjoint
//! (Kafka's `AllocateProducerIds`, KIP-730; `cluster::producer_id_blocks`).

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{BrokerError, Result};

/// Ids reserved at a time: Kafka's block size. One fsync per this many producers started.
pub const BLOCK_IDS: i64 = 1000;
/// The file, in the data dir, that records the end of the last reserved block.
pub const FILE_NAME: &str = "__producer_ids";
const MAGIC: &[u8; 8] = b"RILLPIDS";

/// Where blocks of producer ids come from. Each call returns ids no earlier call, on any node or before any
/// crash, returned.
pub trait ProducerIdBlocks: Send + Sync {
    fn reserve(&self, count: i64) -> Result<Range<i64>>;
}

/// A single node's blocks, recorded in `<data>/__producer_ids`: magic `RILLPIDS`, the end of the last reserved
/// block (i64, big-endian), CRC-32 of those 16 bytes (u32); rewritten through a temporary file, fsync, rename and
/// directory fsync before any id of the new block is issued.
pub struct LocalProducerIdBlocks {
    path: PathBuf,
}

impl LocalProducerIdBlocks {
    pub fn new(data_dir: &Path) -> LocalProducerIdBlocks {
        LocalProducerIdBlocks { path: data_dir.join(FILE_NAME) }
    }

    fn load_end(&self) -> Result<i64> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(BrokerError::io(&self.path)(e)),
        };
        decode(&bytes).map_err(|reason| BrokerError::CorruptMetadata {
            path: self.path.clone(),
            reason: format!(
                "{reason}; producer ids cannot be issued without knowing which were: restore the file, or replace \
                 it with one whose end is above every producer id ever issued"
            ),
        })
    }

    fn store_end(&self, end: i64) -> Result<()> {
        crate::meta::write_atomically(&self.path, &encode(end))
    }
}

fn encode(end: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&end.to_be_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn decode(bytes: &[u8]) -> std::result::Result<i64, &'static str> {
    let Ok(bytes) = <&[u8; 20]>::try_from(bytes) else { return Err("not 20 bytes long") };
    if crc32fast::hash(&bytes[..16]).to_be_bytes() != bytes[16..] {
        return Err("checksum mismatch");
    }
    if &bytes[..8] != MAGIC {
        return Err("bad magic");
    }
    let end = i64::from_be_bytes(bytes[8..16].try_into().map_err(|_| "short")?);
    if end < 0 {
        return Err("negative end");
    }
    Ok(end)
}

impl ProducerIdBlocks for LocalProducerIdBlocks {
    fn reserve(&self, count: i64) -> Result<Range<i64>> {
        let start = self.load_end()?;
        let end = start
            .checked_add(count)
            .ok_or_else(|| BrokerError::Internal("every producer id up to i64::MAX has been issued".into()))?;
        self.store_end(end)?;
        tracing::debug!(start, end, "reserved a block of producer ids");
        Ok(start..end)
    }
}

/// Issues producer ids from reserved blocks, and reserves the next block before the current one runs out.
///
/// In a cluster a block comes from the controller leader, so an id issued from an empty block waits for it, and
/// for an election if the leader just died or stopped. The next block is reserved in the background once fewer
/// than a tenth of the current one's ids are left, and, on a cluster node, as soon as the node starts (a
/// restarted node's block died with its process): a new producer then gets its id from this node alone, as
/// Kafka's brokers prefetch theirs (KIP-730).
pub struct ProducerIds {
    shared: Arc<Shared>,
}

struct Shared {
    blocks: Box<dyn ProducerIdBlocks>,
    reserved: Mutex<Reserved>,
    /// What `reserved` holds, for the metrics, which must not wait for the lock through a reservation.
    available: AtomicI64,
}

#[derive(Default)]
struct Reserved {
    /// The rest of the current block.
    current: Range<i64>,
    /// A block reserved ahead, taken when `current` is used up.
    next: Option<Range<i64>>,
    /// A background reservation of `next` is under way.
    reserving_next: bool,
}

/// The next block is reserved once no more than this many ids of the current one are left.
const RESERVE_NEXT_BELOW: i64 = BLOCK_IDS / 10;
/// A background reservation that failed (no controller leader yet, an election) tries again after this, doubling.
const RESERVE_NEXT_RETRY_FIRST: Duration = Duration::from_millis(100);
const RESERVE_NEXT_RETRY_MAX: Duration = Duration::from_secs(5);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Reserved> {
        self.reserved.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_blocking(&self) -> Result<i64> {
        let mut reserved = self.lock();
        if reserved.current.is_empty() {
            reserved.current = match reserved.next.take() {
                Some(next) => next,
                // Nothing reserved ahead (or its reservation still under way): reserve here, holding the lock,
                // so that concurrent callers wait for this one block rather than each reserving their own.
                None => self.blocks.reserve(BLOCK_IDS)?,
            };
        }
        let id = reserved.current.next();
        self.publish(&reserved);
        id.ok_or_else(|| BrokerError::Internal("a reserved block of producer ids was empty".into()))
    }

    fn publish(&self, reserved: &Reserved) {
        let ahead = reserved.next.as_ref().map_or(0, |next| next.end - next.start);
        self.available.store(reserved.current.end - reserved.current.start + ahead, Ordering::Relaxed);
    }
}

impl ProducerIds {
    pub fn new(blocks: Box<dyn ProducerIdBlocks>) -> ProducerIds {
        let reserved = Mutex::new(Reserved::default());
        ProducerIds { shared: Arc::new(Shared { blocks, reserved, available: AtomicI64::new(0) }) }
    }

    /// Ids this node can issue before it must reserve a block: the rest of its current block and the next one.
    pub fn available(&self) -> i64 {
        self.shared.available.load(Ordering::Relaxed)
    }

    /// A producer id never issued before. Blocks (an fsync, or a controller round trip) when the current block
    /// is used up and no next one is reserved: call it off the async threads (see [`ProducerIds::issue`]).
    pub fn next_blocking(&self) -> Result<i64> {
        self.shared.next_blocking()
    }

    /// [`ProducerIds::next_blocking`] on a blocking thread; then reserves the next block in the background if
    /// the current one is nearly used up.
    pub async fn issue(&self) -> Result<i64> {
        let shared = Arc::clone(&self.shared);
        let id = crate::registry::blocking(move || shared.next_blocking()).await?;
        self.reserve_next_in_background();
        Ok(id)
    }

    /// Starts reserving the next block on a task of its own, unless one is reserved or being reserved, or more
    /// than a tenth of the current block is left. The task tries until it has the block (a cluster node that
    /// starts before its controller has a leader), or until the node drops these ids. Call it on a runtime.
    pub fn reserve_next_in_background(&self) {
        {
            // Never waits on the async threads: the lock may be held through a reservation (a controller round
            // trip). Found taken, the reservation ahead is left to the next call: a tenth of a block is left for it.
            let mut reserved = match self.shared.reserved.try_lock() {
                Ok(reserved) => reserved,
                Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            };
            let left = reserved.current.end - reserved.current.start;
            if reserved.next.is_some() || reserved.reserving_next || left > RESERVE_NEXT_BELOW {
                return;
            }
            reserved.reserving_next = true;
        }
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut retry_after = RESERVE_NEXT_RETRY_FIRST;
            loop {
                let Some(alive) = shared.upgrade() else { return };
                let reserving = Arc::clone(&alive);
                let reserved = crate::registry::blocking(move || {
                    let block = reserving.blocks.reserve(BLOCK_IDS)?;
                    // On the blocking thread: the lock may be held through another caller's reservation. A
                    // caller that found the current block empty meanwhile reserved its own; this one waits as
                    // the next.
                    let mut reserved = reserving.lock();
                    reserved.next = Some(block);
                    reserved.reserving_next = false;
                    reserving.publish(&reserved);
                    Ok(())
                });
                match reserved.await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::debug!(error = %e, retry_in_ms = retry_after.as_millis() as u64,
                            "could not reserve the next block of producer ids yet");
                    }
                }
                drop(alive);
                tokio::time::sleep(retry_after).await;
                retry_after = (retry_after * 2).min(RESERVE_NEXT_RETRY_MAX);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_issued_twice_across_restarts_even_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let first = ProducerIds::new(Box::new(LocalProducerIdBlocks::new(dir.path())));
        let issued: Vec<i64> = (0..5).map(|_| first.next_blocking().unwrap()).collect();
        assert_eq!(issued, vec![0, 1, 2, 3, 4]);
        // A crash: the rest of the block is lost, never reused.
        drop(first);
        let second = ProducerIds::new(Box::new(LocalProducerIdBlocks::new(dir.path())));
        let after: Vec<i64> = (0..(BLOCK_IDS + 1)).map(|_| second.next_blocking().unwrap()).collect();
        assert_eq!(after[0], BLOCK_IDS);
        assert_eq!(after.last().copied(), Some(2 * BLOCK_IDS));
    }

    /// Blocks from a counter; refuses while `refuse` is set (a cluster with no controller leader). Counts attempts.
    struct CountedBlocks {
        end: Mutex<i64>,
        refuse: Arc<std::sync::atomic::AtomicBool>,
        attempts: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl ProducerIdBlocks for CountedBlocks {
        fn reserve(&self, count: i64) -> Result<Range<i64>> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            if self.refuse.load(Ordering::SeqCst) {
                return Err(BrokerError::ControllerUnavailable { reason: "no controller leader (test)".into() });
            }
            let mut end = self.end.lock().unwrap();
            *end += count;
            Ok(*end - count..*end)
        }
    }

    fn counted() -> (ProducerIds, Arc<std::sync::atomic::AtomicBool>, Arc<std::sync::atomic::AtomicUsize>) {
        let refuse = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let blocks = CountedBlocks { end: Mutex::new(0), refuse: Arc::clone(&refuse), attempts: Arc::clone(&attempts) };
        (ProducerIds::new(Box::new(blocks)), refuse, attempts)
    }

    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_next_block_is_reserved_before_the_current_one_runs_out() {
        let (ids, refuse, attempts) = counted();
        let mut issued = Vec::new();
        for _ in 0..(BLOCK_IDS - RESERVE_NEXT_BELOW - 1) {
            issued.push(ids.issue().await.unwrap());
        }
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "more than a tenth of the block left: nothing reserved ahead");
        assert_eq!(ids.available(), RESERVE_NEXT_BELOW + 1);
        issued.push(ids.issue().await.unwrap());
        until("the next block is reserved", || ids.available() == RESERVE_NEXT_BELOW + BLOCK_IDS).await;
        // The source goes away (the controller leader dies): the ids reserved ahead are still issued, in order.
        refuse.store(true, Ordering::SeqCst);
        for _ in 0..(RESERVE_NEXT_BELOW + BLOCK_IDS) {
            issued.push(ids.issue().await.unwrap());
        }
        assert_eq!(issued, (0..2 * BLOCK_IDS).collect::<Vec<_>>(), "every id once, none skipped");
        let err = ids.issue().await.expect_err("nothing left and nothing to reserve from").to_string();
        assert!(err.contains("no controller leader"), "{err}");
        // Back: the background reservation's retries (or the next caller) get a fresh block.
        refuse.store(false, Ordering::SeqCst);
        until("a block again", || ids.available() > 0).await;
        assert_eq!(ids.issue().await.unwrap(), 2 * BLOCK_IDS);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reservation_ahead_is_retried_until_the_source_answers() {
        let (ids, refuse, attempts) = counted();
        refuse.store(true, Ordering::SeqCst);
        // As a cluster node starting before its controller has a leader.
        ids.reserve_next_in_background();
        ids.reserve_next_in_background();
        until("two refused attempts", || attempts.load(Ordering::SeqCst) >= 2).await;
        assert_eq!(ids.available(), 0);
        refuse.store(false, Ordering::SeqCst);
        until("the block is reserved", || ids.available() == BLOCK_IDS).await;
        let attempts_before = attempts.load(Ordering::SeqCst);
        refuse.store(true, Ordering::SeqCst);
        assert_eq!(ids.next_blocking().unwrap(), 0, "issued from the block reserved ahead");
        assert_eq!(attempts.load(Ordering::SeqCst), attempts_before, "issued without asking the source");
    }

    #[test]
    fn a_damaged_file_refuses_ids_and_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), b"garbage").unwrap();
        let ids = ProducerIds::new(Box::new(LocalProducerIdBlocks::new(dir.path())));
        let err = ids.next_blocking().unwrap_err().to_string();
        assert!(err.contains(FILE_NAME) && err.contains("not 20 bytes"), "{err}");
    }

    #[test]
    fn the_file_round_trips_and_any_flipped_byte_is_caught() {
        let bytes = encode(123_000);
        assert_eq!(decode(&bytes), Ok(123_000));
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(decode(&damaged).is_err(), "byte {at}");
        }
    }
}
