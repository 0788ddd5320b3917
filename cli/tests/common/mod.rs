//! What the end-to-end tests of the `rill` client subcommands share: a real `rill broker` process on a free
//! port, and runs of the `rill` binary against it with a deadline. Every process a test starts is killed when its
//! guard drops, so a failing test leaves nothing running.

pub mod cluster;
pub mod console;
pub mod pki;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen well within it.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub const RILL: &str = env!("CARGO_BIN_EXE_rill");

/// Runs `attempt` until it returns `Some`, up to `DEADLINE`: what one node changes reaches the others a raft or
/// replication round trip later, and a restarted node needs a moment to catch up.
#[track_caller]
pub fn eventually<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(done) = attempt() {
            return done;
        }
        assert!(Instant::now() < deadline, "not within {DEADLINE:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `rill broker` process, SIGKILLed when dropped.
pub struct BrokerProcess {
    pub child: Child,
    /// `host:port`, as `--broker` takes it.
    pub addr: String,
}

impl BrokerProcess {
    /// Starts a broker on a free port with its data in `data_dir`.
    pub fn start(data_dir: &Path) -> BrokerProcess {
        let command = Command::new(RILL);
        Self::start_command(command, &["broker", "--listen", "127.0.0.1:0", "--data-dir", &data_dir.to_string_lossy()])
    }

    /// Starts a broker on `addr` (a restart where a killed one listened), with its data in `data_dir`. Tries
    /// again while the address is still taken (the killed process's socket not yet gone), up to `DEADLINE`.
    pub fn start_on(data_dir: &Path, addr: &str) -> BrokerProcess {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut child = Command::new(RILL)
                .args(["broker", "--listen", addr, "--data-dir", &data_dir.to_string_lossy()])
                .env("RUST_LOG", "error")
                .env("RILL_ADMIN_LISTEN", "127.0.0.1:0")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn rill broker");
            let stdout = child.stdout.take().expect("piped stdout");
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            if line.starts_with("rill broker listening on ") {
                return BrokerProcess { child, addr: addr.to_owned() };
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "no broker could start on {addr} within {DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `rill ARGS` (a `broker` command line) in `command`'s directory and environment, and reads the
    /// address it listens on from its first line of stdout.
    /// `command`'s own RUST_LOG (set, or removed for the broker's default) and stderr are kept.
    pub fn start_command(mut command: Command, args: &[&str]) -> BrokerProcess {
        if !command.get_envs().any(|(name, _)| name == "RUST_LOG") {
            // `RILL_TEST_BROKER_LOG=info` (any RUST_LOG filter) shows the brokers' logs, e.g. a failover's timeline.
            // openraft's errors are each failed call to a node a test stopped: the broker logs what they mean.
            let filter = std::env::var("RILL_TEST_BROKER_LOG").unwrap_or_else(|_| "error,openraft=off".to_owned());
            command.env("RUST_LOG", filter);
            command.stderr(Stdio::inherit());
        }
        let mut child = command
            .args(args)
            // Brokers of many tests run at once: never the fixed admin port (a flag in `args` still wins).
            .env("RILL_ADMIN_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn rill broker");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the listen line");
        let Some(addr) = line.trim().strip_prefix("rill broker listening on ") else {
            let _ = child.kill();
            panic!("unexpected first line {line:?}");
        };
        BrokerProcess { child, addr: addr.to_owned() }
    }

    /// `http://host:port`, as a tonic client connects.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id, as `kill` takes it.
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// SIGKILL, and reap: a crash, with no chance to close anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, up to `timeout`. Async, so the test's clients keep running (and answer
    /// the broker's GOAWAY) meanwhile.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// SIGINT (Ctrl-C), then waits for the graceful shutdown; returns the exit status.
    pub fn interrupt(mut self) -> ExitStatus {
        signal(&self.child, libc::SIGINT);
        wait_with_deadline(&mut self.child)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `rill broker` on free ports with its admin listener on, and both addresses it printed; killed when dropped
/// (also when a test step panics).
pub struct AdminBroker {
    pub child: Child,
    /// `host:port` of gRPC and Kafka.
    pub addr: String,
    /// `host:port` of `/metrics`, `/health`, `/ready` and the console.
    pub admin: String,
    /// The data dir it made, if it made one (removed when dropped).
    _dir: Option<tempfile::TempDir>,
}

impl AdminBroker {
    /// Starts one on a fresh data dir, with `extra` flags after the others.
    pub fn start(extra: &[&str]) -> AdminBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut broker = AdminBroker::start_in(dir.path(), extra);
        broker._dir = Some(dir);
        broker
    }

    /// Starts one on `data_dir`, which the caller keeps (to start another broker on it after this one).
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> AdminBroker {
        AdminBroker::start_command(Command::new(RILL), data_dir, extra)
    }

    /// Starts one from `command` (a `Command::new(RILL)` with the environment the test wants: variables set or
    /// removed) on `data_dir`, with `extra` flags after the others.
    pub fn start_command(mut command: Command, data_dir: &Path, extra: &[&str]) -> AdminBroker {
        let mut child = command
            .args(["broker", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn rill broker");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut next_line = || lines.next().and_then(Result::ok).unwrap_or_default();
        let addr = next_line().trim_start_matches("rill broker listening on ").to_string();
        let admin = next_line()
            .trim_start_matches("rill admin listening on ")
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string();
        let broker = AdminBroker { child, addr, admin, _dir: None };
        assert!(!broker.addr.is_empty() && !broker.admin.is_empty(), "the broker printed both addresses");
        broker
    }
}

impl Drop for AdminBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny tmpfs, for a broker whose disk fills up; unmounted when dropped. Mounting needs root (as CI and the
/// development machines have): `None` elsewhere, and the test says so and passes.
pub struct TinyFs {
    pub path: PathBuf,
}

impl TinyFs {
    pub fn mount(bytes: u64) -> Option<TinyFs> {
        let path = tempfile::tempdir().ok()?.keep();
        let is_mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .output()
            .is_ok_and(|o| o.status.success());
        if !is_mounted {
            let _ = std::fs::remove_dir(&path);
        }
        is_mounted.then_some(TinyFs { path })
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        // Lazy: a broker still holding files open would make a plain umount fail and leave the mount behind.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// An address where nothing listens, for a broker to be started on later: a free port below the kernel's
/// ephemeral range, never one this test binary was given before. Below that range because a port the kernel hands
/// out itself (a `bind` to port 0, the source port of any outgoing connection) may be handed out again to
/// another socket before the broker binds it: a node of a CI run once failed with "address already in use" so.
/// Nothing takes a port there unless asked for it by number, and within the binary the list below keeps two
/// tests from asking for the same one.
pub fn dead_address() -> String {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Linux's default range starts at 32768; a machine set otherwise is read.
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_start.max(11_000));
    // Each binary starts at its own place in the range, so that two test binaries run at once rarely meet.
    let span = u32::from(high - low);
    let mut port = low + (std::process::id().wrapping_mul(7919) % span) as u16;
    for _ in 0..span {
        port = if port + 1 >= high { low } else { port + 1 };
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return format!("127.0.0.1:{port}");
        }
    }
    panic!("no free port in {low}..{high}");
}

/// What one run of `rill` did.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

impl Output {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(self.status.success(), "rill failed: {self:?}");
        assert!(!self.stderr.contains("panicked"), "{self:?}");
        &self.stdout
    }

    /// Asserts exit status `code` and that stderr is one `error:` line containing `needle`; returns stderr.
    #[track_caller]
    pub fn fails(&self, code: i32, needle: &str) -> &str {
        assert_eq!(self.status.code(), Some(code), "{self:?}");
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}: {self:?}");
        assert!(!self.stderr.contains("panicked") && !self.stderr.contains("backtrace"), "{self:?}");
        if code == 1 {
            assert!(self.stderr.starts_with("error: "), "{self:?}");
            assert_eq!(self.stderr.trim_end().lines().count(), 1, "one line: {self:?}");
        }
        &self.stderr
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// `rill ARGS` against `broker` (through RILL_BROKER, as a user's shell would set it).
pub fn rill(broker: &str, args: &[&str]) -> Output {
    run(Command::new(RILL).args(args).env("RILL_BROKER", broker), None)
}

/// `rill ARGS` with `input` on stdin.
pub fn rill_with_stdin(broker: &str, args: &[&str], input: &[u8]) -> Output {
    run(Command::new(RILL).args(args).env("RILL_BROKER", broker), Some(input))
}

/// Runs `command` to completion (killing it past `DEADLINE`), feeding `input` to its stdin.
pub fn run(command: &mut Command, input: Option<&[u8]>) -> Output {
    let mut child = command
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rill");
    let writer = input.map(|input| {
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let status = wait_with_deadline(&mut child);
    if let Some(writer) = writer {
        writer.join().expect("stdin writer");
    }
    let stdout_bytes = stdout.join().expect("stdout reader");
    let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned();
    Output { status, stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(), stdout_bytes, stderr }
}

fn read_all(mut from: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}

/// Waits for `child` to exit; kills it and fails the test past `DEADLINE`.
pub fn wait_with_deadline(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} still running after {DEADLINE:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) on our own child's pid; it has not been reaped yet (the guard owns it).
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

/// A `rill produce` fed by a thread that writes numbered lines (`L-0`, `L-1`, ...) to its stdin, `lines_per_step`
/// at a time, until stopped: a producer that is always mid-stream. Its stdout (`--print-offsets`) arrives line
/// by line on a channel. Killed when dropped.
pub struct FedProducer {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    feeder: Option<std::thread::JoinHandle<u64>>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl FedProducer {
    /// `rill produce ARGS` against `broker`, fed `lines_per_step` lines every `step` (the pace of the input).
    pub fn spawn(broker: &str, args: &[&str], lines_per_step: u64, step: Duration) -> FedProducer {
        let mut child = Command::new(RILL)
            .arg("produce")
            .args(args)
            .env("RILL_BROKER", broker)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rill produce");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let feeder = std::thread::spawn(move || {
            let mut next = 0u64;
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let mut chunk = String::new();
                for n in next..next + lines_per_step {
                    chunk.push_str(&format!("L-{n}\n"));
                }
                // A closed pipe: the producer stopped reading (it exited).
                if stdin.write_all(chunk.as_bytes()).is_err() {
                    break;
                }
                next += lines_per_step;
                std::thread::sleep(step);
            }
            next // dropping stdin ends the producer's input
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || forward_lines(stdout, &tx));
        let stderr = Some(read_all(child.stderr.take().expect("piped stderr")));
        FedProducer { child, lines, stop, feeder: Some(feeder), stderr }
    }

    /// The next line of stdout, waiting up to `DEADLINE`.
    #[track_caller]
    pub fn next_line(&self) -> String {
        self.lines.recv_timeout(DEADLINE).expect("a line of output within the deadline")
    }

    /// Every line of stdout still to come, up to its end (call after the exit).
    pub fn remaining_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(DEADLINE) {
            lines.push(line);
        }
        lines
    }

    /// Ends the input; returns how many lines were written.
    pub fn end_input(&mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.feeder.take().map(|f| f.join().expect("feeder")).unwrap_or_default()
    }

    /// Waits for the exit (up to `DEADLINE`); returns the status and stderr.
    pub fn wait(&mut self) -> (ExitStatus, String) {
        let status = wait_with_deadline(&mut self.child);
        let stderr = self.stderr.take().map(|h| h.join().expect("stderr reader")).unwrap_or_default();
        (status, String::from_utf8_lossy(&stderr).into_owned())
    }
}

impl Drop for FedProducer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A long-running `rill` (e.g. `consume --follow`) whose stdout lines arrive on a channel; killed when dropped.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Running {
    pub fn spawn(broker: &str, args: &[&str]) -> Running {
        Running::spawn_logging(broker, args, None)
    }

    /// [`Running::spawn`] with the command's `RUST_LOG` set to `filter`: what it logs is in the stderr a failed
    /// test shows (`line_or_exit` and the like), for a failure too rare to reproduce at will.
    pub fn spawn_logging(broker: &str, args: &[&str], filter: Option<&str>) -> Running {
        let mut command = Command::new(RILL);
        if let Some(filter) = filter {
            command.env("RUST_LOG", filter);
        }
        let mut child = command
            .args(args)
            .env("RILL_BROKER", broker)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rill");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || forward_lines(stdout, &tx));
        let stderr = Some(read_all(child.stderr.take().expect("piped stderr")));
        Running { child, lines, stderr }
    }

    /// The next line of stdout, waiting up to `DEADLINE`.
    #[track_caller]
    pub fn next_line(&self) -> String {
        self.lines.recv_timeout(DEADLINE).expect("a line of output within the deadline")
    }

    /// The next line of stdout if one comes within `wait`.
    pub fn line_within(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// Sends `sig`, waits for the exit, and returns the status and stderr.
    pub fn stop_with(mut self, sig: libc::c_int) -> (ExitStatus, String) {
        signal(&self.child, sig);
        self.wait()
    }

    pub fn wait(&mut self) -> (ExitStatus, String) {
        let status = wait_with_deadline(&mut self.child);
        let stderr = self.stderr.take().map(|h| h.join().expect("stderr reader")).unwrap_or_default();
        (status, String::from_utf8_lossy(&stderr).into_owned())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(stdout: ChildStdout, tx: &mpsc::Sender<String>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        if tx.send(line).is_err() {
            return;
        }
    }
}

/// The rows of `rill group config` output as (KEY, VALUE, SOURCE): SOURCE is `group` for the group's own value,
/// `broker` for the broker's.
pub fn config_rows(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .skip_while(|l| !l.starts_with("KEY"))
        .skip(1)
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words[0].to_owned(), words[1].to_owned(), words[2].to_owned())
        })
        .collect()
}
