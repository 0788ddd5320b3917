//! `rill bench e2e --breakdown`: where a record's send-to-consume time goes, hop by hop.
//!
//! The client and the embedded broker mark each sampled batch as it passes the points of
//! [`rill_protocol::hops::Hop`]; this turns the whole entries into p50/p99 per hop. A hop is the time from the
//! latest point reached so far to the next point. A point can be reached before the one listed before it (a
//! fetch that arrives between the append and the writer's publish reads the batch without waiting for the
//! publish): that hop is 0 and the next one runs from the later point, so an entry's hops always add up to its
//! total. Such entries are counted as reordered.

use std::io::Write;

use rill_protocol::hops::{Marks, POINTS};
use serde::Serialize;

/// What each hop (between point `i` and point `i + 1`) covers, in path order.
pub const HOP_NAMES: [&str; POINTS - 1] = [
    "client: send -> batch sealed (incl. wait)",
    "client sender -> request to HTTP/2",
    "HTTP/2 transfer + broker decode",
    "broker checks + writer queue",
    "writer -> blocking pool",
    "append (write + tail cache)",
    "back to writer + high-watermark publish",
    "fetch wake + read",
    "fetch answer -> HTTP/2",
    "HTTP/2 transfer + client decode",
];

/// One hop's figures, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HopLatency {
    pub hop: &'static str,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdown {
    /// Entries the figures come from.
    pub batches: usize,
    /// Entries with a point reached before the one listed before it.
    pub reordered: usize,
    pub hops: Vec<HopLatency>,
    /// First point to last: send to client decode.
    pub total: HopLatency,
}

impl Breakdown {
    /// The figures of `entries` (marks in ns); `None` without entries.
    pub fn of(entries: &[Marks]) -> Option<Breakdown> {
        if entries.is_empty() {
            return None;
        }
        let hops_ns: Vec<[u64; POINTS - 1]> = entries.iter().map(hops_of).collect();
        let figures = |name: &'static str, mut ns: Vec<u64>| {
            ns.sort_unstable();
            HopLatency {
                hop: name,
                p50_us: quantile(&ns, 0.50) as f64 / 1000.0,
                p99_us: quantile(&ns, 0.99) as f64 / 1000.0,
                mean_us: ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1000.0,
            }
        };
        Some(Breakdown {
            batches: entries.len(),
            reordered: entries.iter().filter(|m| m.windows(2).any(|pair| pair[0] > pair[1])).count(),
            hops: HOP_NAMES
                .iter()
                .enumerate()
                .map(|(i, name)| figures(name, hops_ns.iter().map(|h| h[i]).collect()))
                .collect(),
            total: figures("total (send -> client decode)", hops_ns.iter().map(|h| h.iter().sum()).collect()),
        })
    }

    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            out,
            "breakdown of {} sampled batches ({} with a point reached before the one listed above it), µs:",
            self.batches, self.reordered
        )?;
        writeln!(out, "  {:<42} {:>9} {:>9} {:>9}", "hop", "p50", "p99", "mean")?;
        for hop in self.hops.iter().chain([&self.total]) {
            writeln!(out, "  {:<42} {:>9.1} {:>9.1} {:>9.1}", hop.hop, hop.p50_us, hop.p99_us, hop.mean_us)?;
        }
        writeln!(out, "  (hop percentiles do not add up to the total's: each is over its own hop)")
    }
}

/// One entry's hops: from the latest point reached to the next point, 0 when that point was reached earlier.
fn hops_of(marks: &Marks) -> [u64; POINTS - 1] {
    let mut reached = marks[0];
    std::array::from_fn(|i| {
        let hop = marks[i + 1].saturating_sub(reached);
        reached = reached.max(marks[i + 1]);
        hop
    })
}

/// The nearest-rank quantile `q` of `sorted` (not empty): the smallest value at or above a `q` share of them.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry whose hop `h` takes `(h + 1) * step_ns`, from a start at `start_ns`.
    fn entry(start_ns: u64, step_ns: u64) -> Marks {
        let mut marks = [0u64; POINTS];
        let mut at = start_ns;
        for (h, mark) in marks.iter_mut().enumerate() {
            at += h as u64 * step_ns;
            *mark = at;
        }
        marks
    }

    #[test]
    fn each_hop_is_the_gap_between_its_points_at_nearest_rank_percentiles() {
        // Steps of 1..=100 µs: hop h of the k-th entry takes (h + 1) * k µs.
        let entries: Vec<Marks> = (1..=100).map(|k| entry(k * 7, k * 1000)).collect();
        let breakdown = Breakdown::of(&entries).expect("whole entries");
        assert_eq!((breakdown.batches, breakdown.reordered), (100, 0));
        assert_eq!(breakdown.hops.len(), POINTS - 1);
        for (h, hop) in breakdown.hops.iter().enumerate() {
            let unit = (h + 1) as f64;
            assert_eq!(hop.hop, HOP_NAMES[h]);
            assert_eq!(hop.p50_us, 50.0 * unit, "{hop:?}");
            assert_eq!(hop.p99_us, 99.0 * unit, "{hop:?}");
            assert_eq!(hop.mean_us, 50.5 * unit, "{hop:?}");
        }
        // Total: 1 + 2 + ... + 10 = 55 steps.
        assert_eq!((breakdown.total.p50_us, breakdown.total.p99_us), (50.0 * 55.0, 99.0 * 55.0));
    }

    #[test]
    fn a_point_reached_early_makes_a_zero_hop_and_the_next_runs_from_the_later_point() {
        // The fetch read (point 8) 5 µs before the publish (point 7): hop 7 is 0, hop 8 runs from point 7.
        let mut early = entry(0, 1000);
        early[8] = early[7] - 5000;
        let breakdown = Breakdown::of(&[early]).expect("one entry");
        assert_eq!((breakdown.batches, breakdown.reordered), (1, 1));
        assert_eq!(breakdown.hops[7].p50_us, 0.0);
        assert_eq!(breakdown.hops[8].p50_us, (early[9] - early[7]) as f64 / 1000.0);
        // Hops still add up to the total.
        let sum: f64 = breakdown.hops.iter().map(|h| h.p50_us).sum();
        assert_eq!(sum, breakdown.total.p50_us);
        assert_eq!(breakdown.total.p50_us, (early[POINTS - 1] - early[0]) as f64 / 1000.0);
        assert!(Breakdown::of(&[]).is_none());
    }

    #[test]
    fn nearest_rank_over_two_entries_takes_the_lower_for_p50_and_the_higher_for_p99() {
        let breakdown = Breakdown::of(&[entry(0, 1000), entry(0, 3000)]).expect("two entries");
        assert_eq!((breakdown.hops[0].p50_us, breakdown.hops[0].p99_us), (1.0, 3.0));
        assert_eq!(breakdown.reordered, 0);
    }

    #[test]
    fn the_printed_table_names_every_hop() {
        let breakdown = Breakdown::of(&[entry(5, 1000)]).expect("one entry");
        let mut out = Vec::new();
        breakdown.print(&mut out).expect("writes to a Vec");
        let text = String::from_utf8(out).expect("utf-8");
        for name in HOP_NAMES {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(text.contains("total (send -> client decode)"));
    }
}
