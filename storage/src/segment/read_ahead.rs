//! A segment's side of read-ahead (`crate::read_ahead`): looking a read up in its window, and topping the window up
//! after a sequential read with chunks that end where batches start.

use super::{lock, read_lock, Segment};
use crate::read_ahead::{self, Lookup, Source};

impl Segment {
    /// What the read-ahead window holds at `position` (`Lookup::Elsewhere` when the segment reads none ahead).
    pub(super) fn look_up_read_ahead(&self, position: u64) -> Lookup {
        match &self.io.read_ahead {
            Some(site) if self.is_read_directly() => lock(&site.window).look_up(position, site.cache.read_ahead_pool()),
            _ => Lookup::Elsewhere,
        }
    }

    /// A read ended at `end`: after a sequential one, keep chunks in flight ahead of it.
    pub(super) fn after_read(&self, end: u64, is_sequential: bool, size: u64) {
        let Some(site) = &self.io.read_ahead else { return };
        let mut window = lock(&site.window);
        if !is_sequential || !self.is_read_directly() {
            window.after_read_elsewhere(end);
            return;
        }
        let Ok(file) = self.direct_reader() else {
            window.after_read_elsewhere(end);
            return;
        };
        let chunk_end = |from: u64| self.chunk_end(from, size);
        let source = Source { cache: &site.cache, file, size, chunk_end: &chunk_end };
        window.after_read(end, &site.window, &source);
    }

    /// Where a chunk read ahead from `from` (a batch start) ends: at the last batch start the offset index names
    /// at most [`read_ahead::CHUNK_BYTES`] further, else at the first it names further still, else at `size`.
    fn chunk_end(&self, from: u64, size: u64) -> u64 {
        let index = read_lock(&self.offset_index);
        let target = from + read_ahead::Shape::get().chunk_bytes;
        let within = index.count_while(|e| u64::from(e.position) <= target);
        if within > 0 && u64::from(index.entry(within - 1).position) > from {
            return u64::from(index.entry(within - 1).position);
        }
        if within < index.entries() {
            return u64::from(index.entry(within).position).min(size);
        }
        size
    }
}
