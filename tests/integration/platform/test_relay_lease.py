"""The relay lease on a real database (SQLite and PostgreSQL): one holder at a time, renewed by its holder,
taken over once it runs out, handed back at a stop in order; a relay that lost it marks nothing sent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from refnet_platform.clock import ManualClock
from refnet_platform.relay_lease import LeaseLost, RelayLease
from refnet_platform.tables import relay_lease

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def test_one_holder_renewals_takeover_and_hand_back(engine: Engine) -> None:
    clock = ManualClock(T0)
    first, second = (RelayLease(engine, "intake-relay", ttl_s=10, owner=o, clock=clock) for o in ("a", "b"))
    assert first.acquire() and not second.acquire()  # the first takes it; the second stands by
    clock.advance(seconds=8)
    assert first.acquire() and not second.acquire()  # renewed before it ran out: still the first's
    clock.advance(seconds=9)
    assert not second.acquire()  # 17 s in, but renewed at 8 s: held until 18 s
    clock.advance(seconds=2)  # the first went silent (died): its lease runs out
    assert second.acquire() and second.remaining_s() == 10
    assert not first.acquire() and first.remaining_s() == 0  # back from the dead, it finds the lease taken
    second.release()  # a stop in order: the standby need not wait out the ttl
    assert first.acquire()
    with engine.connect() as conn:
        assert conn.execute(select(relay_lease.c.owner)).scalars().all() == ["a"]


def test_a_relay_that_lost_the_lease_cannot_renew_inside_its_marking_transaction(engine: Engine) -> None:
    clock = ManualClock(T0)
    first, second = (RelayLease(engine, "shelter-relay", ttl_s=5, owner=o, clock=clock) for o in ("a", "b"))
    assert first.acquire()
    clock.advance(seconds=6)
    assert second.acquire()
    with pytest.raises(LeaseLost), engine.begin() as conn:
        first.renew_within(conn)
    assert first.remaining_s() == 0 and second.remaining_s() == 5


def test_leases_are_per_service(engine: Engine) -> None:
    assert RelayLease(engine, "intake-relay", owner="a").acquire()
    assert RelayLease(engine, "referral-relay", owner="b").acquire()
