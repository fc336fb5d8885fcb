"""Live availability for hotline screens: the api's bed-event feed publishes each pool's new counts to a
hub, which hands them to every watcher of that province.

A watcher keeps at most one unsent change per pool (a newer one replaces it), so a slow or vanished
client costs a few rows of memory and never blocks the feed or other watchers; past `max_pending`
unsent pools it is ended (FellBehind) and reconnects for a fresh snapshot.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator
from datetime import timedelta

from refnet_platform.bus import MessageBus
from refnet_platform.caller import Caller
from refnet_platform.clock import Clock, system_clock
from refnet_platform.errors import NotFound
from refnet_platform.vocabulary import TargetGroup
from shelter.domain import commands
from shelter.domain.events import CapacityChanged
from shelter.domain.model import Availability, Shelter, availability
from shelter.service_layer.handlers import AvailabilityList, WatchScope, as_seen_by

PoolKey = tuple[str, TargetGroup]


class WatchEnded(Exception):
    """The stream cannot go on; the message tells the watcher what to do."""


class FeedUnavailable(WatchEnded):
    pass


class FellBehind(WatchEnded):
    pass


class Subscription:
    def __init__(self, scope: WatchScope, max_pending: int) -> None:
        self.scope = scope
        self.max_pending = max_pending
        self._pending: OrderedDict[PoolKey, CapacityChanged] = OrderedDict()
        self._versions: dict[PoolKey, int] = {}
        self._wake = asyncio.Event()
        self._ended: WatchEnded | None = None

    def seen(self, key: PoolKey, version: int) -> None:
        self._versions[key] = max(version, self._versions.get(key, 0))

    def offer(self, change: CapacityChanged) -> None:
        if self._ended or not self.scope.wants(change):
            return
        key = (change.pool.shelter_id, change.pool.target_group)
        if change.pool.version <= self._versions.get(key, 0):
            return  # the watcher already has these counts or newer ones (e.g. from its snapshot)
        self._pending.pop(key, None)
        self._pending[key] = change
        if len(self._pending) > self.max_pending:
            self.end(FellBehind(f"more than {self.max_pending} pool changes unsent; reconnect for a fresh snapshot"))
        self._wake.set()

    def end(self, reason: WatchEnded) -> None:
        self._ended = reason
        self._pending.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def changes(self) -> list[CapacityChanged]:
        """Waits for changes, then takes all of them (one per pool, the newest)."""
        while not self._pending and not self._ended:
            self._wake.clear()
            await self._wake.wait()
        if self._ended:
            raise self._ended
        batch = list(self._pending.values())
        self._pending.clear()
        for change in batch:
            self.seen((change.pool.shelter_id, change.pool.target_group), change.pool.version)
        return batch


class AvailabilityHub:
    """Lives on the api's event loop: the feed and every watcher run there, so no locks are needed."""

    def __init__(self, max_pending: int = 1000) -> None:
        self.max_pending = max_pending
        self.live = asyncio.Event()  # the feed is positioned on the bed events and reading
        self._subscriptions: set[Subscription] = set()

    @property
    def watchers(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, scope: WatchScope) -> Subscription:
        subscription = Subscription(scope, self.max_pending)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, change: CapacityChanged) -> None:
        for subscription in list(self._subscriptions):
            subscription.offer(change)

    def connected(self) -> None:
        self.live.set()

    def disconnected(self) -> None:
        """The feed broke: end every watch, since changes may be missed until it is back."""
        self.live.clear()
        for subscription in list(self._subscriptions):
            subscription.end(FeedUnavailable("live availability lost its feed; reconnect shortly"))


async def watch(bus: MessageBus, hub: AvailabilityHub, cmd: commands.WatchAvailability, stale_after: timedelta,
                connect_timeout_s: float, clock: Clock = system_clock
                ) -> AsyncGenerator[tuple[bool, list[Availability]], None]:
    """(True, snapshot rows), then (False, changed rows) as changes happen, until the watcher leaves. Rows are
    as the watcher may see them (a shelter's commune only to its audience), snapshot and changes alike; `clock`
    (the one the bus was built with) tells how old each change's counts are."""
    caller = cmd.caller
    scope: WatchScope = await asyncio.to_thread(bus.handle, cmd)
    try:
        await asyncio.wait_for(hub.live.wait(), connect_timeout_s)
    except TimeoutError:
        raise FeedUnavailable("live availability is not connected yet; use ListAvailability and retry") from None
    # Subscribed before the snapshot is read, so no change can fall between the two.
    subscription = hub.subscribe(scope)
    try:
        snapshot: AvailabilityList = await asyncio.to_thread(bus.handle, commands.ListAvailability(
            caller, cmd.province_code, cmd.commune_code, cmd.target_group, include_neighbours=cmd.include_neighbours,
            fallback=False))
        profiles: dict[str, Shelter] = {}
        for row in snapshot.rows:
            profiles[row.shelter_id] = Shelter(row.shelter_id, row.name, row.province_code, row.commune_code,
                                               row.accessibility)
            subscription.seen((row.shelter_id, row.pool.target_group), row.pool.version)
        yield True, snapshot.rows
        while True:
            changes = await subscription.changes()
            now = clock()
            rows = []
            for change in changes:
                profile = profiles.get(change.pool.shelter_id) or await _profile(bus, caller, change)
                profiles[profile.shelter_id] = profile
                rows.append(as_seen_by(caller, availability(profile, change.pool, now, stale_after,
                                                            scope.place.proximity(profile))))
            yield False, rows
    finally:
        hub.unsubscribe(subscription)


async def _profile(bus: MessageBus, caller: Caller, change: CapacityChanged) -> Shelter:
    """A shelter first seen in a change (new since the snapshot): its name and accessibility, once. The
    event's commune stays in the profile; `as_seen_by` decides whether the watcher is shown it."""
    try:
        shelter, _ = await asyncio.to_thread(bus.handle, commands.GetShelter(caller, change.pool.shelter_id))
    except NotFound:  # this replica's database has not got it yet: show the change with the codes it carries
        return Shelter(change.pool.shelter_id, "", change.province_code, change.commune_code)
    return Shelter(shelter.shelter_id, shelter.name, shelter.province_code, shelter.commune_code,
                   shelter.accessibility)
