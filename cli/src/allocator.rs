//! The process allocator: mimalloc, tuned to keep the memory it frees.
//!
//! A produce or fetch moves megabyte buffers through the allocator. Returned to the OS (mimalloc purges freed
//! memory after 10 ms by default), every new buffer is fresh pages the kernel must zero on first touch: in the
//! produce benchmark's profile that zeroing was 43% of all CPU time. Keeping freed memory for reuse removed it
//! (401 → 659 MB/s on `8-topics-1-partition-1kb`, same session). The cost: resident memory stays at its peak.
//! Its arenas use 2 MiB pages where the kernel allows (see `tune`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (libmimalloc-sys names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Call first thing in `main`. `MIMALLOC_PURGE_DELAY` and `MIMALLOC_ALLOW_LARGE_OS_PAGES` in the environment
/// still win, for experiments.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide integer option; mimalloc reads options atomically and allows setting
        // them at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    // Large (2 MiB) OS pages for mimalloc's arenas, committed eagerly. The broker's tail cache fills up to 1 GiB
    // of fresh memory while producers write; with 4 KiB commits that fill cost a 1 KB produce 17-27% of its
    // throughput in kernel time, with this about 5% (docs/benchmarks.md, 2026-12-01 latency session).
    if std::env::var_os("MIMALLOC_ALLOW_LARGE_OS_PAGES").is_none() {
        // SAFETY: as above.
        unsafe { libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1) };
    }
}
