"""What a share group (KIP-932) costs on a cluster beside a single node (docs/benchmarks.md, "Share groups on a
cluster"): `rill broker` processes on this machine, a topic of PARTITIONS partitions (replicated to every node)
holding RECORDS records of 1000 bytes, produced by librdkafka; then MEMBERS confluent-kafka ShareConsumers (one
thread each, implicit acknowledgement: each poll accepts what the one before returned) drain a fresh share group
set to start at the log's start. On a single node every acknowledgement is fsynced to the node's offsets log
before its answer; on three nodes a partition's leader stores it at the group's coordinator, which answers once
the group's `__consumer_offsets` partition's in-sync replicas hold it (an internal call and a replication round
trip, unless one node is both). Then MEMBERS rill members (`rill consume --share-group --follow` processes, the
Rust client's ShareConsumer; on three nodes their streams live at the group's coordinator, which reads each
partition at its leader) drain another fresh group. The confluent-kafka drain runs twice: with librdkafka's
defaults, and with `fetch.wait.max.ms=10`. librdkafka's share consumer has one ShareFetch in flight at a time and
picks its broker by cycling through its partitions' leaders; once a member's partitions at one leader are drained,
each turn at that leader waits out `fetch.wait.max.ms` (500 ms by default) for records that cannot come, as a
Kafka broker would make it wait too, so on a cluster the tail of a drain is paced by that setting (docs/kafka.md).
Prints records/s from the first record to the last, per setup, client and round, and checks that no record came
twice.
Usage: target/compat/venv/bin/python benches/share_cluster.py [RECORDS=200000] [PARTITIONS=6] [MEMBERS=2] [ROUNDS=3]
       (the venv from tests/compat/venv.sh; RILL_BIN defaults to target/release/rill)"""

import os
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Producer, ShareConsumer

from local_brokers import RILL, free_address, rill, wait_for

RECORDS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
PARTITIONS = int(sys.argv[2]) if len(sys.argv) > 2 else 6
MEMBERS = int(sys.argv[3]) if len(sys.argv) > 3 else 2
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 3
CONFIG = "node_heartbeat_interval_ms = 100\nnode_session_timeout_ms = 1500\noffsets_topic_partitions = 5\n"


def start(root, nodes):
    """`nodes` broker processes (a single node for 1); their addresses and processes."""
    addrs = [free_address() for _ in range(nodes)]
    with open(os.path.join(root, "rill.toml"), "w") as file:
        file.write(CONFIG)
    processes = []
    for i, addr in enumerate(addrs):
        args = [RILL, "broker", "--listen", addr, "--data-dir", os.path.join(root, f"d{i + 1}"),
                "--config", os.path.join(root, "rill.toml")]
        if nodes > 1:
            peers = ",".join(f"{n + 1}@{a}" for n, a in enumerate(addrs))
            args += ["--node-id", str(i + 1), "--peers", peers]
        processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          env={**os.environ, "RUST_LOG": "error"}))
    return addrs, processes


def drain(bootstrap, group, topic, settings):
    """MEMBERS share consumers, with librdkafka `settings` beside the group's, drain the topic; (seconds, records
    read, distinct values)."""
    seen, lock, first = [], threading.Lock(), []

    def member():
        consumer = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group, **settings})
        consumer.subscribe([topic])
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with lock:
                if len(seen) >= RECORDS:
                    break
            messages = consumer.poll(0.5)
            if messages:
                with lock:
                    if not first:
                        first.append(time.monotonic())
                    seen.extend(message.value()[:12] for message in messages)
        consumer.commit_sync(30)
        consumer.close()

    threads = [threading.Thread(target=member) for _ in range(MEMBERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - first[0], len(seen), len(set(seen))


def drain_rill(bootstrap, group, topic):
    """MEMBERS `rill consume --share-group` processes drain the topic; (seconds, records read, distinct values).
    Each prints what it is handed (the value, one line each) and accepts it; stopped by SIGINT once all are in."""
    seen, lock, first, done = [], threading.Lock(), [], threading.Event()

    def read(process):
        for line in process.stdout:
            with lock:
                if not first:
                    first.append(time.monotonic())
                seen.append(line[:12])
                if len(seen) >= RECORDS:
                    done.set()

    args = [RILL, "consume", topic, "--share-group", group, "--follow", "--broker", bootstrap]
    processes = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(MEMBERS)]
    readers = [threading.Thread(target=read, args=(process,)) for process in processes]
    for reader in readers:
        reader.start()
    done.wait(300)
    finished = time.monotonic()
    for process in processes:
        process.send_signal(2)  # SIGINT: acknowledges what it printed, leaves the group, exits 0
    for process, reader in zip(processes, readers):
        assert process.wait(timeout=30) == 0
        reader.join()
    if not first:
        return float("inf"), 0, 0
    return finished - first[0], len(seen), len(set(seen))


def run(nodes):
    with tempfile.TemporaryDirectory() as root:
        addrs, processes = start(root, nodes)
        try:
            bootstrap = ",".join(addrs)
            create = ("topic", "create", "jobs", "--partitions", str(PARTITIONS), "--replication-factor", str(nodes))
            wait_for(lambda: rill(addrs[0], *create).returncode == 0, "topic created")
            producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
            padding = b"x" * 988
            for i in range(RECORDS):
                while True:
                    try:
                        producer.produce("jobs", b"%012d" % i + padding, partition=i % PARTITIONS)
                        break
                    except BufferError:  # librdkafka's queue is full: let deliveries drain it
                        producer.poll(0.05)
            assert producer.flush(120) == 0
            label = "single node" if nodes == 1 else f"{nodes} nodes"
            drains = (
                ("confluent-kafka", lambda group: drain(bootstrap, group, "jobs", {})),
                ("confluent-kafka (fetch.wait.max.ms=10)",
                 lambda group: drain(bootstrap, group, "jobs", {"fetch.wait.max.ms": 10})),
                ("rill", lambda group: drain_rill(bootstrap, group, "jobs")),
            )
            for number, (client, drain_with) in enumerate(drains):
                for round in range(ROUNDS):
                    group = f"drain-{number}-{round}"
                    # The group's start (a group config, through one node): creates `__consumer_offsets` on a
                    # cluster.
                    wait_for(lambda: rill(addrs[0], "group", "config", group, "--config",
                                          "share.auto.offset.reset=earliest").returncode == 0, "group config")
                    seconds, read, distinct = drain_with(group)
                    assert read == distinct == RECORDS, f"{read} read, {distinct} distinct, of {RECORDS}"
                    print(f"{label:>11} round {round}: {RECORDS / seconds:>9,.0f} records/s ({seconds:.2f} s), "
                          f"{MEMBERS} {client} members, each record once", flush=True)
        finally:
            for process in processes:
                process.kill()
                process.wait(timeout=30)


if __name__ == "__main__":
    run(1)
    run(3)
