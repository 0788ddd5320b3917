//! The process allocator: mimalloc, tuned to keep the memory it frees, and the process's transparent huge pages.
//!
//! A produce or fetch moves megabyte buffers through the allocator. Returned to the OS (mimalloc purges freed
//! memory after 10 ms by default), every new buffer is fresh pages the kernel must zero on first touch: in the
//! produce benchmark's profile that zeroing was 43% of all CPU time. Keeping freed memory for reuse removed it
//! (401 → 659 MB/s on `8-topics-1-partition-1kb`, same session). The cost: resident memory stays at its peak.
//! Its arenas are committed eagerly, 2 MiB at a time (see `tune`).
//!
//! Transparent huge pages are kept, except on a VM that hands its free memory back to its host (virtio-balloon
//! free page reporting), where they are turned off for the process. There every page the process touches for
//! the first time is the host's to find again, and the guest zeroes a 2 MiB page in one go inside whatever
//! touched it (an append, a request's buffer): measured at ~275 MB/s, a 7 ms stall per page, against 1-2 GB/s
//! for 4 KiB pages. Until the tail cache had filled once, a fresh broker's produce ran at a third of its rate and
//! its p99 at 10k msg/s was 10-27 ms (0.45-0.66 ms with 4 KiB pages). Once the memory is the process's, huge
//! pages measured 5-8% faster, hence they stay on wherever the first touch is not that slow
//! (docs/benchmarks.md, "Transparent huge pages").

use std::path::Path;
use std::sync::OnceLock;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (libmimalloc-sys names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// `mi_option_allow_thp` in mimalloc v3's `mi_option_e` (no constant for it either).
const MI_OPTION_ALLOW_THP: libmimalloc_sys::mi_option_t = 43;

/// Overrides the choice of transparent huge pages: `on`, `off` or `auto` (the default).
pub const HUGE_PAGES_ENV: &str = "RILL_TRANSPARENT_HUGE_PAGES";

/// Whether the process takes transparent huge pages, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HugePages {
    /// Kept: the kernel's setting decides.
    On,
    /// Off because the VM reports its free memory to its host.
    OffFreePageReporting,
    /// As `RILL_TRANSPARENT_HUGE_PAGES` or `MIMALLOC_ALLOW_THP` asked.
    Asked { on: bool },
}

impl HugePages {
    /// For logs and the benchmark's settings.
    pub fn describe(self) -> &'static str {
        match self {
            HugePages::On => "on",
            HugePages::OffFreePageReporting => "off (this VM reports free memory to its host)",
            HugePages::Asked { on: true } => "on (asked by the environment)",
            HugePages::Asked { on: false } => "off (asked by the environment)",
        }
    }
}

static HUGE_PAGES: OnceLock<HugePages> = OnceLock::new();

/// What [`tune`] chose (`On` before it ran).
pub fn huge_pages() -> HugePages {
    HUGE_PAGES.get().copied().unwrap_or(HugePages::On)
}

/// Call first thing in `main`. `MIMALLOC_PURGE_DELAY`, `MIMALLOC_ALLOW_LARGE_OS_PAGES` and `MIMALLOC_ALLOW_THP`
/// in the environment still win, for experiments. A value of `RILL_TRANSPARENT_HUGE_PAGES` other than `on`,
/// `off` or `auto` is an error, returned for `main` to report.
pub fn tune() -> Result<HugePages, String> {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide integer option; mimalloc reads options atomically and allows setting
        // them at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
    // mimalloc's arenas committed eagerly, 2 MiB at a time. The broker's tail cache fills up to 1 GiB of fresh
    // memory while producers write; committed 4 KiB at a time that fill cost a 1 KB produce 17-27% of its
    // throughput in kernel time, with this about 5% (docs/benchmarks.md, 2026-12-01 latency session).
    if std::env::var_os("MIMALLOC_ALLOW_LARGE_OS_PAGES").is_none() {
        // SAFETY: as above.
        unsafe { libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1) };
    }
    let choice = choose_huge_pages(
        std::env::var(HUGE_PAGES_ENV).ok().as_deref(),
        std::env::var("MIMALLOC_ALLOW_THP").ok().as_deref(),
        || reports_free_pages(Path::new("/sys")),
    )?;
    if matches!(choice, HugePages::OffFreePageReporting | HugePages::Asked { on: false }) {
        disable_huge_pages();
    }
    let _ = HUGE_PAGES.set(choice);
    Ok(choice)
}

/// The choice, from `RILL_TRANSPARENT_HUGE_PAGES`, then `MIMALLOC_ALLOW_THP` (mimalloc has acted on it already),
/// then whether the VM reports free pages (asked only then).
fn choose_huge_pages(
    asked: Option<&str>,
    mimalloc_asked: Option<&str>,
    reports_free_pages: impl FnOnce() -> bool,
) -> Result<HugePages, String> {
    match asked.map(str::trim) {
        Some("on") => return Ok(HugePages::Asked { on: true }),
        Some("off") => return Ok(HugePages::Asked { on: false }),
        Some("auto") | None => {}
        Some(other) => {
            return Err(format!("{HUGE_PAGES_ENV}={other:?} is not a choice: use on, off or auto (the default)"))
        }
    }
    if let Some(value) = mimalloc_asked {
        return Ok(HugePages::Asked { on: value.trim() != "0" });
    }
    Ok(if reports_free_pages() { HugePages::OffFreePageReporting } else { HugePages::On })
}

fn disable_huge_pages() {
    // mimalloc stops asking for huge pages (`madvise`) for the arenas it maps from now on; it reads this option's
    // own process-wide switch only before `main`, hence the `prctl` too, which also covers kernels set to
    // `always`. What was mapped before `main` keeps its pages (a few MiB).
    // SAFETY: as in `tune`.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ALLOW_THP, 0) };
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments and touches no memory of ours. A kernel without it
    // (before 3.15) answers EINVAL, and the process keeps huge pages: slower to fill, not wrong.
    #[cfg(target_os = "linux")]
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Whether this machine is a VM that reports its free memory to its host: a virtio-balloon device (id 5) bound to
/// its driver with VIRTIO_BALLOON_F_REPORTING (feature bit 5) offered, and the kernel's reporting order not
/// raised past the largest block it has (which turns reporting off). `sys` is `/sys`, or a copy in tests.
fn reports_free_pages(sys: &Path) -> bool {
    const VIRTIO_ID_BALLOON: &str = "0x0005";
    const VIRTIO_BALLOON_F_REPORTING: usize = 5;
    // MAX_PAGE_ORDER on x86-64 and arm64 with 4 KiB pages: an order above it is never reached.
    const MAX_PAGE_ORDER: u32 = 10;
    let read = |path: &Path| std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
    let order = read(&sys.join("module/page_reporting/parameters/page_reporting_order"));
    if order.and_then(|o| o.parse::<u32>().ok()).is_some_and(|o| o > MAX_PAGE_ORDER) {
        return false;
    }
    let Ok(devices) = std::fs::read_dir(sys.join("bus/virtio/devices")) else { return false };
    devices.flatten().any(|device| {
        let dir = device.path();
        read(&dir.join("device")).as_deref() == Some(VIRTIO_ID_BALLOON)
            && dir.join("driver").exists()
            // One character per feature bit, bit 0 first.
            && read(&dir.join("features")).is_some_and(|f| f.as_bytes().get(VIRTIO_BALLOON_F_REPORTING) == Some(&b'1'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(sys: &Path, name: &str, id: &str, features: &str, bound: bool) {
        let dir = sys.join("bus/virtio/devices").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("device"), format!("{id}\n")).unwrap();
        std::fs::write(dir.join("features"), format!("{features}\n")).unwrap();
        if bound {
            std::fs::create_dir_all(dir.join("driver")).unwrap();
        }
    }

    fn order(sys: &Path, order: u32) {
        let dir = sys.join("module/page_reporting/parameters");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("page_reporting_order"), format!("{order}\n")).unwrap();
    }

    // The features of this machine's balloon: stats, deflate on OOM and free page reporting.
    const REPORTING: &str = "0110010100000000000000000000000010000000";

    #[test]
    fn a_bound_balloon_offering_free_page_reporting_reports() {
        let sys = tempfile::tempdir().unwrap();
        device(sys.path(), "virtio1", "0x0002", "0010001001100100", true);
        device(sys.path(), "virtio0", "0x0005", REPORTING, true);
        order(sys.path(), 9);
        assert!(reports_free_pages(sys.path()));
    }

    #[test]
    fn no_balloon_an_unbound_one_or_one_without_the_feature_does_not_report() {
        let none = tempfile::tempdir().unwrap();
        assert!(!reports_free_pages(none.path()), "no /sys/bus/virtio at all: bare metal or another hypervisor");
        let unbound = tempfile::tempdir().unwrap();
        device(unbound.path(), "virtio0", "0x0005", REPORTING, false);
        assert!(!reports_free_pages(unbound.path()));
        let without = tempfile::tempdir().unwrap();
        device(without.path(), "virtio0", "0x0005", "0110000100000000", true);
        assert!(!reports_free_pages(without.path()), "bit 5 is 0: the host did not offer reporting");
        let short = tempfile::tempdir().unwrap();
        device(short.path(), "virtio0", "0x0005", "011", true);
        assert!(!reports_free_pages(short.path()));
    }

    #[test]
    fn a_reporting_order_past_the_largest_block_turns_reporting_off() {
        let sys = tempfile::tempdir().unwrap();
        device(sys.path(), "virtio0", "0x0005", REPORTING, true);
        order(sys.path(), 11);
        assert!(!reports_free_pages(sys.path()));
        order(sys.path(), 10);
        assert!(reports_free_pages(sys.path()));
    }

    #[test]
    fn the_environment_wins_over_detection_and_a_bad_value_is_refused() {
        let never = || panic!("detection must not run when the environment decides");
        assert_eq!(choose_huge_pages(Some("on"), None, never), Ok(HugePages::Asked { on: true }));
        assert_eq!(choose_huge_pages(Some("off"), Some("1"), never), Ok(HugePages::Asked { on: false }));
        assert_eq!(choose_huge_pages(None, Some("0"), never), Ok(HugePages::Asked { on: false }));
        assert_eq!(choose_huge_pages(Some("auto"), Some("1"), never), Ok(HugePages::Asked { on: true }));
        assert_eq!(choose_huge_pages(Some("auto"), None, || true), Ok(HugePages::OffFreePageReporting));
        assert_eq!(choose_huge_pages(None, None, || false), Ok(HugePages::On));
        let refused = choose_huge_pages(Some("yes"), None, never).unwrap_err();
        assert!(refused.contains("RILL_TRANSPARENT_HUGE_PAGES=\"yes\"") && refused.contains("on, off or auto"));
    }
}
