//! `rill bench e2e --timeline FILE`: every measured latency beside the moment its record was sent, as CSV. A
//! histogram says how long the tail is; the timeline says when it happens: stalls at a fixed period point at a
//! timer, a tail spread evenly over the run at load, a cluster at the start at warm-up.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;

/// What a point measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Send to acknowledgement (the producer's future resolved).
    Ack,
    /// Send to the consumer's decode.
    Consume,
}

#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub kind: Kind,
    /// When the record was sent, µs since the run's epoch.
    pub sent_us: u64,
    pub latency_us: u64,
}

/// The points of one run, gathered from every worker (each adds its own at its end, under one lock).
#[derive(Debug, Default)]
pub struct Timeline {
    points: Mutex<Vec<Point>>,
}

impl Timeline {
    pub fn extend(&self, points: Vec<Point>) {
        self.points.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(points);
    }

    /// Writes `kind,sent_ms,latency_ms` lines in send order.
    pub fn write(&self, path: &Path) -> anyhow::Result<usize> {
        let mut points = self.points.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        points.sort_by_key(|p| (p.sent_us, p.kind == Kind::Consume));
        let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let written = (|| {
            writeln!(out, "kind,sent_ms,latency_ms")?;
            for p in &points {
                let kind = match p.kind {
                    Kind::Ack => "ack",
                    Kind::Consume => "consume",
                };
                writeln!(out, "{kind},{:.3},{:.3}", p.sent_us as f64 / 1e3, p.latency_us as f64 / 1e3)?;
            }
            out.flush()
        })();
        written.with_context(|| format!("cannot write {}", path.display()))?;
        Ok(points.len())
    }
}
