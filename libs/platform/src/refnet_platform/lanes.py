"""A worker's two lanes (refnet_platform.consumer): its normal batches run on a thread of their own below the
process's CPU priority, and end at the next record once an urgent one is waiting in the consumer's buffer."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiokafka import AIOKafkaConsumer

log = logging.getLogger(__name__)

# The normal lane's batches run this much below the process's CPU priority (nice): when the process is busy, its urgent
# lane and its fetching run before a backlog's batches. Each process is a session of its own (make run, the bench,
# chaos) or a pod of its own, so this does not count against other processes (README, "Priorities"). Raising a
# thread's nice needs no privilege.
NORMAL_LANE_NICE = 10


def normal_lane(name: str) -> ThreadPoolExecutor:
    """The one thread a consumer's normal batches run on, at the process's nice + NORMAL_LANE_NICE."""
    return ThreadPoolExecutor(1, name, _lower_priority)


def _lower_priority() -> None:
    try:
        os.nice(NORMAL_LANE_NICE)  # on Linux, this thread's only
    except OSError:
        log.warning("normal lane left at the process's CPU priority", exc_info=True)


def never() -> bool:
    return False


def urgent_buffered(consumer: AIOKafkaConsumer, urgent: set[str]) -> Callable[[], bool]:
    """Whether the consumer's fetcher holds records of an urgent partition: asked by a batch of normal records,
    from its thread, after each record, so that an emergency waits for one record rather than the batch's budget
    (the loop then takes it first). Reads aiokafka's buffer (one dict, made once per consumer) by membership
    only, which is safe from another thread."""
    fetcher = consumer._fetcher
    assert fetcher is not None, "the consumer is started"
    buffered = fetcher._records
    partitions = tuple(tp for tp in consumer.assignment() if tp.topic in urgent)
    if not partitions:
        return never
    return lambda: any(tp in buffered for tp in partitions)
