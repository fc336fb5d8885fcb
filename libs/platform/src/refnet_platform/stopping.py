"""A process's stop request, safe to make from a signal handler (the threaded loops': relay, co-host, collector,
refnet-dev run; asyncio loops take signals with loop.add_signal_handler)."""

from __future__ import annotations

import signal
import threading
import time


class Stopping:
    """Set by SIGTERM or SIGINT (`on_signals`) or by any thread (`set`); waited for by any thread.

    The signal handler only raises a flag. Python runs a handler on the main thread between any two bytecodes, also
    while that thread holds a threading.Event's own lock (inside its wait, or inside a first handler's set when a
    second SIGTERM follows at once): a handler calling Event.set() there waited on itself forever. So a waiter looks
    at the flag every SIGNAL_SEEN_WITHIN_S."""

    SIGNAL_SEEN_WITHIN_S = 0.5

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signalled = False

    def on_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, *_: object) -> None:
        self.signalled = True  # no lock taken: see the class's comment

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self.signalled or self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """True once stopped, False when `timeout` (None: none) passed first. `set` wakes it at once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = self.SIGNAL_SEEN_WITHIN_S if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            self._event.wait(min(left, self.SIGNAL_SEEN_WITHIN_S))
        return True
