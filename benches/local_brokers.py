"""What the Python benchmarks that start `rill broker` processes share: the binary (RILL_BIN, the release build by
default), a free port, a `rill` command against a node, and a bounded wait."""

import os
import socket
import subprocess
import sys
import time

RILL = os.environ.get("RILL_BIN", "target/release/rill")


def free_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def rill(addr, *args):
    return subprocess.run([RILL, *args, "--broker", addr], capture_output=True, text=True, timeout=60)


def wait_for(condition, what, limit=60):
    deadline = time.monotonic() + limit
    while not (value := condition()):
        if time.monotonic() > deadline:
            sys.exit(f"no {what} within {limit} s")
        time.sleep(0.2)
    return value
