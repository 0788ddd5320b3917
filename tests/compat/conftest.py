"""What the compatibility suites share: a real `rill broker` process on a free port."""

import contextlib
import os
import subprocess
import tempfile

import pytest

RILL = os.environ["RILL_BIN"]


@contextlib.contextmanager
def running_broker(data_dir, *flags):
    """A real `rill broker` process on a free port (gRPC and Kafka on it) with its data in `data_dir` and `flags`
    added (`--admin-listen` among them), killed at the end; its address."""
    process = subprocess.Popen(
        [RILL, "broker", "--listen", "127.0.0.1:0", "--data-dir", data_dir, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RUST_LOG": "error"},
        text=True,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("rill broker listening on "), line
        yield line.removeprefix("rill broker listening on ")
    finally:
        process.kill()
        process.wait(timeout=30)


def read_values(consumer, topic, count, polls=300):
    """Subscribes `consumer` to `topic` and returns the values of up to `count` records read within `polls`
    polls of 0.1 s; closes the consumer."""
    values = []
    try:
        consumer.subscribe([topic])
        for _ in range(polls):
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                values.append(message.value())
            if len(values) == count:
                break
    finally:
        consumer.close()
    return values


@pytest.fixture(scope="module")
def broker_addr():
    """A real `rill broker` process on a free port, killed at the end; its address."""
    with tempfile.TemporaryDirectory() as data_dir, running_broker(data_dir, "--admin-listen", "127.0.0.1:0") as addr:
        yield addr
