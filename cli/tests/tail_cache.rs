//! The broker's tail cache end to end, against real `rill broker` processes: consumers at the tail read the same
//! records with the cache on and off, and its counters move; and the broker's memory stays within the cache's
//! limit plus what stalled readers pin while far more than the limit is written.

use crate::common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{rill, rill_with_stdin, AdminBroker, DEADLINE, RILL};

type Node = AdminBroker;

fn start(tail_cache_bytes: u64) -> Node {
    AdminBroker::start(&["--tail-cache-bytes", &tail_cache_bytes.to_string()])
}

/// One sample of the broker's `/metrics`, by its exact series name.
fn metric(node: &Node, series: &str) -> Option<f64> {
    let mut stream = std::net::TcpStream::connect(&node.admin).expect("connect to the admin listener");
    stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: rill\r\nAccept: text/plain\r\n\r\n").expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read /metrics");
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The broker's resident memory, from `/proc`.
fn rss_bytes(node: &Node) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", node.child.id())).expect("read /proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

/// Lines of `count` values of `bytes` bytes each, tagged with `tag` and their index.
fn values(tag: &str, count: usize, bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count {
        let head = format!("{tag}-{i}-");
        out.extend_from_slice(head.as_bytes());
        out.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, bytes.saturating_sub(head.len())));
        out.push(b'\n');
    }
    out
}

/// Starts a consumer at the tail of an empty topic, produces small and large records to both partitions, and
/// returns what the consumer printed: (partition, offset, value) in order.
fn records_read_at_the_tail(node: &Node) -> Vec<(u64, u64, String)> {
    rill(&node.addr, &["topic", "create", "tail", "--partitions", "2"]).ok();
    let addr = node.addr.clone();
    let expected = 2 * (300 + 8 + 300);
    let consumer = std::thread::spawn(move || {
        let count = expected.to_string();
        let args = ["consume", "tail", "--follow", "--from-beginning", "--max-messages", &count, "--format", "json"];
        rill(&addr, &args)
    });
    for partition in ["0", "1"] {
        // Small records (entries joined on read), large ones (answered as slices), small again.
        for (tag, count, bytes) in [("small", 300, 40), ("large", 8, 100_000), ("after", 300, 60)] {
            let input = values(&format!("{tag}{partition}"), count, bytes);
            rill_with_stdin(&node.addr, &["produce", "tail", "--partition", partition], &input).ok();
        }
    }
    let output = consumer.join().expect("consumer thread");
    output
        .ok()
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("a JSON record per line");
            let field = |name: &str| record[name].as_u64().unwrap_or_else(|| panic!("{name} in {line}"));
            (field("partition"), field("offset"), record["value"].as_str().expect("value").to_owned())
        })
        .collect()
}

#[test]
fn consumers_at_the_tail_read_the_same_records_with_the_cache_on_and_off() {
    let cached = start(64 << 20);
    let uncached = start(0);
    let mut with_cache = records_read_at_the_tail(&cached);
    let mut without_cache = records_read_at_the_tail(&uncached);
    assert_eq!(with_cache.len(), 2 * 608);
    with_cache.sort();
    without_cache.sort();
    assert!(with_cache == without_cache, "the records differ with the cache on and off");
    for partition in 0..2 {
        let offsets: Vec<u64> = with_cache.iter().filter(|r| r.0 == partition).map(|r| r.1).collect();
        assert_eq!(offsets, (0..608).collect::<Vec<_>>(), "partition {partition} read whole, in order, once");
    }

    let hits = metric(&cached, "rill_tail_cache_hits_total").expect("the cache's hit counter");
    assert!(hits > 0.0, "reads at the tail were served from memory");
    assert!(metric(&cached, "rill_tail_cache_hit_bytes_total").is_some_and(|bytes| bytes > 1_600_000.0));
    assert_eq!(metric(&uncached, "rill_tail_cache_hits_total"), None, "no cache, no cache metrics");
    let described = rill(&cached.addr, &["topic", "describe", "tail"]);
    let text = described.ok();
    assert!(text.contains("tail cache hit rate"), "{text}");
    let header = text.lines().find(|l| l.starts_with("PARTITION")).expect("the partition table");
    let hits_column = header.split_whitespace().position(|c| c == "CACHE_HITS").expect("a CACHE_HITS column");
    for row in text.lines().skip_while(|l| !l.starts_with("PARTITION")).skip(1).take(2) {
        let cell: u64 = row.split_whitespace().nth(hits_column).and_then(|c| c.parse().ok()).expect("hits");
        assert!(cell > 0, "every partition was read from memory: {text}");
    }
    let uncached_text = rill(&uncached.addr, &["topic", "describe", "tail"]);
    assert!(!uncached_text.ok().contains("tail cache hit rate"), "no reads counted with the cache off");
}

/// Consumers that stop reading their output: their fetched answers wait in the broker's HTTP/2 buffers, pinning
/// the cache entries they are slices of after the cache has evicted them.
fn stalled_readers(node: &Node, count: usize) -> Vec<Child> {
    (0..count)
        .map(|_| {
            Command::new(RILL)
                .args(["consume", "bulk", "--follow", "--from-beginning"])
                .env("RILL_BROKER", &node.addr)
                .stdin(Stdio::null())
                .stdout(Stdio::piped()) // never read
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn a stalled consumer")
        })
        .collect()
}

/// Writes `total_bytes` in produce calls of 4 MiB (100 KB records) to the topic `bulk`.
fn write_bulk(node: &Node, total_bytes: usize) {
    let record_bytes = 100_000;
    let per_call = (4 << 20) / record_bytes;
    let mut written = 0;
    let mut call = 0;
    while written < total_bytes {
        let input = values(&format!("bulk{call}"), per_call, record_bytes);
        rill_with_stdin(&node.addr, &["produce", "bulk", "--partition", "0"], &input).ok();
        written += per_call * record_bytes;
        call += 1;
    }
}

#[test]
fn memory_stays_within_the_cache_limit_plus_what_stalled_readers_pin() {
    const LIMIT_BYTES: u64 = 32 << 20;
    const WRITTEN_BYTES: usize = 320 << 20;
    const STALLED_READERS: usize = 3;
    // The same writes and stalled readers against a broker without a cache: everything else the broker holds
    // (produce buffers, HTTP/2 windows, allocator slack) is in both figures.
    let mut rss = Vec::new();
    for limit in [0, LIMIT_BYTES] {
        let node = start(limit);
        rill(&node.addr, &["topic", "create", "bulk"]).ok();
        let mut readers = stalled_readers(&node, STALLED_READERS);
        let started = Instant::now();
        write_bulk(&node, WRITTEN_BYTES);
        assert!(started.elapsed() < Duration::from_secs(120));
        if limit > 0 {
            let held = metric(&node, "rill_tail_cache_bytes").expect("the cache's size");
            assert!(held <= LIMIT_BYTES as f64, "the cache holds {held} bytes, over its limit");
            assert!(metric(&node, "rill_tail_cache_evictions_total").is_some_and(|e| e > 0.0), "it evicted");
        }
        rss.push(rss_bytes(&node));
        for reader in &mut readers {
            let _ = reader.kill();
            let _ = reader.wait();
        }
    }
    let (without, with) = (rss[0], rss[1]);
    // What a stalled reader can pin: its fetch answers in flight (1 MiB fetches, a few per partition read ahead)
    // and the entries (4 MiB produce calls) they are slices of.
    let pinned_allowance = STALLED_READERS as u64 * 2 * (4 << 20);
    let slack = 32 << 20;
    assert!(
        with <= without + LIMIT_BYTES + pinned_allowance + slack,
        "RSS with the cache {with} bytes, without {without}: more than the {LIMIT_BYTES}-byte limit plus \
         {pinned_allowance} bytes pinned by {STALLED_READERS} stalled readers (and {slack} of slack), \
         after writing {WRITTEN_BYTES} bytes"
    );
}
