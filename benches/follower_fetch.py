"""How much later a consumer reading from a follower (KIP-392, `client.rack`) sees a record than one reading from
the leader (docs/benchmarks.md, "Fetching from a follower"): three `rill broker` processes on this machine, each
`--rack zone-N`, a topic of one partition replicated 3 times; a librdkafka (confluent-kafka) producer sends
RATE records a second (acks all, each sent alone, its send time in its value) for SECONDS, while two consumers
read: one in the leader's zone (served by the leader) and one in a follower's zone (served by that follower).
Prints, for each, send-to-consume latency percentiles and which broker librdkafka fetched from. A follower learns
the high watermark from its leader's answers, so its consumer is later by about a replication round trip; before
a leader answered a follower as soon as its high watermark moved, it waited for the next append or the end of
the follower's 500 ms fetch wait.
Usage: target/compat/venv/bin/python benches/follower_fetch.py [SECONDS=20] [RATE=50]
       (the venv from tests/compat/venv.sh; RILL_BIN defaults to target/release/rill)"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from local_brokers import RILL, free_address, rill, wait_for

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
rate = float(sys.argv[2]) if len(sys.argv) > 2 else 50.0


def leader_of(addr):
    """(leader, ISR size) of partition 0 of `nearby`, from `rill topic describe`."""
    for line in rill(addr, "topic", "describe", "nearby").stdout.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] == "0" and fields[1].isdigit():
            return int(fields[1]), len(fields[4].split(","))
    return None


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


class Reader(threading.Thread):
    def __init__(self, bootstrap, rack):
        super().__init__(daemon=True)
        self.latencies_ms, self.fetched_from, self.stop = [], None, False
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{rack}", "client.rack": rack,
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 500,
                                  "statistics.interval.ms": 1000, "stats_cb": self.on_stats})
        self.consumer.assign([TopicPartition("nearby", 0, 0)])

    def on_stats(self, text):
        partition = json.loads(text).get("topics", {}).get("nearby", {}).get("partitions", {}).get("0")
        if partition:
            self.fetched_from = partition.get("broker")

    def run(self):
        while not self.stop:
            # One message a call: consume(n, timeout) would wait to fill n.
            message = self.consumer.poll(0.1)
            if message is not None and message.error() is None:
                sent = float(message.value().decode())
                self.latencies_ms.append((time.time() - sent) * 1000)


def main():
    with tempfile.TemporaryDirectory() as work:
        addrs = [free_address() for _ in range(3)]
        peers = ",".join(f"{i + 1}@{a}" for i, a in enumerate(addrs))
        brokers = [subprocess.Popen([RILL, "broker", "--node-id", str(i + 1), "--listen", addr, "--admin-listen",
                                     "off", "--data-dir", os.path.join(work, f"data{i + 1}"), "--peers", peers,
                                     "--rack", f"zone-{i + 1}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for i, addr in enumerate(addrs)]
        try:
            create = ("topic", "create", "nearby", "--partitions", "1", "--replication-factor", "3")
            wait_for(lambda: rill(addrs[0], *create).returncode == 0, "topic created")
            leader, _ = wait_for(lambda: (found := leader_of(addrs[0])) and found[1] == 3 and found, "3 in sync")
            follower = next(n for n in (1, 2, 3) if n != leader)
            bootstrap = ",".join(addrs)
            readers = {"leader's zone": Reader(bootstrap, f"zone-{leader}"),
                       "follower's zone": Reader(bootstrap, f"zone-{follower}")}
            for reader in readers.values():
                reader.start()
            producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
            # Warm-up: the consumers find their replica and the connections open.
            for _ in range(20):
                producer.produce("nearby", b"%f" % time.time(), partition=0)
                producer.flush(10)
                time.sleep(0.05)
            time.sleep(2)
            for reader in readers.values():
                reader.latencies_ms.clear()
            sent, start = 0, time.monotonic()
            while time.monotonic() - start < seconds:
                producer.produce("nearby", b"%f" % time.time(), partition=0)
                producer.poll(0)
                sent += 1
                time.sleep(max(0.0, start + sent / rate - time.monotonic()))
            producer.flush(10)
            time.sleep(2)
            print(f"{sent} records at {rate:.0f}/s for {seconds:.0f} s; leader node {leader}, follower node {follower}")
            for name, reader in readers.items():
                reader.stop = True
                reader.join(timeout=10)
                values = sorted(reader.latencies_ms)
                if not values:
                    print(f"{name}: nothing read")
                    continue
                print(f"{name} (fetching from node {reader.fetched_from}): {len(values)} read, send->consume "
                      f"p50 {percentile(values, 50):.2f} ms, p90 {percentile(values, 90):.2f} ms, "
                      f"p99 {percentile(values, 99):.2f} ms, max {values[-1]:.2f} ms, "
                      f"mean {statistics.mean(values):.2f} ms")
                reader.consumer.close()
        finally:
            for broker in brokers:
                broker.kill()
                broker.wait()


main()
