"""Small process and path helpers shared by the Kafka and PostgreSQL harnesses."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def repo_root() -> Path:
    """The refnet checkout: $REFNET_ROOT, else found from this file (tools/dev/src/refnet_dev/)."""
    env = os.environ.get("REFNET_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[4]


def free_port() -> int:
    """A port the OS considers free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
