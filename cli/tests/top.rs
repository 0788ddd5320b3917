//! `rill top` against a real broker process: a refresh shows each topic with its partitions and each group's lag
//! (the rates are unit-tested in `top.rs`).

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{rill, RILL};

/// The broker process, killed when the test ends, also when one of its steps panics.
struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn top_shows_per_topic_rates_and_group_lag_from_the_metrics_endpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut broker = KilledOnDrop(
        Command::new(RILL)
            .args(["broker", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn rill broker"),
    );
    let mut lines = BufReader::new(broker.0.stdout.take().expect("piped stdout")).lines();
    let mut next_line = || lines.next().and_then(Result::ok).unwrap_or_default();
    let addr = next_line().trim_start_matches("rill broker listening on ").to_string();
    let admin = next_line().trim_start_matches("rill admin listening on http://").to_string();
    assert!(!addr.is_empty() && !admin.is_empty(), "the broker printed both addresses");

    rill(&addr, &["topic", "create", "watched", "--partitions", "2"]).ok();
    rill(&addr, &["produce", "watched", "--value", "one"]).ok();
    // A standalone commit at offset 0 leaves the group a lag of the one record.
    rill(&addr, &["group", "reset-offsets", "watchers", "--topic", "watched", "--to-earliest"]).ok();
    let top = common::run(Command::new(RILL).args(["top", "--admin", &admin, "--iterations", "1", "--plain"]), None);
    let text = top.ok();
    drop(broker);
    assert!(text.contains(&format!("rill top  {admin}")), "{text}");
    let topic_row = text.lines().find(|line| line.starts_with("watched ")).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(topic_row.split_whitespace().nth(1), Some("2"), "two partitions: {topic_row}");
    let group_row = text.lines().find(|line| line.starts_with("watchers ")).unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = group_row.split_whitespace().collect();
    assert_eq!(cells[..3], ["watchers", "watched", "1"], "lag of one record: {group_row}");
}
