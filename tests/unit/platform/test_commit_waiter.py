"""The relay's commit waiter on SQLite: a commit whose log write woke it before the commit showed is still
seen within milliseconds, not at the next commit. The log's events and the version reads are played here in
the order a busy machine gives them: the writer preempted between writing its frames and publishing them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from refnet_platform.engine import make_engine
from refnet_platform.outbox import WAL_RECHECKS_S, CommitWaiter


class FakeLog:
    """inotify on the write-ahead log: one write event queued, then silence (the writer writes nothing more)."""

    def __init__(self) -> None:
        self.events = [object()]
        self.reads = 0

    def read(self, timeout: int) -> list[object]:
        self.reads += 1
        if self.events:
            return [self.events.pop()]
        time.sleep(timeout / 1000)
        return []

    def close(self) -> None:
        pass


def waiter(tmp_path: Path, versions: list[int]) -> tuple[CommitWaiter, FakeLog]:
    engine = make_engine(f"sqlite:///{tmp_path / 'waiter.db'}")
    w = CommitWaiter(engine, None)
    log = FakeLog()
    w._wal = log  # type: ignore[assignment]
    w._version = versions[0]
    reads = iter(versions)
    w._data_version = lambda: next(reads, versions[-1])  # type: ignore[method-assign]
    w._any_pending = lambda: True  # type: ignore[method-assign]
    return w, log


@pytest.mark.parametrize("unseen_checks", range(1, len(WAL_RECHECKS_S) + 1))
def test_a_commit_made_visible_just_after_its_log_write_wakes_the_waiter_at_once(
        tmp_path: Path, unseen_checks: int) -> None:
    # the check before waiting, then `unseen_checks` checks that still see the old version, then the commit
    w, log = waiter(tmp_path, [1, 1, *([1] * (unseen_checks - 1)), 2])
    started = time.monotonic()
    assert w._woken_within(2.0)
    assert time.monotonic() - started < 0.5  # not the next commit's wake (here: none, the whole timeout)
    assert log.reads == 1
    w.close()


def test_a_log_write_that_never_becomes_a_commit_waits_for_the_next_write(tmp_path: Path) -> None:
    w, log = waiter(tmp_path, [1])
    started = time.monotonic()
    assert not w._woken_within(0.3)
    assert time.monotonic() - started >= 0.3
    assert log.reads == 2  # the write, then a wait for the next one once the rechecks saw nothing
    w.close()
