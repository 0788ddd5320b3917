//! `rill bench e2e --rate-sweep`: send-to-ack and send-to-consume latency percentiles at each of a list of
//! rates, one end-to-end run per rate on the same topics, and the plot of them against the rate.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::floor::Floor;
use super::report::{Latency, PhaseReport};

/// The rates swept when none are given: 1k to 100k messages a second, about three a decade.
pub const DEFAULT_RATES: [u64; 7] = [1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000];

/// One rate's run.
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    /// Messages per second asked for.
    pub rate: u64,
    /// Messages per second the producers reached.
    pub achieved_per_s: f64,
    pub send_to_ack: Option<Latency>,
    pub send_to_consume: Option<Latency>,
    pub errors: u64,
    /// `--floor`: the loopback ping-pong at this rate after this rate's run, and the steal during both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<Floor>,
}

impl SweepPoint {
    pub fn of(rate: u64, produce: &PhaseReport, consume: &PhaseReport) -> SweepPoint {
        SweepPoint {
            rate,
            achieved_per_s: produce.messages_per_s,
            send_to_ack: produce.latency.clone(),
            send_to_consume: consume.latency.clone(),
            errors: produce.errors + consume.errors,
            floor: None,
        }
    }
}

/// Prints one line per rate.
pub fn print(points: &[SweepPoint], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>8} {:>10}  {:>27}  {:>27}",
        "rate", "achieved", "send->ack p50/p99/p99.9 µs", "send->consume p50/p99/p99.9 µs"
    )?;
    let cell = |latency: &Option<Latency>| match latency {
        Some(l) => format!("{}/{}/{}", l.p50_us, l.p99_us, l.p999_us),
        None => "-".to_owned(),
    };
    for point in points {
        writeln!(
            out,
            "{:>8} {:>10.0}  {:>27}  {:>30}{}",
            point.rate,
            point.achieved_per_s,
            cell(&point.send_to_ack),
            cell(&point.send_to_consume),
            if point.errors > 0 { format!("  ({} errors)", point.errors) } else { String::new() }
        )?;
    }
    if points.iter().all(|point| point.floor.is_none()) {
        return Ok(());
    }
    writeln!(out, "{:>8} {:>10}  {:>27}  {:>27}", "rate", "", "floor p50/p99/p99.9 µs", "steal run/ping-pong %")?;
    let steal = |percent: Option<f64>| percent.map_or_else(|| "?".to_owned(), |p| format!("{p:.1}"));
    for point in points {
        let Some(floor) = &point.floor else { continue };
        writeln!(
            out,
            "{:>8} {:>10}  {:>27}  {:>27}",
            point.rate,
            "",
            cell(&floor.round_trip),
            format!("{}/{}", steal(floor.steal_during_run_percent), steal(floor.steal_during_probe_percent))
        )?;
    }
    Ok(())
}

/// Picks one percentile of a [`Latency`].
type Percentile = fn(&Latency) -> u64;

/// Writes `<dir>/<name>-rate-sweep.csv` (every figure) and `<dir>/<name>-rate-sweep.svg` (send-to-consume
/// p50, p99 and p99.9 against the rate, both axes logarithmic).
pub fn plot(points: &[SweepPoint], dir: &Path, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    use plotters::prelude::*;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let csv_path = dir.join(format!("{name}-rate-sweep.csv"));
    let mut csv = String::from(
        "rate,achieved_per_s,ack_p50_us,ack_p99_us,ack_p999_us,e2e_p50_us,e2e_p99_us,e2e_p999_us,errors\n",
    );
    let figures = |latency: &Option<Latency>| match latency {
        Some(l) => format!("{},{},{}", l.p50_us, l.p99_us, l.p999_us),
        None => ",,".to_owned(),
    };
    for p in points {
        csv.push_str(&format!(
            "{},{:.0},{},{},{}\n",
            p.rate,
            p.achieved_per_s,
            figures(&p.send_to_ack),
            figures(&p.send_to_consume),
            p.errors
        ));
    }
    std::fs::write(&csv_path, csv).with_context(|| format!("cannot write {}", csv_path.display()))?;
    let svg_path = dir.join(format!("{name}-rate-sweep.svg"));
    let series: [(&str, Percentile, RGBColor); 3] =
        [("p50", |l| l.p50_us, BLUE), ("p99", |l| l.p99_us, RED), ("p99.9", |l| l.p999_us, BLACK)];
    let e2e: Vec<(f64, &Latency)> =
        points.iter().filter_map(|p| p.send_to_consume.as_ref().map(|l| (p.rate as f64, l))).collect();
    let min_rate = e2e.iter().map(|(r, _)| *r).fold(f64::MAX, f64::min).min(1000.0);
    let max_rate = e2e.iter().map(|(r, _)| *r).fold(1.0, f64::max).max(min_rate * 10.0);
    let max_ms = e2e.iter().map(|(_, l)| l.p999_us as f64 / 1000.0).fold(0.01, f64::max);
    {
        let root = SVGBackend::new(&svg_path, (900, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("rill bench {name}: send-to-consume latency against rate"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((min_rate..max_rate).log_scale(), (0.01..max_ms * 1.5).log_scale())?;
        chart.configure_mesh().x_desc("messages per second").y_desc("ms").draw()?;
        for (label, pick, color) in series {
            let line: Vec<(f64, f64)> =
                e2e.iter().map(|(rate, l)| (*rate, (pick(l) as f64 / 1000.0).max(0.01))).collect();
            chart
                .draw_series(LineSeries::new(line.iter().copied(), color))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            chart.draw_series(line.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        root.present()?;
    }
    Ok(vec![csv_path, svg_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(p50_us: u64) -> Latency {
        Latency { samples: 10, p50_us, p99_us: p50_us * 3, p999_us: p50_us * 9, max_us: p50_us * 10, mean_us: 1.0 }
    }

    #[test]
    fn the_csv_holds_a_row_per_rate_and_the_plot_is_written() {
        let points: Vec<SweepPoint> = [1_000u64, 10_000]
            .iter()
            .map(|&rate| SweepPoint {
                rate,
                achieved_per_s: rate as f64,
                send_to_ack: Some(latency(rate / 100)),
                send_to_consume: (rate < 10_000).then(|| latency(rate / 50)),
                errors: 0,
                floor: None,
            })
            .collect();
        let dir = tempfile::tempdir().expect("temp dir");
        let written = plot(&points, dir.path(), "w").expect("plot");
        let csv = std::fs::read_to_string(&written[0]).expect("csv");
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows[1], "1000,1000,10,30,90,20,60,180,0");
        assert_eq!(rows[2], "10000,10000,100,300,900,,,,0", "a rate with nothing consumed keeps its columns");
        assert!(std::fs::read_to_string(&written[1]).expect("svg").contains("<svg"));
        let mut out = Vec::new();
        print(&points, &mut out).expect("print");
        assert!(String::from_utf8(out).expect("utf-8").contains("20/60/180"));
    }
}
