//! `Metronome`: how many records a paced producer is due to have sent, kept by a thread that sleeps on the
//! operating system's timer.
//!
//! A producer paced with `tokio::time::sleep` wakes on tokio's timer, which counts whole milliseconds: at 10k
//! msg/s it woke about once a millisecond and sent the ten records then due back to back, the later ones
//! batched behind the first one's request. That is a workload of bursts, not the steady rate asked for, and its
//! latency was the bursts' (`docs/benchmarks.md`, "Even pacing"). The thread here wakes at each record's due
//! time (to within the kernel's timer slack, about 50 µs) and wakes the producer's task, as an event arriving
//! from elsewhere would. Above about 20k msg/s the thread's wake-ups cannot keep up one by one and records go
//! in small bursts again, each as soon as it is due.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The longest the thread sleeps at once, so that a stopped metronome's thread ends soon even at a low rate.
const LONGEST_SLEEP: Duration = Duration::from_millis(10);

struct Beat {
    /// Records due since the start: `elapsed × rate`, rounded down.
    due: AtomicU64,
    /// Woken each time `due` grows.
    grew: Notify,
    stop: AtomicBool,
}

pub struct Metronome {
    beat: Arc<Beat>,
    thread: Option<JoinHandle<()>>,
}

impl Metronome {
    /// Starts counting `rate` records a second from `started`.
    pub fn start(rate: f64, started: Instant) -> std::io::Result<Metronome> {
        let beat = Arc::new(Beat { due: AtomicU64::new(0), grew: Notify::new(), stop: AtomicBool::new(false) });
        let ticking = beat.clone();
        let thread = std::thread::Builder::new().name("bench-metronome".into()).spawn(move || {
            let mut published = 0;
            while !ticking.stop.load(Ordering::Relaxed) {
                let due = (started.elapsed().as_secs_f64() * rate) as u64;
                if due > published {
                    published = due;
                    ticking.due.store(due, Ordering::Release);
                    ticking.grew.notify_one();
                }
                let next = started + Duration::from_secs_f64((due + 1) as f64 / rate);
                std::thread::sleep(next.saturating_duration_since(Instant::now()).min(LONGEST_SLEEP));
            }
        })?;
        Ok(Metronome { beat, thread: Some(thread) })
    }

    /// Records due so far.
    pub fn due(&self) -> u64 {
        self.beat.due.load(Ordering::Acquire)
    }

    /// Waits until more than `sent` records are due. (A wake-up stored while nobody waited returns at once; the
    /// caller looks at `due` again, so one spare turn is all it costs.)
    pub async fn wait_beyond(&self, sent: u64) {
        while self.due() <= sent {
            self.beat.grew.notified().await;
        }
    }
}

impl Drop for Metronome {
    fn drop(&mut self) {
        self.beat.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // It sleeps at most `LONGEST_SLEEP`; a panic in it would already have shown in the run's figures.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_come_due_at_the_rate_one_by_one() {
        let started = Instant::now();
        let metronome = Metronome::start(2_000.0, started).expect("a thread");
        let mut dues = Vec::new();
        for sent in 0..40 {
            tokio::time::timeout(Duration::from_secs(10), metronome.wait_beyond(sent))
                .await
                .expect("a record due within 10 s at 2,000 a second");
            dues.push((sent, started.elapsed()));
        }
        // At 2,000 a second the 40th record is due at 20 ms, not before.
        let (_, last) = dues[39];
        assert!(last >= Duration::from_millis(20), "40 records due after {last:?}");
        assert!(metronome.due() >= 40);
    }

    #[tokio::test]
    async fn a_dropped_metronome_stops_its_thread_at_a_low_rate() {
        let metronome = Metronome::start(0.001, Instant::now()).expect("a thread");
        assert_eq!(metronome.due(), 0);
        let dropping = Instant::now();
        drop(metronome);
        assert!(dropping.elapsed() < Duration::from_secs(5), "the thread ended within its longest sleep");
    }
}
