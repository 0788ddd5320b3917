//! Benchmarks live in `benches/benches/` (criterion) and `benches/examples/` (runs against the real `rill`
//! binary). What the examples share lives here: nothing in it is measured.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `rill broker` process an example started. It is killed when dropped, so a round that panics leaves no
/// broker behind holding its port and data dir.
pub struct BrokerProcess {
    pub child: Child,
    /// The gRPC address from the broker's "listening" line (it accepts from then on).
    pub addr: String,
}

impl BrokerProcess {
    /// Spawns `command`, a `rill broker` with `--listen 127.0.0.1:0` (directly or through `sh -c ... exec`), and
    /// waits for the line that names its port. Panics if it cannot: an example has nothing to measure without it.
    pub fn spawn(mut command: Command) -> BrokerProcess {
        let mut child = command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn rill broker");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout).read_line(&mut line).expect("read the listen line");
        let Some(addr) = line.trim().strip_prefix("rill broker listening on ") else {
            let _ = child.kill();
            panic!("the broker's first line was not its listen line: {line:?}");
        };
        BrokerProcess { addr: addr.to_owned(), child }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
