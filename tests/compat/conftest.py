"""What the compatibility suites share: a real `rill broker` process on a free port."""

import contextlib
import os
import subprocess
import tempfile

import pytest

RILL = os.environ["RILL_BIN"]


# The log filter of every broker the suites start: errors, what the group coordinators decide (joins, leaves,
# assignments, refused commits), where consumers resume (offset fetches), fetches refused or sent back to an
# earlier offset, and connections closed (a producer retries what was in flight): what a record read twice needs
# to be explained. RILL_COMPAT_RUST_LOG overrides it (e.g. `debug` for everything).
BROKER_LOG_FILTER = os.environ.get(
    "RILL_COMPAT_RUST_LOG",
    "error,rill_broker::groups=debug,rill_broker::kafka::offset_commit=debug,rill_broker::kafka::offset_fetch=debug,"
    "rill_broker::kafka::fetch=debug,rill_broker::kafka::connection=debug",
)
# How much of each live broker's log a failed test shows.
BROKER_LOG_TAIL_LINES = 400
# The log files of the brokers running now, shown by `pytest_runtest_makereport` when a test fails.
live_broker_logs = []


@contextlib.contextmanager
def running_broker(data_dir, *flags):
    """A real `rill broker` process on a free port (gRPC and Kafka on it) with its data in `data_dir` and `flags`
    added (`--admin-listen` among them), killed at the end; its address. Its log (stderr) is kept in a temporary
    file, and its tail is added to the report of any test that fails while it runs."""
    with tempfile.NamedTemporaryFile(prefix="rill-broker-", suffix=".log") as log:
        process = subprocess.Popen(
            [RILL, "broker", "--listen", "127.0.0.1:0", "--data-dir", data_dir, *flags],
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, "RUST_LOG": BROKER_LOG_FILTER, "NO_COLOR": "1"},
            text=True,
        )
        live_broker_logs.append(log.name)
        try:
            line = process.stdout.readline().strip()
            assert line.startswith("rill broker listening on "), line
            yield line.removeprefix("rill broker listening on ")
        finally:
            live_broker_logs.remove(log.name)
            process.kill()
            process.wait(timeout=30)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report ends with the tail of each running broker's log."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for path in live_broker_logs:
        with open(path, errors="replace") as log:
            tail = log.readlines()[-BROKER_LOG_TAIL_LINES:]
        report.sections.append((f"broker log {path} (last {len(tail)} lines)", "".join(tail)))


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


def committed_offsets(addr, group, topic):
    """A group's committed offsets of `topic` per partition, as `rill group describe` prints them (None for a
    partition without one)."""
    done = subprocess.run([RILL, "group", "describe", group, "--broker", addr], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    found = {}
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0] == topic and fields[1].isdigit():
            found[int(fields[1])] = None if fields[2] == "-" else int(fields[2])
    return found


def free_port():
    """A TCP port on 127.0.0.1 free a moment ago, for a listener whose address a test must know before it starts."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_topic(admin, name, config, partitions=1):
    """Creates topic `name` through confluent-kafka's AdminClient `admin`, with Kafka topic `config`, and waits for
    the answer."""
    from confluent_kafka.admin import NewTopic

    (future,) = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                              config=config)]).values()
    future.result(timeout=30)
