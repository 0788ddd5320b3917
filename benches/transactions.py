"""What a Kafka transaction costs on rill (docs/benchmarks.md, "Transactions"): confluent-kafka's transactional
producer against a `rill broker` process (the release build), TRANSACTIONS transactions of RECORDS records of 1 KB
each to one partition, each committed; prints transactions a second and the median and p99 of
begin-to-commit-returned. Each commit costs the coordinator two state files (prepared, complete) and a marker, each
fsynced, and AddPartitionsToTxn one more file.
With PRODUCERS=N: N producers at once, each with its own transactional id and TRANSACTIONS transactions.
With NODES=3: three `rill broker` processes as a cluster on this machine, the topic replicated 3 times; each change
of the transaction's state is a raft commit of the controller quorum, and the marker waits for every in-sync
replica.
Usage: [NODES=3] [PRODUCERS=8] target/compat/venv/bin/python benches/transactions.py [TRANSACTIONS=300] [RECORDS=10]
       (the venv from tests/compat/venv.sh; RILL_BIN defaults to target/release/rill)"""

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Producer

RILL = os.environ.get("RILL_BIN", "target/release/rill")
transactions = int(sys.argv[1]) if len(sys.argv) > 1 else 300
records = int(sys.argv[2]) if len(sys.argv) > 2 else 10

nodes = int(os.environ.get("NODES", "1"))
producers = int(os.environ.get("PRODUCERS", "1"))


def free_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def start(work):
    """The brokers, and the address of the first."""
    if nodes == 1:
        broker = subprocess.Popen([RILL, "broker", "--data-dir", os.path.join(work, "data"), "--listen",
                                   "127.0.0.1:0", "--admin-listen", "off"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        return [broker], re.search(r"listening on (\S+)", broker.stdout.readline()).group(1)
    addrs = [free_address() for _ in range(nodes)]
    peers = ",".join(f"{i + 1}@{a}" for i, a in enumerate(addrs))
    brokers = [subprocess.Popen([RILL, "broker", "--node-id", str(i + 1), "--listen", addr, "--admin-listen", "off",
                                 "--data-dir", os.path.join(work, f"data{i + 1}"), "--peers", peers],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for i, addr in enumerate(addrs)]
    return brokers, ",".join(addrs)


with tempfile.TemporaryDirectory(dir=os.environ.get("RILL_BENCH_DIR", "/tmp")) as work:
    brokers, addr = start(work)
    try:
        create = [RILL, "topic", "create", "txn-bench", "--partitions", "1", "--broker", addr.split(",")[0]]
        if nodes > 1:
            create += ["--replication-factor", str(nodes)]
        deadline = time.monotonic() + 60
        while subprocess.run(create, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "the topic could not be created in 60 s"
            time.sleep(0.5)
        value = b"x" * 1000
        took = []

        def run(transactional_id):
            # Each producer its own transactional id, as each Kafka Streams thread has.
            producer = Producer({"bootstrap.servers": addr, "transactional.id": transactional_id, "linger.ms": 0})
            producer.init_transactions(30)
            ready.wait()
            for _ in range(transactions):
                begun = time.monotonic()
                producer.begin_transaction()
                for _ in range(records):
                    producer.produce("txn-bench", value, partition=0)
                producer.commit_transaction(30)
                took.append(time.monotonic() - begun)

        ready = threading.Event()
        threads = [threading.Thread(target=run, args=(f"bench-{n}",)) for n in range(producers)]
        for thread in threads:
            thread.start()
        time.sleep(1 + producers * 0.2)  # every producer initialised
        started = time.monotonic()
        ready.set()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        took.sort()
        total = transactions * producers
        print(f"{producers} producer(s) x {transactions} transactions of {records} x 1 KB in {elapsed:.2f} s: "
              f"{total / elapsed:.0f} transactions/s, {total * records / elapsed:.0f} records/s; "
              f"begin to commit: median {statistics.median(took) * 1000:.2f} ms, "
              f"p99 {took[int(len(took) * 0.99) - 1] * 1000:.2f} ms")
    finally:
        for broker in brokers:
            broker.kill()
            broker.wait()
