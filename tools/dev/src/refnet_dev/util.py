"""Small process and path helpers shared by the Kafka and PostgreSQL harnesses."""

from __future__ import annotations

import os
import random
import socket
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def repo_root() -> Path:
    """The refnet checkout: $REFNET_ROOT, else found from this file (tools/dev/src/refnet_dev/)."""
    env = os.environ.get("REFNET_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[4]


# Ports handed out are below the kernel's ephemeral range: a port from that range (what binding to port 0 gives)
# can be taken by any outgoing connection (a Kafka client, a test's HTTP call) in the seconds before the process it
# was meant for binds it, which failed a network's start now and then with "Address already in use".
FIRST_PORT = 20000
_handed_out: set[int] = set()


@cache
def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A port free on 127.0.0.1 right now, below the ephemeral range (so no outgoing connection takes it before
    its process binds it), and not handed out before by this process."""
    last = max(_ephemeral_start(), FIRST_PORT + 1000)
    while True:
        port = random.randrange(FIRST_PORT, last)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a reaped-later orphan counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def tail(path: Path, lines: int = 30) -> str:
    """The end of a log file without Java stack frames, which would push the actual error out of view."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    kept = [line for line in text.splitlines() if not line.startswith(("\tat ", "\t... "))]
    return "\n".join(kept[-lines:])


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30, poll_s: float = 0.2) -> T:
    """The first truthy result of `probe`, asked every `poll_s` until `timeout`; else AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")
