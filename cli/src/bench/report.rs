//! Measuring a run: counters the workers bump, a sampler that turns them into a throughput series and a live
//! progress line, latency histograms, and the summary (text, JSON, SVG plots).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Counters shared by every worker of one phase. Relaxed atomics: the sampler only needs eventual totals.
#[derive(Default)]
pub struct Counters {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
}

impl Counters {
    pub fn add(&self, messages: u64, bytes: u64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Latencies in microseconds, 1 µs to 1 minute at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

/// One point a second-tenth of the throughput series.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    pub elapsed_s: f64,
    pub messages_per_s: f64,
    pub mb_per_s: f64,
}

/// Samples `counters` every 100 ms into a series (and a progress line on a terminal) until `done` resolves.
pub async fn sample_until(
    label: &str,
    counters: Arc<Counters>,
    expected_messages: Option<u64>,
    show_progress: bool,
    done: impl std::future::Future<Output = ()>,
) -> Vec<Sample> {
    let bar = (show_progress && std::io::stderr().is_terminal()).then(|| {
        let bar = match expected_messages {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let style =
            indicatif::ProgressStyle::with_template("{prefix:>8} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label.to_owned());
        bar
    });
    let started = Instant::now();
    let mut series = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let (mut last_messages, mut last_bytes, mut last_at) = (0u64, 0u64, started);
    tokio::pin!(done);
    loop {
        let finished = tokio::select! {
            _ = tick.tick() => false,
            () = &mut done => true,
        };
        let now = Instant::now();
        let messages = counters.messages.load(Ordering::Relaxed);
        let bytes = counters.bytes.load(Ordering::Relaxed);
        let dt = now.duration_since(last_at).as_secs_f64();
        if dt > 0.0 {
            let sample = Sample {
                elapsed_s: now.duration_since(started).as_secs_f64(),
                messages_per_s: (messages - last_messages) as f64 / dt,
                mb_per_s: (bytes - last_bytes) as f64 / dt / 1e6,
            };
            if let Some(bar) = &bar {
                bar.set_position(messages);
                bar.set_message(format!("{:.0} msg/s {:.1} MB/s", sample.messages_per_s, sample.mb_per_s));
            }
            series.push(sample);
        }
        (last_messages, last_bytes, last_at) = (messages, bytes, now);
        if finished {
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    series
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Latency {
    pub fn of(histogram: &Histogram<u64>) -> Option<Latency> {
        (!histogram.is_empty()).then(|| Latency {
            samples: histogram.len(),
            p50_us: histogram.value_at_quantile(0.50),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            max_us: histogram.max(),
            mean_us: histogram.mean(),
        })
    }
}

/// The outcome of one phase (produce, consume, or end to end).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub phase: String,
    pub messages: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub messages_per_s: f64,
    pub mb_per_s: f64,
    /// Produce: send to acknowledgement. End to end: send to consume.
    pub latency: Option<Latency>,
    /// CPU this process used during the phase (with `--embedded`, the broker's included).
    pub cpu: Option<CpuUse>,
    pub errors: u64,
    pub series: Vec<Sample>,
    /// The broker's tail-cache reads of the run's partitions during the phase (consume and end to end).
    pub tail_cache: Option<TailCacheUse>,
}

/// Reads the broker answered from its tail cache (memory) or from segment files, as `DescribeTopic` counts them.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TailCacheUse {
    pub hits: u64,
    pub misses: u64,
    pub hit_bytes: u64,
    /// Of `misses`: reads answered from chunks the broker had read ahead (the device read in the background).
    pub read_ahead_hits: u64,
    /// hits / (hits + misses), in percent; `None` with no reads counted (the cache off).
    pub hit_rate_percent: Option<f64>,
}

impl TailCacheUse {
    /// What moved between two readings of the counters.
    pub fn between(before: TailCacheUse, after: TailCacheUse) -> TailCacheUse {
        let hits = after.hits.saturating_sub(before.hits);
        let misses = after.misses.saturating_sub(before.misses);
        let reads = hits + misses;
        TailCacheUse {
            hits,
            misses,
            hit_bytes: after.hit_bytes.saturating_sub(before.hit_bytes),
            read_ahead_hits: after.read_ahead_hits.saturating_sub(before.read_ahead_hits),
            hit_rate_percent: (reads > 0).then(|| hits as f64 * 100.0 / reads as f64),
        }
    }
}

impl PhaseReport {
    /// Adds a later run of the same phase (another replay): totals add up, rates are over the summed time.
    pub fn absorb(&mut self, later: PhaseReport) {
        let offset_s = self.seconds;
        self.series.extend(later.series.into_iter().map(|s| Sample { elapsed_s: s.elapsed_s + offset_s, ..s }));
        self.messages += later.messages;
        self.bytes += later.bytes;
        self.seconds += later.seconds;
        self.messages_per_s = self.messages as f64 / self.seconds;
        self.mb_per_s = self.bytes as f64 / self.seconds / 1e6;
        self.errors += later.errors;
        if let (Some(cpu), Some(more)) = (&mut self.cpu, later.cpu) {
            cpu.user_s += more.user_s;
            cpu.system_s += more.system_s;
            cpu.core_s_per_gb = (cpu.user_s + cpu.system_s) / (self.bytes as f64 / 1e9).max(1e-9);
        }
    }

    pub fn new(
        phase: &str,
        counters: &Counters,
        elapsed: Duration,
        latency: &Histogram<u64>,
        cpu: Option<CpuUse>,
        errors: u64,
        series: Vec<Sample>,
    ) -> Self {
        let messages = counters.messages.load(Ordering::Relaxed);
        let bytes = counters.bytes.load(Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64().max(1e-9);
        PhaseReport {
            phase: phase.to_owned(),
            messages,
            bytes,
            seconds,
            messages_per_s: messages as f64 / seconds,
            mb_per_s: bytes as f64 / seconds / 1e6,
            latency: Latency::of(latency),
            cpu,
            errors,
            series,
            tail_cache: None,
        }
    }

    pub fn print(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{:<8} {:>12} msgs in {:>7.2} s: {:>12.0} msg/s {:>9.1} MB/s{}",
            self.phase,
            self.messages,
            self.seconds,
            self.messages_per_s,
            self.mb_per_s,
            if self.errors > 0 { format!("  ({} errors)", self.errors) } else { String::new() }
        )?;
        if let Some(l) = &self.latency {
            writeln!(
                out,
                "{:<8} latency (µs, {} samples): p50 {}  p99 {}  p99.9 {}  max {}  mean {:.0}",
                "", l.samples, l.p50_us, l.p99_us, l.p999_us, l.max_us, l.mean_us
            )?;
        }
        if let Some(cpu) = &self.cpu {
            writeln!(
                out,
                "{:<8} cpu {:.2} s user + {:.2} s system: {:.2} core-seconds per GB",
                "", cpu.user_s, cpu.system_s, cpu.core_s_per_gb
            )?;
        }
        if let Some(cache) = &self.tail_cache {
            match cache.hit_rate_percent {
                Some(rate) => writeln!(
                    out,
                    "{:<8} tail cache hit rate {rate:.1}% ({} of {} reads, {:.1} MB from memory)",
                    "",
                    cache.hits,
                    cache.hits + cache.misses,
                    cache.hit_bytes as f64 / 1e6
                )
                .and_then(|()| match cache.misses {
                    0 => Ok(()),
                    misses => writeln!(
                        out,
                        "{:<8} read-ahead: {} of the {misses} reads from disk answered from reads ahead",
                        "", cache.read_ahead_hits
                    ),
                })?,
                None => writeln!(out, "{:<8} tail cache: no reads counted (the broker keeps none)", "")?,
            }
        }
        Ok(())
    }
}

/// The CPU time this process has used so far (`getrusage`): on a shared machine, where wall-clock figures move
/// by ±15% from run to run, the CPU a workload costs per byte moves much less, and is what an optimisation cuts.
#[derive(Debug, Clone, Copy)]
pub struct CpuTime {
    user: Duration,
    system: Duration,
}

/// The CPU a phase used.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    pub user_s: f64,
    pub system_s: f64,
    /// (user + system) seconds per 10^9 bytes of values moved: 2.0 means both cores busy at 1 GB/s.
    pub core_s_per_gb: f64,
}

impl CpuTime {
    /// `None` where `getrusage` fails (it does not on Linux; the report then just lacks the line).
    pub fn now() -> Option<Self> {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
        // SAFETY: `getrusage` fills the whole struct it is given when it returns 0, and `usage` is read only then.
        let usage = unsafe {
            if libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) != 0 {
                return None;
            }
            usage.assume_init()
        };
        let duration = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
        };
        Some(Self { user: duration(usage.ru_utime), system: duration(usage.ru_stime) })
    }

    /// What was used between `start` and now, for `bytes` of values moved.
    pub fn since(start: Option<Self>, bytes: u64) -> Option<CpuUse> {
        let (start, end) = (start?, Self::now()?);
        let user_s = end.user.saturating_sub(start.user).as_secs_f64();
        let system_s = end.system.saturating_sub(start.system).as_secs_f64();
        let core_s_per_gb = if bytes == 0 { 0.0 } else { (user_s + system_s) / (bytes as f64 / 1e9) };
        Some(CpuUse { user_s, system_s, core_s_per_gb })
    }
}

/// Everything a run measured, as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct RunReport {
    pub workload: String,
    pub settings: serde_json::Value,
    pub phases: Vec<PhaseReport>,
    #[serde(skip)]
    pub histograms: Vec<(String, Histogram<u64>)>,
    /// `--breakdown`: p50/p99 per hop of the sampled batches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<super::breakdown::Breakdown>,
    /// `--rate-sweep`: latency percentiles at each rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Vec<super::sweep::SweepPoint>>,
    /// `--floor`: the machine's loopback round trip at the run's size and rate, and the CPU steal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<super::floor::Floor>,
}

impl RunReport {
    /// Writes `<dir>/<workload>-throughput.svg` (throughput over time per phase) and, for phases with latencies,
    /// `<dir>/<workload>-<phase>-latency.svg` (latency by percentile).
    pub fn plot(&self, dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
        use plotters::prelude::*;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut written = Vec::new();
        let path = dir.join(format!("{}-throughput.svg", self.workload));
        {
            let root = SVGBackend::new(&path, (900, 420)).into_drawing_area();
            root.fill(&WHITE)?;
            let max_t = self.phases.iter().flat_map(|p| p.series.iter().map(|s| s.elapsed_s)).fold(1.0, f64::max);
            let max_y = self.phases.iter().flat_map(|p| p.series.iter().map(|s| s.mb_per_s)).fold(1.0, f64::max);
            let mut chart = ChartBuilder::on(&root)
                .caption(format!("rill bench {}: throughput", self.workload), ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..max_t, 0.0..max_y * 1.1)?;
            chart.configure_mesh().x_desc("seconds").y_desc("MB/s").draw()?;
            let colors = [BLUE, RED, GREEN];
            for (i, phase) in self.phases.iter().enumerate() {
                let color = colors[i % colors.len()];
                chart
                    .draw_series(LineSeries::new(phase.series.iter().map(|s| (s.elapsed_s, s.mb_per_s)), color))?
                    .label(phase.phase.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            }
            chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
            root.present()?;
        }
        written.push(path);
        for (phase, histogram) in &self.histograms {
            if histogram.is_empty() {
                continue;
            }
            let path = dir.join(format!("{}-{phase}-latency.svg", self.workload));
            let root = SVGBackend::new(&path, (900, 420)).into_drawing_area();
            root.fill(&WHITE)?;
            // x: percentile as "nines" (0 = p0, 1 = p90, 2 = p99, 3 = p99.9), the usual latency plot.
            let points: Vec<(f64, f64)> = [0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999]
                .iter()
                .map(|q: &f64| (-(1.0 - q).log10(), histogram.value_at_quantile(*q) as f64 / 1000.0))
                .collect();
            let max_y = (histogram.max() as f64 / 1000.0).max(0.001);
            let mut chart = ChartBuilder::on(&root)
                .caption(format!("rill bench {}: {phase} latency", self.workload), ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..4.0, 0.0..max_y * 1.1)?;
            chart
                .configure_mesh()
                .x_desc("percentile")
                .x_labels(5)
                .x_label_formatter(&|x: &f64| match x.round() as i32 {
                    _ if (x - x.round()).abs() > 1e-6 => String::new(),
                    0 => "p0".into(),
                    1 => "p90".into(),
                    2 => "p99".into(),
                    3 => "p99.9".into(),
                    _ => "p99.99".into(),
                })
                .y_desc("ms")
                .draw()?;
            chart.draw_series(LineSeries::new(points.iter().copied(), BLUE))?;
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, BLUE.filled())))?;
            root.present()?;
            drop(chart);
            drop(root);
            written.push(path);
        }
        Ok(written)
    }
}
