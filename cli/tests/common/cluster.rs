//! Three `rill broker` processes forming one cluster on free loopback ports, for the cluster and replication
//! tests. Every node needs the whole peers list, so the ports are picked before any node starts.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{dead_address, BrokerProcess, DEADLINE, RILL};

pub struct Cluster {
    /// `None` for a node a test has killed. Before `dir`: fields drop in order, so the nodes are killed before
    /// their data dirs are deleted under them (which they would log as errors).
    pub nodes: Vec<Option<BrokerProcess>>,
    pub addrs: Vec<String>,
    pub peers: String,
    /// Each node's admin listener (`/metrics`), `host:port`, picked before the nodes start as `addrs` are.
    pub admins: Vec<String>,
    /// Each node's `--rack`, when the test gives them racks.
    pub racks: Vec<String>,
    /// Each node's `--schema-registry-listen`, `host:port`, when the test serves the schema registry.
    pub schema_registries: Vec<String>,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Three nodes sharing `config` (TOML: the short sessions and timeouts a test wants).
    pub fn start(config: &str) -> Cluster {
        Self::start_with(config, |_| {})
    }

    /// [`Cluster::start`], with `prepare` run on the cluster's directory before any node starts (to put a
    /// node's data dir elsewhere, say: `d<node id>` may be a symlink).
    pub fn start_with(config: &str, prepare: impl FnOnce(&Path)) -> Cluster {
        Self::start_all(config, prepare, Vec::new(), false)
    }

    /// [`Cluster::start`] with node `i + 1` in rack `racks[i]` (`--rack`).
    pub fn start_in_racks(config: &str, racks: [&str; 3]) -> Cluster {
        Self::start_all(config, |_| {}, racks.iter().map(|rack| (*rack).to_owned()).collect(), false)
    }

    /// [`Cluster::start`] with each node serving the schema registry (`--schema-registry-listen`).
    pub fn start_with_schema_registries(config: &str) -> Cluster {
        Self::start_all(config, |_| {}, Vec::new(), true)
    }

    fn start_all(config: &str, prepare: impl FnOnce(&Path), racks: Vec<String>, registries: bool) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        prepare(dir.path());
        std::fs::write(dir.path().join("rill.toml"), config).expect("write config");
        let addrs: Vec<String> = (0..3).map(|_| dead_address()).collect();
        let peers = addrs.iter().enumerate().map(|(i, a)| format!("{}@{a}", i + 1)).collect::<Vec<_>>().join(",");
        let admins: Vec<String> = (0..3).map(|_| dead_address()).collect();
        let schema_registries = if registries { (0..3).map(|_| dead_address()).collect() } else { Vec::new() };
        let mut cluster = Cluster { dir, addrs, peers, admins, racks, schema_registries, nodes: Vec::new() };
        for node_id in 1..=3 {
            let node = cluster.start_node(node_id);
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    pub fn data_dir(&self, node_id: u64) -> PathBuf {
        self.dir.path().join(format!("d{node_id}"))
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("rill.toml")
    }

    pub fn args(&self, node_id: u64) -> Vec<String> {
        let mut args =
            broker_args(node_id, self.addr(node_id), &self.data_dir(node_id), &self.peers, Some(&self.config()));
        args.extend(["--admin-listen".to_owned(), self.admin(node_id).to_owned()]);
        if let Some(rack) = self.racks.get(node_id as usize - 1) {
            args.extend(["--rack".to_owned(), rack.clone()]);
        }
        if let Some(registry) = self.schema_registries.get(node_id as usize - 1) {
            args.extend(["--schema-registry-listen".to_owned(), registry.clone()]);
        }
        args
    }

    /// Node `node_id`'s admin listener, `host:port`.
    pub fn admin(&self, node_id: u64) -> &str {
        &self.admins[node_id as usize - 1]
    }

    /// Starts node `node_id` (again). A restarted node's port may still be held by the killed process's socket
    /// for a moment, so a failed start is retried until the deadline.
    pub fn start_node(&self, node_id: u64) -> BrokerProcess {
        let args = self.args(node_id);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let started = std::panic::catch_unwind(|| BrokerProcess::start_command(Command::new(RILL), &args));
            match started {
                Ok(node) => return node,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    }

    pub fn addr(&self, node_id: u64) -> &str {
        &self.addrs[node_id as usize - 1]
    }

    /// Every node, comma-separated, as `--broker` takes a cluster.
    pub fn all(&self) -> String {
        self.addrs.join(",")
    }

    pub fn any_running(&self) -> &str {
        let index = self.nodes.iter().position(Option::is_some).expect("a running node");
        &self.addrs[index]
    }
}

/// `rill broker` arguments for one node of a cluster.
pub fn broker_args(node_id: u64, listen: &str, data_dir: &Path, peers: &str, config: Option<&Path>) -> Vec<String> {
    let mut args = vec![
        "broker".to_owned(),
        "--node-id".to_owned(),
        node_id.to_string(),
        "--listen".to_owned(),
        listen.to_owned(),
        "--data-dir".to_owned(),
        data_dir.to_string_lossy().into_owned(),
        "--peers".to_owned(),
        peers.to_owned(),
    ];
    if let Some(config) = config {
        args.extend(["--config".to_owned(), config.to_string_lossy().into_owned()]);
    }
    args
}

/// `rill broker` started over `data_dir` as node 1 of a three-node cluster whose other nodes are not there, run to
/// its end: what a data dir a single node left refuses.
pub fn start_as_cluster_node(data_dir: &Path) -> super::Output {
    let listen = dead_address();
    let peers = format!("1@{listen},2@127.0.0.1:1,3@127.0.0.1:2");
    let args = broker_args(1, &listen, data_dir, &peers, None);
    super::run(Command::new(RILL).args(&args).env("RUST_LOG", "off").env("RILL_ADMIN_LISTEN", "127.0.0.1:0"), None)
}

/// Every sample of one node's `/metrics`, by series as written (name and labels); `None` if it does not answer.
pub fn scrape(admin: &str) -> Option<HashMap<String, f64>> {
    let mut stream = std::net::TcpStream::connect(admin).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {admin}\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (_, body) = answer.split_once("\r\n\r\n")?;
    let samples = body
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(series, value)| Some((series.to_string(), value.parse().ok()?)))
        .collect();
    Some(samples)
}

/// Kafka's coordinator partition of `group`, computed here independently of the broker: Java's `String.hashCode`
/// over UTF-16 code units, `Utils.abs`, modulo the offsets topic's partition count.
pub fn coordinator_partition(group: &str, partitions: usize) -> usize {
    let hash = group.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)));
    (if hash == i32::MIN { 0 } else { hash.abs() }) as usize % partitions
}

/// One partition's row of `rill topic describe` on a cluster.
#[derive(Debug, Clone)]
pub struct PartitionRow {
    pub leader: Option<u64>,
    pub epoch: u32,
    pub replicas: Vec<u64>,
    pub isr: Vec<u64>,
    pub high_watermark: i64,
    /// The log's start offset as the leader knows it; `None` from a node without a replica (`-`).
    pub log_start: Option<i64>,
    /// `node:end` as the leader last heard each replica.
    pub log_ends: Vec<(u64, i64)>,
}

/// A cell of node ids, `1,2,3`.
pub fn ids(cell: &str) -> Vec<u64> {
    cell.split(',').filter_map(|id| id.parse().ok()).collect()
}

/// Each partition's leader in `output` (a `rill topic describe` table of `partitions` partitions), once every
/// one has a leader and `in_sync` replicas in its ISR; `None` before. For tests whose `rill` needs credentials.
pub fn leaders_with_isr(output: &str, partitions: usize, in_sync: usize) -> Option<Vec<u64>> {
    let mut leaders = vec![None; partitions];
    for line in output.lines() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let Some(slot) = cells.first().and_then(|p| p.parse::<usize>().ok()).and_then(|p| leaders.get_mut(p)) else {
            continue;
        };
        if cells.len() >= 6 && ids(cells[4]).len() == in_sync {
            *slot = cells[1].parse::<u64>().ok();
        }
    }
    leaders.into_iter().collect()
}

/// Every partition's row of `rill topic describe`, by partition number; `None` until all `partitions` show.
pub fn describe_topic(addr: &str, topic: &str, partitions: usize) -> Option<Vec<PartitionRow>> {
    let output = super::rill(addr, &["topic", "describe", topic]);
    if !output.status.success() {
        return None;
    }
    let mut rows = vec![None; partitions];
    for line in output.stdout.lines() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.len() < 6 {
            continue;
        }
        let Some(slot) = cells[0].parse::<usize>().ok().and_then(|p| rows.get_mut(p)) else { continue };
        let log_ends = cells[6..]
            .iter()
            .filter_map(|cell| cell.split_once(':'))
            .filter_map(|(node, end)| Some((node.parse().ok()?, end.parse().ok()?)))
            .collect();
        *slot = Some(PartitionRow {
            leader: cells[1].parse().ok(),
            epoch: cells[2].parse().ok()?,
            replicas: ids(cells[3]),
            isr: ids(cells[4]),
            high_watermark: cells[5].parse().ok()?,
            log_start: cells.get(6).and_then(|cell| cell.parse().ok()),
            log_ends,
        });
    }
    rows.into_iter().collect()
}

/// The topic's rows once `done` holds for them, or the test fails naming `what` and the last rows seen.
#[track_caller]
pub fn wait_for_topic(
    addr: &str,
    topic: &str,
    partitions: usize,
    what: &str,
    done: impl Fn(&[PartitionRow]) -> bool,
) -> Vec<PartitionRow> {
    let deadline = Instant::now() + DEADLINE;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(rows) = describe_topic(addr, topic, partitions) {
            if done(&rows) {
                return rows;
            }
            last = Some(rows);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no {what} within {DEADLINE:?}; last seen: {last:?}");
}

/// Reads `partition` of `orders` from the start through `leader` and checks that every acknowledged record
/// (offset, value), listed in acknowledgement order, is there once, at its offset, in order. The log is never
/// compacted, so a record's line number is its offset.
#[track_caller]
pub fn assert_read_once_in_order(leader: &str, partition: usize, acknowledged: &[(i64, String)]) {
    let partition_arg = partition.to_string();
    let args = ["consume", "orders", "--partition", &partition_arg, "--from-beginning"];
    let consumed = super::rill(leader, &args);
    let read: Vec<&str> = consumed.ok().lines().collect();
    let mut previous = -1;
    for (offset, value) in acknowledged {
        assert!(*offset > previous, "partition {partition}: acknowledged out of order at {offset}");
        previous = *offset;
        assert_eq!(read.get(*offset as usize), Some(&value.as_str()), "partition {partition} at {offset}");
        let found = read.iter().filter(|line| **line == value).count();
        assert_eq!(found, 1, "partition {partition}: acknowledged {value:?} read {found} times");
    }
}

/// One Kafka request to the node at `addr` (`HOST:PORT`), on a connection of its own, answered in full.
pub fn kafka_call<Req, Resp>(addr: &str, api: kafka_protocol::messages::ApiKey, version: i16, request: &Req) -> Resp
where
    Req: kafka_protocol::protocol::Encodable,
    Resp: kafka_protocol::protocol::Decodable,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let addr: std::net::SocketAddr = addr.parse().expect("node address");
    runtime.block_on(async {
        let mut client = rill_tests::kafka_client::KafkaClient::connect(addr).await;
        client.call(api, version, request).await
    })
}

/// Starts `rill ARGS`, again while a port is still taken (a killed process's, or a free one taken since it was
/// picked), up to the deadline.
pub fn start_until_listening(args: &[String]) -> BrokerProcess {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let deadline = Instant::now() + DEADLINE;
    loop {
        match std::panic::catch_unwind(|| BrokerProcess::start_command(Command::new(RILL), &args)) {
            Ok(node) => return node,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Starts node `node_id` joining the cluster through `via` (`rill broker --join`), on a free port with its data
/// in `data_dir`; `rill cluster add-node` (or the console) then makes it a member.
pub fn start_joining_node(node_id: u64, data_dir: &Path, via: &str, config: &Path) -> BrokerProcess {
    let (listen, data_dir, config) = (dead_address(), data_dir.to_string_lossy(), config.to_string_lossy());
    let node_id = node_id.to_string();
    let args = ["broker", "--node-id", &node_id, "--listen", &listen, "--data-dir", &data_dir, "--join", via];
    let args: Vec<String> = args.into_iter().chain(["--config", &config]).map(str::to_owned).collect();
    start_until_listening(&args)
}
