"""Stopping (refnet_platform.stopping): SIGTERM stops a threaded loop even when it lands while the main thread
holds the stop event's own lock (a handler calling Event.set() there deadlocked refnet-cohost: py-spy showed
Event.set inside Event.set, a second SIGTERM right after the first); `set` from another thread wakes a waiter at
once; a wait with a timeout ends with it."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from refnet_platform.stopping import Stopping


@pytest.fixture
def stopping() -> Iterator[Stopping]:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield Stopping()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@pytest.mark.timeout(10)  # the deadlock this guards against hangs forever
def test_sigterm_while_the_main_thread_holds_the_event_s_lock_stops_the_wait(stopping: Stopping) -> None:
    stopping.on_signals()
    with stopping._event._cond:  # where the main thread is inside Event.wait or a first handler's Event.set
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 2
        while not stopping.signalled and time.monotonic() < deadline:
            time.sleep(0.01)  # the handler runs on this thread, between two of its bytecodes
    assert stopping.signalled and stopping.is_set()
    started = time.monotonic()
    assert stopping.wait()
    assert time.monotonic() - started < 0.1  # seen at once, not after a poll


@pytest.mark.timeout(10)
def test_a_signal_during_a_wait_ends_it_within_the_poll(stopping: Stopping) -> None:
    stopping.on_signals()
    threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
    started = time.monotonic()
    assert stopping.wait()
    assert time.monotonic() - started < 0.1 + Stopping.SIGNAL_SEEN_WITHIN_S + 0.2


def test_set_from_another_thread_wakes_a_waiter_at_once(stopping: Stopping) -> None:
    threading.Timer(0.1, stopping.set).start()  # e.g. a co-hosted role ending on its own
    started = time.monotonic()
    assert stopping.wait(5)
    assert time.monotonic() - started < 0.4 and not stopping.signalled


def test_a_wait_with_a_timeout_ends_with_it(stopping: Stopping) -> None:
    started = time.monotonic()
    assert not stopping.wait(0.2)
    assert 0.2 <= time.monotonic() - started < 0.5 and not stopping.is_set()
