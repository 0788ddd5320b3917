//! `Prefault`: memory touched ahead of the tail cache's growth, by the maintenance pass, not by an append.
//!
//! Why: until the tail cache reaches its limit it grows into memory the allocator takes fresh from the kernel,
//! and the first touch of each fresh page zeroes it inside whatever touched it. With transparent huge pages
//! (`cli/src/allocator.rs` keeps them except where the VM hands free memory back to its host) an append or a
//! request's allocation paid about 2.5 ms once per 2 MiB on this VM, and every record queued behind it waited
//! too: a fresh broker's whole p99 at 10k msg/s, gone once a broker had filled its cache once
//! (docs/benchmarks.md, "Fresh memory"). Here a maintenance pass allocates the
//! memory the cache will grow into, touches one byte per 4 KiB page, and frees it: the allocator keeps what is
//! freed (no purge, `cli/src/allocator.rs`) and hands those pages, already faulted in, to the next allocations.
//!
//! Bounded: it keeps an eighth of the cache's limit (at most [`AHEAD_BYTES`]) touched beyond what the cache
//! holds, never more in all than the limit and that margin, so a broker's memory is about what a full cache
//! makes it anyway; and it touches at most [`PASS_BYTES`] a pass, so a pass stays short. An allocator that gives freed memory back to the kernel
//! makes this useless (the pages are faulted again) but not wrong.

use std::sync::atomic::{AtomicU64, Ordering};

/// The most touched memory kept ahead of the cache's contents (with the default 1 GiB cache): about 6 s of a
/// 10 MB/s stream, and what the rest of the node allocates meanwhile.
pub const AHEAD_BYTES: u64 = 64 << 20;

/// The most one pass touches: 8 blocks of 1 MiB, 80 MB/s at a pass every 100 ms. Enough to stay ahead of a
/// stream that latency matters to. A cache that grew more than this since the last pass is being filled at
/// hundreds of MB/s: its appends are batched deep, pay their own page faults as before, and a pass touches
/// nothing then (the 100 B produce benchmark measured 4% lower with passes touching beside it).
pub const PASS_BYTES: u64 = 8 << 20;

/// Blocks of the size of the cache's largest chunk, so the memory freed is what its chunks are cut from.
const BLOCK_BYTES: usize = 1 << 20;

/// The page size the touches step by.
const PAGE_BYTES: usize = 4096;

#[derive(Debug, Default)]
pub struct Prefault {
    /// Bytes touched so far, over the node's life.
    touched: AtomicU64,
    /// What the cache held at the last pass.
    last_used: AtomicU64,
}

impl Prefault {
    /// Touches what the cache may grow into next, given what it holds and its limit; returns the bytes touched
    /// by this call. Nothing with the cache off (`limit_bytes` 0), nor while it grows faster than a pass touches.
    pub fn top_up(&self, used_bytes: u64, limit_bytes: u64) -> u64 {
        let grown = used_bytes.saturating_sub(self.last_used.swap(used_bytes, Ordering::Relaxed));
        if limit_bytes == 0 || grown > PASS_BYTES {
            return 0;
        }
        let ahead = (limit_bytes / 8).min(AHEAD_BYTES);
        let target = used_bytes.min(limit_bytes).saturating_add(ahead);
        let touched = self.touched.load(Ordering::Relaxed);
        let want = target.saturating_sub(touched).min(PASS_BYTES);
        let blocks = want.div_ceil(BLOCK_BYTES as u64) as usize;
        if blocks == 0 {
            return 0;
        }
        // All held at once, so that each is memory of its own, then all freed together.
        let mut held = Vec::with_capacity(blocks);
        for _ in 0..blocks {
            let mut block = Vec::<u8>::with_capacity(BLOCK_BYTES);
            let spare = block.spare_capacity_mut();
            for page in spare.chunks_mut(PAGE_BYTES) {
                page[0].write(0);
            }
            held.push(std::hint::black_box(block));
        }
        drop(held);
        let added = (blocks * BLOCK_BYTES) as u64;
        self.touched.fetch_add(added, Ordering::Relaxed);
        added
    }

    /// Bytes touched so far.
    pub fn touched_bytes(&self) -> u64 {
        self.touched.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_keeps_a_margin_ahead_of_the_cache_in_passes_and_stops_at_the_limit() {
        const LIMIT: u64 = 128 << 20;
        const AHEAD: u64 = LIMIT / 8;
        let prefault = Prefault::default();
        assert_eq!(prefault.top_up(0, 0), 0, "nothing with the cache off");
        assert_eq!(prefault.top_up(0, LIMIT), PASS_BYTES, "at most a pass's worth at once");
        while prefault.top_up(0, LIMIT) > 0 {}
        assert_eq!(prefault.touched_bytes(), AHEAD, "the margin at first");
        assert_eq!(prefault.top_up(0, LIMIT), 0, "nothing while the cache has not grown");
        assert_eq!(prefault.top_up(5 << 20, LIMIT), 5 << 20, "as much as the cache grew");
        for used_mib in (10..=100).step_by(5) {
            prefault.top_up(used_mib << 20, LIMIT);
        }
        assert_eq!(prefault.touched_bytes(), (100 << 20) + AHEAD, "kept ahead of a cache growing slowly");
        assert_eq!(prefault.top_up(900 << 20, LIMIT), 0, "nothing while the cache grows faster than a pass");
        while prefault.top_up(900 << 20, LIMIT) > 0 {}
        assert_eq!(prefault.touched_bytes(), LIMIT + AHEAD, "never past the limit and the margin");
    }

    #[test]
    fn a_large_cache_gets_at_most_the_fixed_margin() {
        let prefault = Prefault::default();
        while prefault.top_up(0, 4 << 30) > 0 {}
        assert_eq!(prefault.touched_bytes(), AHEAD_BYTES);
    }
}
