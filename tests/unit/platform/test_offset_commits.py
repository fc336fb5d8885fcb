"""A worker's offsets go to the broker at intervals, for the partitions still its own, and at its stop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from refnet_platform.consumer import OFFSET_COMMIT_INTERVAL_S, EventConsumer
from refnet_platform.envelope import TypeRegistry

CASES = TopicPartition("intake.cases.v1", 0)
URGENT = TopicPartition("intake.cases-urgent.v1", 1)


class FakeConsumer:
    def __init__(self, assigned: set[TopicPartition], fail: bool = False) -> None:
        self.assigned = assigned
        self.commits: list[dict[TopicPartition, int]] = []
        self.fail = fail

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail:
            raise CommitFailedError("rebalance under way")
        self.commits.append(dict(offsets))


def committed_ago(w: EventConsumer, seconds: float) -> None:
    w._offsets_committed_at = time.monotonic() - seconds


def worker() -> EventConsumer:
    return EventConsumer(
        "referral", "127.0.0.1:9", ["intake.cases.v1", "intake.cases-urgent.v1"], TypeRegistry(), lambda e, m: None
    )


def commit(w: EventConsumer, fake: Any, now: bool = False) -> None:
    asyncio.run(w._commit_offsets(fake, now=now))


def test_offsets_wait_for_the_interval_then_go_together_with_the_latest_of_each_partition() -> None:
    w, fake = worker(), FakeConsumer({CASES, URGENT})
    w._uncommitted.update({CASES: 5})
    commit(w, fake)
    assert fake.commits == [{CASES: 5}]  # the first handled records: nothing committed yet, so at once
    w._uncommitted.update({CASES: 9})
    w._uncommitted.update({URGENT: 2, CASES: 12})
    committed_ago(w, OFFSET_COMMIT_INTERVAL_S / 2)
    commit(w, fake)
    assert len(fake.commits) == 1  # within the interval: held
    committed_ago(w, OFFSET_COMMIT_INTERVAL_S)
    commit(w, fake)
    assert fake.commits[1] == {CASES: 12, URGENT: 2}
    commit(w, fake)
    assert len(fake.commits) == 2  # nothing new: no request


def test_the_stop_commits_what_was_handled_at_once() -> None:
    w, fake = worker(), FakeConsumer({CASES})
    w._uncommitted.update({CASES: 3})
    commit(w, fake)
    w._uncommitted.update({CASES: 4})
    commit(w, fake, now=True)
    assert fake.commits == [{CASES: 3}, {CASES: 4}]


def test_a_revoked_partition_is_left_to_its_new_owner_and_a_failed_commit_does_not_stop_the_worker() -> None:
    w = worker()
    w._uncommitted.update({CASES: 7, URGENT: 1})
    fake = FakeConsumer({URGENT})
    commit(w, fake)
    assert fake.commits == [{URGENT: 1}]
    w._uncommitted.update({URGENT: 3})
    failing: Any = FakeConsumer({URGENT}, fail=True)
    commit(w, failing, now=True)  # logged; the records are redelivered and found in the inbox
    assert w._uncommitted == {}
