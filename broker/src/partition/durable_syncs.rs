//! The fsyncs that produces with durable acks wait for, on a partition whose writer does not fsync each append
//! (durability `never` or `interval`), and that a single node's offset commits wait for.
//!
//! Each waiting call used to hold a blocking-pool thread in [`Log::sync_through`] for the whole wait: many
//! producers on one partition held as many threads, queueing the disk reads and large appends of every partition
//! behind them once the pool was full, and each fsync's end woke every waiting thread and then, through it, its
//! task. Now one blocking task at a time runs the fsyncs for all of a partition's waiters: it fsyncs up to the
//! highest end offset asked for, publishes the durable end on a watch channel (the waiting tasks wake on the async
//! threads, holding no thread while they wait), and goes straight on to the next fsync if a waiter asked for more
//! meanwhile. It ends when nobody waits.
//!
//! Invariant: a waiter returns `Ok` only once the log's durable end covers its offsets, and every waiter returns:
//! the task publishes the durable end before it stops, and a waiter that raises the demand after the task's last
//! look at it finds the task stopped and starts another (the demand and the running flag are read and written
//! in sequentially consistent order on both sides). A failed fsync is reported to every waiter that was waiting
//! when it failed; the next waiter starts a new task (which fails at once if the failure stuck: storage's
//! `FsyncFailed`).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use rill_storage::{Log, StorageError};
use tokio::sync::watch;

use super::copy_of;
use crate::error::Result;

pub(crate) struct DurableSyncs {
    /// The highest end offset a waiter asked to have fsynced.
    demanded: AtomicI64,
    /// Whether a blocking task is running the fsyncs.
    is_running: AtomicBool,
    progress: watch::Sender<Progress>,
}

#[derive(Clone)]
struct Progress {
    /// Every offset below this is fsynced.
    durable_end: i64,
    /// Fsyncs that failed so far: a waiter that sees this move fails with `last_failure`.
    failures: u64,
    last_failure: Option<Arc<StorageError>>,
}

impl DurableSyncs {
    pub(crate) fn new(durable_end: i64) -> Arc<Self> {
        let (progress, _) = watch::channel(Progress { durable_end, failures: 0, last_failure: None });
        Arc::new(DurableSyncs { demanded: AtomicI64::new(durable_end), is_running: AtomicBool::new(false), progress })
    }

    /// Returns once every offset below `end_offset` is fsynced, or with the failure of an fsync that was to
    /// cover it.
    pub(crate) async fn wait_through(self: &Arc<Self>, log: &Arc<Log>, end_offset: i64) -> Result<()> {
        let mut progress = self.progress.subscribe();
        let failures_seen = progress.borrow_and_update().failures;
        self.demanded.fetch_max(end_offset, Ordering::SeqCst);
        if !self.is_running.swap(true, Ordering::SeqCst) {
            let (syncs, log) = (Arc::clone(self), Arc::clone(log));
            tokio::task::spawn_blocking(move || syncs.run(&log));
        }
        loop {
            {
                let now = progress.borrow_and_update();
                if now.durable_end >= end_offset || log.durable_end_offset() >= end_offset {
                    return Ok(());
                }
                if now.failures != failures_seen {
                    let failure = now.last_failure.as_deref().map_or_else(
                        || StorageError::Io {
                            path: Default::default(),
                            source: std::io::Error::other("the fsync task stopped before the fsync"),
                        },
                        copy_of,
                    );
                    return Err(failure.into());
                }
            }
            // The sender lives as long as `self`, which this call holds.
            let _ = progress.changed().await;
        }
    }

    /// The blocking task: fsyncs while a waiter asks for more than is durable.
    fn run(&self, log: &Log) {
        let mut stopped = StopGuard { syncs: self, is_clean: false };
        loop {
            let demanded = self.demanded.load(Ordering::SeqCst);
            if log.durable_end_offset() < demanded {
                if let Err(err) = log.sync_through(demanded) {
                    // Cleared before the failure is published: a waiter that arrives after it was published
                    // starts a task of its own instead of waiting for this one.
                    self.is_running.store(false, Ordering::SeqCst);
                    self.publish_failure(err);
                    stopped.is_clean = true;
                    return;
                }
            }
            let durable_end = log.durable_end_offset();
            self.publish(durable_end);
            if self.demanded.load(Ordering::SeqCst) > durable_end {
                continue;
            }
            self.is_running.store(false, Ordering::SeqCst);
            // A waiter that raised the demand after the load above saw the task still running and counts on it.
            if self.demanded.load(Ordering::SeqCst) <= durable_end || self.is_running.swap(true, Ordering::SeqCst) {
                stopped.is_clean = true;
                return;
            }
        }
    }

    fn publish(&self, durable_end: i64) {
        self.progress.send_if_modified(|progress| {
            let is_newer = durable_end > progress.durable_end;
            progress.durable_end = progress.durable_end.max(durable_end);
            is_newer
        });
    }

    fn publish_failure(&self, err: StorageError) {
        self.progress.send_modify(|progress| {
            progress.failures += 1;
            progress.last_failure = Some(Arc::new(err));
        });
    }
}

/// Stops a task that panicked as one that failed, so that its waiters return and the next one starts a new task.
struct StopGuard<'a> {
    syncs: &'a DurableSyncs,
    is_clean: bool,
}

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        if !self.is_clean {
            self.syncs.is_running.store(false, Ordering::SeqCst);
            let panicked = std::io::Error::other("the fsync task panicked");
            self.syncs.publish_failure(StorageError::Io { path: Default::default(), source: panicked });
        }
    }
}
