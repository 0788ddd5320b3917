//! Consumer-group harness: group members as tasks that poll and commit, each behind its own freezable proxy,
//! so a test can make one leave, hang (its sockets stay open, no byte moves) or die (its sockets close).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rill_client::{Client, Consumer, ConsumerConfig, RebalanceEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::DEADLINE;

/// A TCP proxy in front of the broker. `freeze` stops moving bytes but keeps every socket open (to the broker
/// the member is a hung process, or behind a network partition); `kill` closes them (a process killed by the
/// OS).
pub struct FreezableProxy {
    pub addr: SocketAddr,
    frozen: watch::Sender<bool>,
    accept: JoinHandle<()>,
    pipes: Arc<Mutex<JoinSet<()>>>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl FreezableProxy {
    pub async fn start(target: SocketAddr) -> FreezableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let (frozen, frozen_rx) = watch::channel(false);
        let pipes = Arc::new(Mutex::new(JoinSet::new()));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accept = tokio::spawn({
            let pipes = Arc::clone(&pipes);
            let accepted = Arc::clone(&accepted);
            async move {
                while let Ok((inbound, _)) = listener.accept().await {
                    accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Ok(outbound) = TcpStream::connect(target).await else { continue };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    let mut pipes = pipes.lock().expect("pipes");
                    pipes.spawn(forward(in_read, out_write, frozen_rx.clone()));
                    pipes.spawn(forward(out_read, in_write, frozen_rx.clone()));
                }
            }
        });
        FreezableProxy { addr, frozen, accept, pipes, accepted }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    /// Closes every connection through the proxy and accepts no more.
    pub fn kill(&self) {
        self.accept.abort();
        self.pipes.lock().expect("pipes").abort_all();
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut frozen: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if frozen.wait_for(|is_frozen| !*is_frozen).await.is_err() {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buf) => read,
            _ = frozen.wait_for(|is_frozen| *is_frozen) => continue,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Bytes read just as the proxy froze are held until it thaws.
        if frozen.wait_for(|is_frozen| !*is_frozen).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// One processed record: who processed it, where it was.
#[derive(Debug, Clone)]
pub struct Processed {
    pub member: String,
    pub partition: u32,
    pub offset: i64,
    pub value: String,
}

/// What every member reports.
#[derive(Debug, Default)]
pub struct Shared {
    /// Partitions each member reads now, from its rebalance events.
    pub owned: BTreeMap<String, BTreeSet<u32>>,
    pub events: Vec<(String, RebalanceEvent)>,
    pub processed: Vec<Processed>,
    /// Per (member, partition): the position of its latest successful commit.
    pub committed: BTreeMap<(String, u32), i64>,
    /// Errors a live member's poll or commit returned (there should be none).
    pub errors: Vec<(String, String)>,
}

pub type SharedState = Arc<Mutex<Shared>>;

pub fn lock(shared: &SharedState) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().expect("shared state")
}

/// A member running in a task: it polls, records what it processed, and commits after every
/// `commit_every_polls`-th poll (so a crash can leave processed records uncommitted).
pub struct GroupMember {
    pub name: String,
    pub proxy: FreezableProxy,
    leave: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl GroupMember {
    pub async fn start(
        broker: SocketAddr,
        name: &str,
        group: &str,
        topic: &str,
        config: ConsumerConfig,
        commit_every_polls: usize,
        shared: &SharedState,
    ) -> GroupMember {
        let proxy = FreezableProxy::start(broker).await;
        let client = Client::connect(proxy.addr.to_string()).await.expect("client connects through the proxy");
        let mut consumer = Consumer::new(client, config).expect("valid consumer config");
        let (member, events) = (name.to_owned(), Arc::clone(shared));
        consumer.on_rebalance(move |event| {
            let mut shared = lock(&events);
            let owned = shared.owned.entry(member.clone()).or_default();
            match event {
                RebalanceEvent::Assigned { partitions, .. } => owned.extend(partitions.iter().map(|(_, p)| *p)),
                RebalanceEvent::Revoked { partitions, .. } | RebalanceEvent::Lost { partitions } => {
                    for (_, p) in partitions {
                        owned.remove(p);
                    }
                }
            }
            shared.events.push((member.clone(), event.clone()));
        });
        consumer.subscribe(group, &[topic]).expect("subscribe");
        let (leave, leave_rx) = oneshot::channel();
        let task =
            tokio::spawn(run_member(name.to_owned(), consumer, commit_every_polls, Arc::clone(shared), leave_rx));
        GroupMember { name: name.to_owned(), proxy, leave: Some(leave), task }
    }

    /// Leaves cleanly (commit, then leave) and waits for it.
    pub async fn leave(mut self) {
        if let Some(leave) = self.leave.take() {
            let _ = leave.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.task).await.expect("the member left in time").expect("no panic");
    }

    /// Hangs: the process stops (no commit, no leave) and its connection goes silent but stays open for as
    /// long as the caller keeps the returned proxy.
    #[must_use = "dropping the proxy closes the member's sockets, which is a kill, not a hang"]
    pub fn hang(self) -> FreezableProxy {
        self.proxy.freeze();
        self.task.abort();
        self.proxy
    }

    /// Dies: the process stops and the OS closes its connection.
    pub fn kill(self) {
        self.task.abort();
        self.proxy.kill();
    }
}

async fn run_member(
    name: String,
    mut consumer: Consumer,
    commit_every_polls: usize,
    shared: SharedState,
    mut leave: oneshot::Receiver<()>,
) {
    for polls in 1usize.. {
        let polled = tokio::select! {
            _ = &mut leave => {
                if let Err(err) = consumer.unsubscribe().await {
                    lock(&shared).errors.push((name.clone(), format!("unsubscribe: {err}")));
                }
                return;
            }
            polled = consumer.poll() => polled,
        };
        let records = match polled {
            Ok(records) => records,
            Err(err) => {
                lock(&shared).errors.push((name.clone(), format!("poll: {err}")));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        {
            let mut shared = lock(&shared);
            for record in &records {
                let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned();
                let processed =
                    Processed { member: name.clone(), partition: record.partition, offset: record.offset, value };
                shared.processed.push(processed);
            }
        }
        if polls % commit_every_polls.max(1) != 0 {
            continue;
        }
        match consumer.commit().await {
            Ok(()) => {
                let mut shared = lock(&shared);
                for (topic, partition) in consumer.assignment() {
                    if let Some(position) = consumer.position(&topic, partition) {
                        shared.committed.insert((name.clone(), partition), position);
                    }
                }
            }
            Err(err) => lock(&shared).errors.push((name.clone(), format!("commit: {err}"))),
        }
    }
}

/// Waits (polling the shared state every few ms, up to the deadline) until `done` holds.
pub async fn wait_until(shared: &SharedState, what: &str, done: impl Fn(&Shared) -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !done(&lock(shared)) {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}: {:#?}", lock(shared).owned);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every member owns `counts[member]` partitions and all of `total` are owned, by one member each.
pub fn owns(shared: &Shared, counts: &[(&str, usize)], total: usize) -> bool {
    let all: Vec<u32> = shared.owned.values().flatten().copied().collect();
    let unique: BTreeSet<u32> = all.iter().copied().collect();
    all.len() == total
        && unique.len() == total
        && counts.iter().all(|(m, n)| shared.owned.get(*m).map_or(0, BTreeSet::len) == *n)
}
