//! How the long-running client commands stop when something outside them goes away: `rill produce` whose
//! broker is killed and never comes back or whose broker's disk is full, and `rill consume --follow` whose
//! reader stopped reading.

use crate::common;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{rill, rill_with_stdin, signal, wait_with_deadline, BrokerProcess, FedProducer, TinyFs, DEADLINE, RILL};

#[test]
fn produce_stops_reading_and_exits_1_soon_after_its_broker_is_killed_for_good() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(dir.path());
    rill(&broker.addr, &["topic", "create", "orphaned", "--partitions", "2"]).ok();
    // Endless input: only the producer's own decision to stop ends it.
    let args = ["orphaned", "--print-offsets", "--delivery-timeout-ms", "1000"];
    let mut producer = FedProducer::spawn(&broker.addr, &args, 100, Duration::from_millis(5));
    producer.next_line(); // a record was acknowledged: the producer is mid-stream
    broker.kill();
    // `wait` fails the test if the producer is still running after DEADLINE.
    let (status, stderr) = producer.wait();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1, "{stderr}");
    let summary =
        "records sent were not stored within the delivery timeout (1000 ms), and the rest of stdin was not read";
    assert!(stderr.contains(summary), "{stderr}");
    assert!(stderr.contains("cannot reach the broker at"), "{stderr}");
}

#[test]
fn produce_into_a_full_disk_says_the_brokers_disk_is_full_not_that_the_broker_is_unreachable() {
    let Some(fs) = TinyFs::mount(4 << 20) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let broker = BrokerProcess::start(&fs.path.join("data"));
    let b = broker.addr.as_str();
    rill(b, &["topic", "create", "full", "--segment-bytes", "2097152", "--max-batch-bytes", "2097152"]).ok();
    // 8 MB of lines (in the producer's 1 MiB batches) into a 4 MiB file system: the broker refuses with a full
    // disk, which is retried until the delivery timeout.
    let line = format!("{}\n", "d".repeat(100));
    let input = line.repeat(80_000);
    let produced = rill_with_stdin(b, &["produce", "full", "--delivery-timeout-ms", "1000"], input.as_bytes());
    let stderr = produced.fails(1, "records sent were not stored");
    assert!(stderr.contains(&format!("the broker at {b} cannot store records: its disk is full")), "{stderr}");
    assert!(!stderr.contains("cannot reach") && !stderr.contains("is `rill broker` running"), "{stderr}");
    drop(broker);
    drop(fs);
}

/// Bytes waiting in the pipe behind `fd` (its reader's end).
fn bytes_in_pipe(fd: &impl AsRawFd) -> usize {
    let mut pending: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points at a live c_int.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut pending) };
    assert_eq!(rc, 0, "FIONREAD");
    usize::try_from(pending).unwrap_or_default()
}

/// What the pipe behind `fd` holds at most (64 KiB by default, but only two pages for a user over
/// `fs.pipe-user-pages-soft`).
fn pipe_capacity(fd: &impl AsRawFd) -> usize {
    // SAFETY: F_GETPIPE_SZ takes no argument and only reads the descriptor's pipe.
    let capacity = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) };
    usize::try_from(capacity).expect("F_GETPIPE_SZ on a pipe")
}

/// Waits until the consumer's writes to the pipe behind `stdout` block: the pipe is full, or holds something and
/// has not changed for a second while the consumer has far more to write. "Full" is not always the capacity: a
/// write of up to a page (PIPE_BUF) is atomic, so one that does not fit in the last page's room waits with that
/// room left empty, and so may earlier pages have been left (seen in CI: the pipe never reached 64 KiB).
fn wait_for_blocked_writer(child: &mut std::process::Child, stdout: &impl AsRawFd) {
    let capacity = pipe_capacity(stdout);
    let deadline = Instant::now() + DEADLINE;
    let (mut seen, mut since) = (0, Instant::now());
    loop {
        let held = bytes_in_pipe(stdout);
        if held >= capacity || (held > 0 && held == seen && since.elapsed() >= Duration::from_secs(1)) {
            return;
        }
        if held != seen {
            (seen, since) = (held, Instant::now());
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the consumer exited early: {status:?} {}", stderr_of(child));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the consumer wrote only {held} bytes to its stdout pipe in {DEADLINE:?}: {}", stderr_of(child));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// All of a child's stderr, once it has exited.
fn stderr_of(child: &mut std::process::Child) -> String {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    stderr
}

#[test]
fn sigterm_and_sigint_stop_consume_follow_while_its_stdout_is_a_full_pipe_nobody_reads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(dir.path());
    let b = broker.addr.as_str();
    rill(b, &["topic", "create", "flood"]).ok();
    // Far more than a pipe (64 KiB) and the consumer's own buffers hold.
    let line = format!("{}\n", "x".repeat(200));
    common::rill_with_stdin(b, &["produce", "flood"], line.repeat(5_000).as_bytes()).ok();
    // A group per signal: the second consumer must not wait for the first to have left the group (seen once in
    // CI under load: it never got a partition within the deadline), which is not what this test is about.
    for (sig, group) in [(libc::SIGTERM, "stuck-term"), (libc::SIGINT, "stuck-int")] {
        let mut child = Command::new(RILL)
            .args(["consume", "flood", "--follow", "--group", group])
            .env("RILL_BROKER", b)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rill consume");
        // Held, never read: the pipe fills and the consumer's writes block.
        let stdout = child.stdout.take().expect("piped stdout");
        wait_for_blocked_writer(&mut child, &stdout);
        signal(&child, sig);
        // Fails the test if the consumer is still running after DEADLINE.
        let status = wait_with_deadline(&mut child);
        let stderr = stderr_of(&mut child);
        assert!(status.success(), "signal {sig}: {status:?} {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        drop(stdout);
    }
}
