//! `--worker-threads`: the real `rill broker` builds its runtime with the count asked for (the flag over
//! `RILL_WORKER_THREADS` over the TOML file's `worker_threads`), serves produce and consume on one worker, and
//! refuses at start a count that is not one; `rill bench` takes the same flag, for its embedded broker too.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::cluster::scrape;
use common::{eventually, rill, rill_with_stdin, AdminBroker, RILL};

/// A `rill broker` on `data_dir` with `args`, `env` set and no worker setting inherited from the test's own
/// environment.
fn start_broker(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> AdminBroker {
    let mut command = Command::new(RILL);
    command.env_remove("RILL_WORKER_THREADS").env_remove("TOKIO_WORKER_THREADS");
    for (name, value) in env {
        command.env(name, value);
    }
    AdminBroker::start_command(command, data_dir, args)
}

/// The runtime's worker count, as `broker` reports it on `/metrics`.
fn worker_threads(broker: &AdminBroker) -> f64 {
    eventually("a scrape with rill_runtime_worker_threads", || {
        scrape(&broker.admin)?.get("rill_runtime_worker_threads").copied()
    })
}

/// Runs `rill ARGS` with `env` and no worker setting inherited; returns whether it succeeded and its stderr.
fn run_rill(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(RILL);
    command.args(args).env_remove("RILL_WORKER_THREADS").env("RILL_ADMIN_LISTEN", "127.0.0.1:0");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = common::run(&mut command, None);
    (output.status.success(), output.stderr)
}

#[test]
fn one_worker_thread_serves_produce_and_consume() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = start_broker(dir.path(), &["--worker-threads", "1"], &[]);
    assert_eq!(worker_threads(&broker), 1.0);
    let b = broker.addr.as_str();
    rill(b, &["topic", "create", "orders", "--partitions", "4"]).ok();
    let lines: Vec<String> = (0..500).map(|i| format!("order {i}")).collect();
    let input = lines.join("\n");
    rill_with_stdin(b, &["produce", "orders", "--partition", "2"], input.as_bytes()).ok();
    let consumed = rill(b, &["consume", "orders"]).ok().to_owned();
    assert_eq!(consumed.lines().collect::<Vec<_>>(), lines, "every record, in order");
}

#[test]
fn the_flag_beats_the_environment_which_beats_the_toml_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("rill.toml");
    std::fs::write(&config, "worker_threads = 3\n").expect("write the config file");
    let config = config.to_str().expect("a UTF-8 path");
    let data = dir.path().join("data");
    let from_file = start_broker(&data, &["--config", config], &[]);
    assert_eq!(worker_threads(&from_file), 3.0);
    drop(from_file);
    let from_env = start_broker(&data, &["--config", config], &[("RILL_WORKER_THREADS", "2")]);
    assert_eq!(worker_threads(&from_env), 2.0);
    drop(from_env);
    let from_flag =
        start_broker(&data, &["--config", config, "--worker-threads", "1"], &[("RILL_WORKER_THREADS", "2")]);
    assert_eq!(worker_threads(&from_flag), 1.0);
    drop(from_flag);
    // tokio's own variable no longer decides: the count is always set in code.
    let zero = start_broker(&data, &["--worker-threads", "0"], &[("TOKIO_WORKER_THREADS", "5")]);
    assert_ne!(worker_threads(&zero), 5.0);
}

#[test]
fn a_worker_count_that_is_not_one_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("a UTF-8 path");
    let broker = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["broker", "--listen", "127.0.0.1:0", "--data-dir", data];
        args.extend_from_slice(extra);
        run_rill(&args, env)
    };
    let (ok, stderr) = broker(&["--worker-threads", "abc"], &[]);
    assert!(!ok && stderr.contains("--worker-threads") && stderr.contains("abc"), "{stderr}");
    let (ok, stderr) = broker(&[], &[("RILL_WORKER_THREADS", "-1")]);
    assert!(!ok && stderr.contains("--worker-threads") && stderr.contains("-1"), "{stderr}");
    let (ok, stderr) = broker(&["--worker-threads", "5000"], &[]);
    assert!(!ok && stderr.contains("worker_threads") && stderr.contains("0..=1024"), "{stderr}");
    let config = dir.path().join("rill.toml");
    std::fs::write(&config, "worker_threads = \"two\"\n").expect("write the config file");
    let (ok, stderr) = broker(&["--config", config.to_str().expect("a UTF-8 path")], &[]);
    assert!(!ok && stderr.contains("worker_threads") && stderr.contains("rill.toml"), "{stderr}");
    let bench = |count: &str| run_rill(&["bench", "produce", "--embedded", "--worker-threads", count], &[]);
    let (ok, stderr) = bench("abc");
    assert!(!ok && stderr.contains("--worker-threads"), "{stderr}");
    let (ok, stderr) = bench("5000");
    assert!(!ok && stderr.contains("--worker-threads") && stderr.contains("0..=1024"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn rill_bench_runs_an_embedded_broker_on_the_worker_count_asked_for() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().to_str().expect("a UTF-8 path");
    let mut command = Command::new(RILL);
    command
        .args(["bench", "produce", "--embedded", "--data-dir", data, "--messages", "3000", "--json", "--quiet"])
        .args(["--worker-threads", "1"])
        .env_remove("RILL_WORKER_THREADS");
    let output = common::run(&mut command, None);
    let report: serde_json::Value = serde_json::from_str(output.ok()).expect("a JSON report");
    assert_eq!(report["settings"]["worker_threads"], 1, "{report}");
    assert_eq!(report["phases"][0]["messages"], 3000, "{report}");
    assert_eq!(report["phases"][0]["errors"], 0, "{report}");
}
