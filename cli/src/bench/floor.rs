//! `rill bench e2e --floor`: the machine's own latency floor, measured in the same run, and how much CPU the host
//! took from this VM (steal) while rill ran and while the floor was measured.
//!
//! Why: on a shared host the tail of every latency is mostly the host's. A loopback TCP ping-pong between two
//! threads (TCP_NODELAY, the run's record size and rate, the run's duration) is what any broker's round trip on
//! this machine at that moment costs at least: two socket crossings and two thread wake-ups, no broker. rill's
//! p50 minus the floor's p50 is rill's own cost; a p99 near the floor's p99 is the machine's, not rill's.
//! The probe runs after rill's run, not beside it, so that each has the two cores to itself.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::report::{latency_histogram, Latency};

/// How long the probe waits for one echo before it gives up: far past any round trip, short of a hang.
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the probe sends: the run's record size, at its rate, for its duration.
#[derive(Debug, Clone, Copy)]
pub struct FloorProbe {
    pub message_bytes: usize,
    /// Round trips a second; `None` for back to back.
    pub rate: Option<f64>,
    pub duration: Duration,
}

/// The floor beside one run.
#[derive(Debug, Clone, Serialize)]
pub struct Floor {
    pub message_bytes: usize,
    pub rate: Option<f64>,
    pub seconds: f64,
    /// Round-trip time of one message over loopback TCP and back.
    pub round_trip: Option<Latency>,
    /// Share of the CPU time the host took from this VM while rill's run went on (`None`: no `/proc/stat`).
    pub steal_during_run_percent: Option<f64>,
    /// The same while the probe went on.
    pub steal_during_probe_percent: Option<f64>,
}

impl Floor {
    pub fn print(&self, out: &mut impl Write) -> std::io::Result<()> {
        let rate = self.rate.map_or_else(|| "back to back".to_owned(), |rate| format!("at {rate:.0}/s"));
        match &self.round_trip {
            Some(l) => writeln!(
                out,
                "floor    loopback TCP ping-pong, {} B {rate} for {:.2} s (µs, {} samples): p50 {}  p99 {}  p99.9 {}  max {}",
                self.message_bytes, self.seconds, l.samples, l.p50_us, l.p99_us, l.p999_us, l.max_us
            )?,
            None => writeln!(out, "floor    loopback TCP ping-pong: no round trip completed")?,
        }
        let percent = |steal: Option<f64>| steal.map_or_else(|| "unknown".to_owned(), |s| format!("{s:.1}%"));
        writeln!(
            out,
            "floor    cpu steal: {} during rill's run, {} during the ping-pong",
            percent(self.steal_during_run_percent),
            percent(self.steal_during_probe_percent)
        )
    }
}

/// Runs the ping-pong (blocking: call it off the async threads). `steal_during_run_percent` is filled by the
/// caller, who saw rill's run.
pub fn measure(probe: FloorProbe) -> anyhow::Result<Floor> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("floor: cannot listen on loopback")?;
    let addr = listener.local_addr().context("floor: no local address")?;
    let echo = std::thread::Builder::new()
        .name("floor-echo".into())
        .spawn(move || echo(&listener))
        .context("floor: cannot start the echo thread")?;
    let mut stream = TcpStream::connect(addr).context("floor: cannot connect over loopback")?;
    stream.set_nodelay(true).context("floor: cannot set TCP_NODELAY")?;
    stream.set_read_timeout(Some(ECHO_TIMEOUT)).context("floor: cannot set a read timeout")?;
    let before = CpuTicks::read();
    let started = Instant::now();
    let pinged = ping(&mut stream, probe, started);
    let seconds = started.elapsed().as_secs_f64();
    let steal = CpuTicks::read().zip(before).and_then(|(after, before)| after.steal_percent_since(&before));
    // The echo thread ends when the connection does.
    drop(stream);
    let echoed = echo.join().map_err(|_| anyhow::anyhow!("floor: the echo thread panicked"))?;
    let histogram = pinged?;
    echoed.context("floor: the echo thread failed")?;
    Ok(Floor {
        message_bytes: probe.message_bytes,
        rate: probe.rate,
        seconds,
        round_trip: Latency::of(&histogram),
        steal_during_run_percent: None,
        steal_during_probe_percent: steal,
    })
}

/// Sends one message at a time and waits for it to come back, on the rate's schedule, until the duration is
/// over; the histogram holds each round trip in µs.
fn ping(stream: &mut TcpStream, probe: FloorProbe, started: Instant) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let message = vec![0x5a_u8; probe.message_bytes.max(1)];
    let mut back = vec![0_u8; message.len()];
    let mut histogram = latency_histogram();
    let mut sent = 0_u64;
    while started.elapsed() < probe.duration {
        if let Some(rate) = probe.rate {
            // Paced by the schedule: a late round trip is followed at once, not pushed back.
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            if let Some(ahead) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(ahead);
            }
        }
        let sent_at = Instant::now();
        stream.write_all(&message).context("floor: cannot send the ping")?;
        stream.read_exact(&mut back).context("floor: no echo")?;
        histogram.saturating_record(sent_at.elapsed().as_micros().max(1) as u64);
        sent += 1;
    }
    Ok(histogram)
}

fn echo(listener: &TcpListener) -> std::io::Result<()> {
    let (mut connection, _) = listener.accept()?;
    connection.set_nodelay(true)?;
    let mut buffer = vec![0_u8; 64 << 10];
    loop {
        let read = connection.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        connection.write_all(&buffer[..read])?;
    }
}

/// The machine's CPU time so far, in clock ticks, from the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    /// user, nice, system, idle, iowait, irq, softirq and steal: all the time there is (guest time is counted
    /// in user already).
    pub total: u64,
    /// Time this VM was ready to run but the host ran something else.
    pub steal: u64,
}

impl CpuTicks {
    /// Now; `None` where there is no `/proc/stat` or it reads unlike Linux's.
    pub fn read() -> Option<CpuTicks> {
        CpuTicks::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// Parses the aggregate `cpu` line; `None` without one, or with fewer than the eight fields through steal.
    pub fn parse(proc_stat: &str) -> Option<CpuTicks> {
        let line = proc_stat.lines().find(|line| line.split_whitespace().next() == Some("cpu"))?;
        let fields: Vec<u64> =
            line.split_whitespace().skip(1).take(8).map(str::parse::<u64>).collect::<Result<_, _>>().ok()?;
        if fields.len() < 8 {
            return None;
        }
        Some(CpuTicks { total: fields.iter().sum(), steal: fields[7] })
    }

    /// The share of the time since `earlier` that was stolen, in percent; `None` when no tick passed.
    pub fn steal_percent_since(&self, earlier: &CpuTicks) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|&ticks| ticks > 0)?;
        let steal = self.steal.saturating_sub(earlier.steal);
        Some(steal as f64 * 100.0 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_STAT: &str = "cpu  4705 356 584 3699 23 0 23 150 0 0\n\
        cpu0 2353 178 292 1849 12 0 12 75 0 0\n\
        intr 114930548 113199788 3 0 5 263 0 4 [... more]\n";

    #[test]
    fn steal_is_read_from_the_aggregate_cpu_line() {
        let ticks = CpuTicks::parse(PROC_STAT).expect("a cpu line");
        assert_eq!(ticks, CpuTicks { total: 4705 + 356 + 584 + 3699 + 23 + 23 + 150, steal: 150 });
    }

    #[test]
    fn steal_percent_is_the_stolen_share_of_the_ticks_between_two_reads() {
        let earlier = CpuTicks { total: 1_000, steal: 100 };
        let later = CpuTicks { total: 1_400, steal: 200 };
        assert_eq!(later.steal_percent_since(&earlier), Some(25.0));
        assert_eq!(earlier.steal_percent_since(&earlier), None, "no tick passed: no share");
        assert_eq!(earlier.steal_percent_since(&later), None, "a counter that went back is no figure");
    }

    #[test]
    fn a_proc_stat_without_a_whole_cpu_line_gives_no_figure() {
        assert_eq!(CpuTicks::parse(""), None);
        assert_eq!(CpuTicks::parse("cpu0 1 2 3 4 5 6 7 8\n"), None, "a per-core line is not the aggregate");
        assert_eq!(CpuTicks::parse("cpu  1 2 3 4 5 6 7\n"), None, "a kernel without steal");
        assert_eq!(CpuTicks::parse("cpu  1 2 3 x 5 6 7 8\n"), None);
    }

    #[test]
    fn the_floor_reports_round_trip_percentiles_and_both_steal_figures() {
        let mut histogram = latency_histogram();
        for us in 1..=1000 {
            histogram.record(us).expect("in bounds");
        }
        let floor = Floor {
            message_bytes: 1024,
            rate: Some(10_000.0),
            seconds: 5.0,
            round_trip: Latency::of(&histogram),
            steal_during_run_percent: Some(12.5),
            steal_during_probe_percent: None,
        };
        let round_trip = floor.round_trip.as_ref().expect("samples");
        assert_eq!((round_trip.samples, round_trip.p50_us, round_trip.max_us), (1000, 500, 1000));
        assert_eq!((round_trip.p99_us, round_trip.p999_us), (990, 999));
        let mut printed = Vec::new();
        floor.print(&mut printed).expect("prints");
        let printed = String::from_utf8(printed).expect("UTF-8");
        assert!(
            printed.contains("1024 B at 10000/s for 5.00 s (µs, 1000 samples): p50 500  p99 990  p99.9 999  max 1000"),
            "{printed}"
        );
        assert!(printed.contains("cpu steal: 12.5% during rill's run, unknown during the ping-pong"), "{printed}");
    }

    #[test]
    fn the_ping_pong_times_every_round_trip_of_the_duration() {
        let probe = FloorProbe { message_bytes: 1024, rate: Some(2_000.0), duration: Duration::from_millis(200) };
        let floor = measure(probe).expect("loopback works");
        let round_trip = floor.round_trip.expect("round trips completed");
        // Paced at 2000/s for 0.2 s: about 400, fewer only if the machine stalled the probe.
        assert!((1..=401).contains(&round_trip.samples), "{round_trip:?}");
        assert!(round_trip.p50_us >= 1 && round_trip.p50_us <= round_trip.max_us, "{round_trip:?}");
    }
}
