"""The hub behind WatchAvailability: slow or vanished watchers cost bounded memory and block nobody."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from refnet_platform.bus import MessageBus
from refnet_platform.caller import Caller, Role
from refnet_platform.vocabulary import TargetGroup
from shelter.domain import commands
from shelter.domain.events import CapacityChanged
from shelter.domain.model import BedPool
from shelter.service_layer.handlers import watch_scope
from shelter.service_layer.watch import AvailabilityHub, FeedUnavailable, FellBehind, watch

OPERATOR = Caller("qn-worker-7", Role.OPERATOR, provinces=frozenset({"22"}), person=True)
QN = watch_scope(commands.WatchAvailability(OPERATOR, "22"))
QN_WOMEN = watch_scope(commands.WatchAvailability(OPERATOR, "22", target_group=TargetGroup.WOMEN))


def change(shelter_id: str, version: int, reserved: int = 0, province: str = "22",
           group: TargetGroup = TargetGroup.WOMEN) -> CapacityChanged:
    return CapacityChanged(province, "06673", BedPool(shelter_id, group, 10, reserved, 0, datetime.now(UTC), version))


async def test_a_watcher_gets_changes_for_its_province_and_groups_only() -> None:
    hub = AvailabilityHub()
    watcher = hub.subscribe(QN_WOMEN)
    hub.publish(change("a", 2))
    hub.publish(change("b", 2, province="42"))
    hub.publish(change("c", 2, group=TargetGroup.MEN))
    hub.publish(change("d", 2, group=TargetGroup.WOMEN_WITH_CHILDREN))  # a woman may use these beds
    got = await asyncio.wait_for(watcher.changes(), 1)
    assert [c.pool.shelter_id for c in got] == ["a", "d"]


async def test_a_slow_watcher_holds_one_change_per_pool_the_newest() -> None:
    hub = AvailabilityHub()
    slow = hub.subscribe(QN)
    for version in range(2, 5002):
        hub.publish(change("a", version, reserved=version % 10))
        hub.publish(change("b", version))
    assert slow.pending == 2
    got = await slow.changes()
    assert [(c.pool.shelter_id, c.pool.version) for c in got] == [("a", 5001), ("b", 5001)]
    # Older counts arriving late (e.g. behind a snapshot) are never shown after newer ones.
    hub.publish(change("a", 4000))
    assert slow.pending == 0


async def test_a_watcher_too_far_behind_is_ended_and_others_carry_on() -> None:
    hub = AvailabilityHub(max_pending=3)
    behind, keeping_up = hub.subscribe(QN), hub.subscribe(QN)
    for i in range(5):
        hub.publish(change(f"s{i}", 2))
        assert len(await keeping_up.changes()) == 1
    assert behind.pending == 0  # its backlog was dropped when it was ended
    with pytest.raises(FellBehind, match="reconnect for a fresh snapshot"):
        await behind.changes()


async def test_a_watcher_that_left_is_forgotten() -> None:
    hub = AvailabilityHub()
    gone = hub.subscribe(QN)
    hub.unsubscribe(gone)
    hub.publish(change("a", 2))
    assert (hub.watchers, gone.pending) == (0, 0)


async def test_losing_the_feed_ends_every_watch() -> None:
    hub = AvailabilityHub()
    hub.connected()
    watcher = hub.subscribe(QN)
    waiting = asyncio.create_task(watcher.changes())
    await asyncio.sleep(0)
    hub.disconnected()
    with pytest.raises(FeedUnavailable):
        await asyncio.wait_for(waiting, 1)
    assert not hub.live.is_set()


async def test_a_watch_is_refused_while_the_feed_is_not_connected() -> None:
    hub = AvailabilityHub()
    bus = MessageBus({commands.WatchAvailability: watch_scope})
    stream = watch(bus, hub, commands.WatchAvailability(OPERATOR, "22"), stale_after=timedelta(hours=24),
                   connect_timeout_s=0.1)
    with pytest.raises(FeedUnavailable, match="not connected yet; use ListAvailability"):
        await stream.__anext__()
    assert hub.watchers == 0
