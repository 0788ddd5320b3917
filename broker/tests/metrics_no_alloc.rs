//! The metric updates on the produce and fetch paths never allocate: a counting global allocator around them
//! sees no allocation. (Its own test binary: the allocator is process-wide.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rill_broker::metrics::{NodeMetrics, PartitionTraffic, RequestMetrics};

struct CountingAllocator;

/// Allocations made by a thread while its `COUNTING` is set.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Per thread, because the test harness's own threads allocate whenever they like (a CI run once saw 4
    // allocations from outside the measured loop); `const` so reading it never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    // `try_with`: a thread being torn down has no thread-locals left, and its allocations are not ours.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: defers to the system allocator; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same layout contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same layout contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from this allocator with `layout`, as the caller guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations `work` makes on this thread (the metric updates run on the caller's thread).
fn allocations_of(work: impl FnOnce()) -> u64 {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.with(|counting| counting.set(true));
    work();
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.load(Ordering::Relaxed)
}

#[test]
fn hot_path_metric_updates_do_not_allocate() {
    let traffic = PartitionTraffic::default();
    let metrics = Arc::new(NodeMetrics::default());
    let fsyncs = rill_storage::latency::LatencyHistogram::default();
    let produce = RequestMetrics::method_index("/rill.v1.Records/Produce");
    let allocated = allocations_of(|| {
        for round in 0..10_000u64 {
            traffic.record_in(100 * round, round);
            traffic.record_out(100 * round, round);
            metrics.grpc.record(produce, Duration::from_micros(round), Some((round % 20) as u16));
            metrics.grpc.record(RequestMetrics::method_index("/unknown/Method"), Duration::from_micros(round), None);
            metrics.kafka.record((round % 100) as i16 - 10, Duration::from_micros(round), round % 7 == 0);
            metrics.writes.record_group((round % 70) as usize);
            fsyncs.record(Duration::from_nanos(round * 997));
            let _open = metrics.connections.opened();
        }
    });
    assert_eq!(allocated, 0, "metric updates allocated {allocated} times");
    // The updates landed: the loop did the work it was measured doing.
    assert_eq!(traffic.records_in.load(Ordering::Relaxed), (0..10_000u64).sum::<u64>());
    assert_eq!(fsyncs.snapshot().count, 10_000);
}
