"""Sarama, the Go client written from Kafka's protocol docs (not over librdkafka), against rill's Kafka port:
Debian bookworm's 1.22.1, built by tools.sh into target/compat/sarama-check (tests/compat/sarama/main.go). It
creates a topic with its admin, produces with an idempotent acks=all producer under every codec (batches whose
max timestamp it leaves at -1, which Kafka's broker and rill's Kafka port correct), reads every record back, and
commits as a consumer group of two. Run by kafka-clients.sh."""

import os
import subprocess

import pytest

RILL = os.environ["RILL_BIN"]
SARAMA = os.path.join(os.path.dirname(__file__), "..", "..", "target", "compat", "sarama-check")
needs_sarama = pytest.mark.skipif(
    not os.path.exists(SARAMA), reason="sarama-check is not built (Go and Sarama from Debian: see tools.sh)"
)
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def rill(addr, *args):
    done = subprocess.run([RILL, *args, "--broker", addr], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_sarama
def test_sarama_creates_produces_consumes_and_commits_as_a_group(broker_addr):
    done = subprocess.run(
        [SARAMA, broker_addr, "sarama-orders", "sarama-billing"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "created sarama-orders with 3 partitions",
        *[f"produced 200 with {codec}" for codec in CODECS],
        "consumed 1000",
        "group read 1000",
        "committed 1000",
    ], done.stdout

    # One world for both protocols: rill's CLI reads what Sarama wrote, and shows the group's commits.
    values = rill(broker_addr, "consume", "sarama-orders").splitlines()
    assert sorted(values) == sorted(f"{codec}-{i}" for codec in CODECS for i in range(200))
    described = rill(broker_addr, "group", "describe", "sarama-billing")
    rows = [line.split() for line in described.splitlines() if line.startswith("sarama-orders ")]
    assert len(rows) == 3 and all(row[2] == row[3] and row[4] == "0" for row in rows), described
    assert sum(int(row[2]) for row in rows) == 1000, described
