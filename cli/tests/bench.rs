//! `rill bench` end to end, small: each mode against an embedded broker reports what it moved, as JSON, and
//! writes its plots; bad flags are refused with a message.

use std::process::Command;

fn bench(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_rill")).arg("bench").args(args).output().expect("run rill bench");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn produce_reports_every_message_and_its_latency() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (ok, stdout, stderr) =
        bench(&["produce", "--embedded", "--data-dir", data, "--messages", "5000", "--message-bytes", "200", "--json"]);
    assert!(ok, "{stderr}");
    let report = json(&stdout);
    let phase = &report["phases"][0];
    assert_eq!(phase["phase"], "produce");
    assert_eq!(phase["messages"], 5000);
    assert_eq!(phase["bytes"], 5000 * 200);
    assert!(phase["latency"]["p99_us"].as_u64().unwrap() >= phase["latency"]["p50_us"].as_u64().unwrap());
    assert_eq!(phase["errors"], 0);
    let cpu = &phase["cpu"];
    assert!(cpu["user_s"].as_f64().unwrap() + cpu["system_s"].as_f64().unwrap() > 0.0, "{cpu}");
    assert!(cpu["core_s_per_gb"].as_f64().unwrap() > 0.0, "{cpu}");
}

#[test]
fn batched_sends_produce_exactly_the_messages_asked_for() {
    // 5003 is not a multiple of the 100 records a call: the last call sends the 3 left.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args =
        ["produce", "--embedded", "--data-dir", data, "--messages", "5003", "--records-per-send", "100", "--json"];
    let (ok, stdout, stderr) = bench(&args);
    assert!(ok, "{stderr}");
    let phase = &json(&stdout)["phases"][0];
    assert_eq!(phase["messages"], 5003);
    assert_eq!(phase["errors"], 0);
    assert!(phase["latency"]["samples"].as_u64().unwrap() >= 51, "every call's acknowledgement is timed");
    let (ok, _, stderr) = bench(&["produce", "--embedded", "--data-dir", data, "--records-per-send", "0"]);
    assert!(!ok && stderr.contains("--records-per-send must be at least 1"), "{stderr}");
}

#[test]
fn consume_replays_what_was_produced_across_partitions_and_consumers() {
    let dir = tempfile::tempdir().unwrap();
    let plots = dir.path().join("plots");
    let data = dir.path().join("data");
    let args = [
        "consume",
        "--embedded",
        "--data-dir",
        data.to_str().unwrap(),
        "--workload",
        "1-topic-16-partitions-1kb",
        "--messages",
        "8000",
        "--json",
        "--plot-dir",
        plots.to_str().unwrap(),
    ];
    let (ok, stdout, stderr) = bench(&args);
    assert!(ok, "{stderr}");
    let report = json(&stdout);
    assert_eq!(report["phases"][0]["messages"], 8000);
    assert_eq!(report["phases"][1]["phase"], "consume");
    assert_eq!(report["phases"][1]["messages"], 8000, "every produced message is read back");
    assert!(plots.join("1-topic-16-partitions-1kb-throughput.svg").exists());
    assert!(plots.join("1-topic-16-partitions-1kb-produce-latency.svg").exists());
}

#[test]
fn e2e_measures_send_to_consume_latency_at_a_rate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args = ["e2e", "--embedded", "--data-dir", data, "--messages", "2000", "--rate", "4000", "--json"];
    let (ok, stdout, stderr) = bench(&args);
    assert!(ok, "{stderr}");
    let report = json(&stdout);
    let e2e = &report["phases"][1];
    assert_eq!(e2e["phase"], "e2e");
    assert_eq!(e2e["messages"], 2000);
    assert_eq!(e2e["latency"]["samples"], 2000, "every message's send-to-consume time is measured");
    // A real send-to-consume time: at least the producer's linger, at most the whole run.
    let p50 = e2e["latency"]["p50_us"].as_u64().unwrap();
    assert!((100..2_000_000).contains(&p50), "p50 {p50} µs");
    // 2000 messages at 4000/s take about half a second: the rate was kept.
    assert!(report["phases"][0]["seconds"].as_f64().unwrap() >= 0.4);
}

/// The hops `rill bench e2e --breakdown` prints, in path order.
const BREAKDOWN_HOPS: [&str; 11] = [
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
    "total (send -> client decode)",
];

#[test]
fn e2e_breakdown_prints_every_hop_with_non_negative_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args = [
        "e2e",
        "--embedded",
        "--data-dir",
        data,
        "--workload",
        "e2e-10k-msgs-1kb",
        "--messages",
        "3000",
        "--breakdown",
        "--quiet",
    ];
    let (ok, stdout, stderr) = bench(&args);
    assert!(ok, "{stderr}");
    let batches: u64 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("breakdown of "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no breakdown line in\n{stdout}"));
    assert!(batches > 0, "{stdout}");
    let mut totals = Vec::new();
    for hop in BREAKDOWN_HOPS {
        let line =
            stdout.lines().find(|l| l.trim_start().starts_with(hop)).unwrap_or_else(|| panic!("{hop}: {stdout}"));
        let figures: Vec<f64> =
            line.trim_start()[hop.len()..].split_whitespace().map(|f| f.parse().expect("a number")).collect();
        assert_eq!(figures.len(), 3, "p50, p99, mean: {line}");
        assert!(figures.iter().all(|f| *f >= 0.0) && figures[0] <= figures[1], "{line}");
        totals.push(figures[2]);
    }
    // Means add up: each entry's hops sum to its total (to the printed rounding).
    let (total, hops) = totals.split_last().expect("eleven lines");
    assert!((hops.iter().sum::<f64>() - total).abs() < 1.0, "{totals:?}");
    assert!(*total > 0.0, "{stdout}");

    let (ok, stdout, stderr) = bench(&["e2e", "--embedded", "--data-dir", data, "--breakdown", "--producers", "2"]);
    assert!(!ok && stderr.contains("--producers 1"), "{stdout}{stderr}");
    let (ok, _, stderr) = bench(&["produce", "--embedded", "--data-dir", data, "--breakdown"]);
    assert!(!ok && stderr.contains("rill bench e2e --breakdown"), "{stderr}");
}

#[test]
fn rate_sweep_reports_latency_at_each_rate_and_plots_it() {
    let dir = tempfile::tempdir().unwrap();
    let plots = dir.path().join("plots");
    let data = dir.path().join("data");
    let args = [
        "e2e",
        "--embedded",
        "--data-dir",
        data.to_str().unwrap(),
        "--workload",
        "e2e-10k-msgs-1kb",
        "--rate-sweep",
        "--sweep-rates",
        "500,2000",
        "--duration",
        "1",
        "--floor",
        "--json",
        "--plot-dir",
        plots.to_str().unwrap(),
    ];
    let (ok, stdout, stderr) = bench(&args);
    assert!(ok, "{stderr}");
    let sweep = json(&stdout)["sweep"].as_array().cloned().unwrap_or_else(|| panic!("no sweep: {stdout}"));
    assert_eq!(sweep.len(), 2, "{stdout}");
    for (point, rate) in sweep.iter().zip([500u64, 2000]) {
        assert_eq!(point["rate"], rate);
        assert_eq!(point["errors"], 0);
        let e2e = &point["send_to_consume"];
        assert_eq!(e2e["samples"], rate, "one second at {rate}/s, every message timed: {point}");
        let (p50, p99, p999) =
            (e2e["p50_us"].as_u64().unwrap(), e2e["p99_us"].as_u64().unwrap(), e2e["p999_us"].as_u64().unwrap());
        assert!(p50 > 0 && p50 <= p99 && p99 <= p999, "{point}");
        let floor = &point["floor"];
        assert_eq!(floor["rate"].as_f64(), Some(rate as f64), "each rate's own floor: {point}");
        assert!(floor["round_trip"]["p50_us"].as_u64().is_some_and(|p50| p50 > 0), "{point}");
    }
    let csv = std::fs::read_to_string(plots.join("e2e-10k-msgs-1kb-rate-sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "a header and a row per rate: {csv}");
    assert!(plots.join("e2e-10k-msgs-1kb-rate-sweep.svg").exists());
    let (ok, _, stderr) = bench(&["produce", "--embedded", "--data-dir", data.to_str().unwrap(), "--rate-sweep"]);
    assert!(!ok && stderr.contains("rill bench e2e --rate-sweep"), "{stderr}");
}

#[test]
fn e2e_floor_prints_the_loopback_round_trip_and_the_cpu_steal_beside_rills_figures() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args = ["e2e", "--embedded", "--data-dir", data, "--messages", "1000", "--rate", "2000", "--floor", "--quiet"];
    let (ok, stdout, stderr) = bench(&args);
    assert!(ok, "{stderr}");
    let round_trip = stdout
        .lines()
        .find_map(|line| line.strip_prefix("floor    loopback TCP ping-pong, "))
        .unwrap_or_else(|| panic!("no floor line in\n{stdout}"));
    assert!(round_trip.starts_with("1024 B at 2000/s for "), "the run's record size and rate: {round_trip}");
    for figure in ["p50 ", "p99 ", "p99.9 ", "max "] {
        assert!(round_trip.contains(figure), "{figure} missing: {round_trip}");
    }
    assert!(stdout.contains("floor    cpu steal: "), "{stdout}");
    assert!(stdout.contains("during rill's run") && stdout.contains("during the ping-pong"), "{stdout}");

    let (ok, stdout, stderr) = bench(&[&args[..], &["--json"]].concat());
    assert!(ok, "{stderr}");
    let floor = &json(&stdout)["floor"];
    assert_eq!(floor["message_bytes"], 1024, "{floor}");
    assert!(floor["round_trip"]["samples"].as_u64().is_some_and(|n| n > 0), "{floor}");
    let (p50, p99, p999) = (
        floor["round_trip"]["p50_us"].as_u64().unwrap(),
        floor["round_trip"]["p99_us"].as_u64().unwrap(),
        floor["round_trip"]["p999_us"].as_u64().unwrap(),
    );
    assert!(p50 > 0 && p50 <= p99 && p99 <= p999, "{floor}");
    // Linux has /proc/stat: a share between 0 and 100.
    for steal in ["steal_during_run_percent", "steal_during_probe_percent"] {
        assert!(floor[steal].as_f64().is_some_and(|p| (0.0..=100.0).contains(&p)), "{steal}: {floor}");
    }
    let (ok, _, stderr) = bench(&["produce", "--embedded", "--data-dir", data, "--floor"]);
    assert!(!ok && stderr.contains("rill bench e2e --floor"), "{stderr}");
}

#[test]
fn bad_flags_are_refused_with_a_message() {
    let (ok, _, stderr) = bench(&["produce", "--embedded", "--workload", "no-such"]);
    assert!(!ok && stderr.contains("unknown workload") && stderr.contains("1-topic-16-partitions-1kb"), "{stderr}");
    let (ok, _, stderr) = bench(&["produce", "--embedded", "--producers", "0"]);
    assert!(!ok && stderr.contains("--producers"), "{stderr}");
    let (ok, _, stderr) = bench(&["produce", "--broker", "127.0.0.1:1", "--messages", "10"]);
    assert!(!ok && stderr.contains("connect"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
