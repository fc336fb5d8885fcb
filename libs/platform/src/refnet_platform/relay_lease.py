"""One active relay per service: a lease row in the service's own database (owner + expiry), renewed while it
publishes. A second copy (a rolling update's new pod, `intake-relay` started by hand) waits on standby and
takes over once the lease runs out, within `ttl_s` of the active one dying; a relay that stops in order hands
the lease back at once.

Why a lease and not Kafka's transactional-id fencing: fencing stops a zombie's writes only after a new
producer has registered, but two relays reading the same outbox would still both publish every row they
read; the lease keeps the second one from reading at all. It needs nothing but the service's own database
(SQLite or PostgreSQL), no broker transactions and no transactional-id ACLs. What it cannot rule out (a relay
paused longer than its lease in the middle of a batch) ends as a repeated record with the same event id,
which every consumer's inbox already drops, as after a relay crash between sending and marking rows sent.

Time is the relays' own clocks (UTC); they must agree to well within `ttl_s` (NTP does).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from refnet_platform import metrics
from refnet_platform.clock import Clock, system_clock
from refnet_platform.tables import relay_lease

log = logging.getLogger(__name__)

LEASE_TTL_S = 15.0

# Built once: taking it (ours, or run out), and renewing it inside a marking transaction (ours and not yet run
# out; once a third of the lease has passed).
_OURS = relay_lease.c.owner == bindparam("holder")
_NEW_TERM = update(relay_lease).values(owner=bindparam("holder"), expires_at=bindparam("until"))
_TAKE = _NEW_TERM.where(relay_lease.c.name == bindparam("lease"), _OURS | (relay_lease.c.expires_at < bindparam("now")))
_RENEW = _NEW_TERM.where(relay_lease.c.name == bindparam("lease"), _OURS, relay_lease.c.expires_at >= bindparam("now"))


class LeaseLost(Exception):
    """The lease ran out or went to another relay while this one worked: stop publishing, go back to standby."""


class RelayLease:
    def __init__(self, engine: Engine, name: str = "relay", ttl_s: float = LEASE_TTL_S, owner: str | None = None,
                 clock: Clock = system_clock) -> None:
        self.engine = engine
        self.name = name
        self.ttl = timedelta(seconds=ttl_s)
        # Host, process and a random part: two relays in one process (tests) are two owners too.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self.held_until: datetime | None = None

    @property
    def renew_every_s(self) -> float:
        """How often a holder renews, and a standby asks: a third of the lease."""
        return self.ttl.total_seconds() / 3

    def acquire(self) -> bool:
        """Takes or renews the lease; True while this relay holds it."""
        now = self.clock()
        with self.engine.begin() as conn:
            held = self._extend(conn, now, or_expired=True) or self._create(conn, now)
        self._holding(now + self.ttl if held else None)
        return held

    def renew_within(self, conn: Connection) -> None:
        """Inside the transaction that marks rows sent: renews the lease, or raises LeaseLost (and the
        transaction rolls back, leaving the rows to whoever holds the lease now)."""
        now = self.clock()
        if not self._extend(conn, now, or_expired=False):
            self._holding(None)
            raise LeaseLost(f"relay lease {self.name!r} is no longer {self.owner}'s")
        self._holding(now + self.ttl)

    def keep_within(self, conn: Connection) -> None:
        """Before marking a batch sent: renews the lease in that transaction once a third of it has passed (as
        renew_within); before that it is this relay's by its own clock (nobody may take it before it runs out),
        and the batch costs no lease statement."""
        if self.renewal_due():
            self.renew_within(conn)

    def renewal_due(self) -> bool:
        """A third of the lease has passed since it was last taken or renewed (or it is not held)."""
        return self.remaining_s() <= self.ttl.total_seconds() - self.renew_every_s

    def remaining_s(self) -> float:
        if self.held_until is None:
            return 0.0
        return max((self.held_until - self.clock()).total_seconds(), 0.0)

    def release(self) -> None:
        """Hands the lease back (a stop in order): a standby takes over at its next try, not after the ttl."""
        if self.held_until is None:
            return
        with self.engine.begin() as conn:
            conn.execute(update(relay_lease).where(relay_lease.c.name == self.name, relay_lease.c.owner == self.owner)
                         .values(expires_at=self.clock() - timedelta(seconds=1)))
        self._holding(None)

    def _extend(self, conn: Connection, now: datetime, or_expired: bool) -> bool:
        result = conn.execute(_TAKE if or_expired else _RENEW,
                              {"lease": self.name, "holder": self.owner, "now": now, "until": now + self.ttl})
        return result.rowcount == 1

    def _create(self, conn: Connection, now: datetime) -> bool:
        if conn.execute(select(relay_lease.c.owner).where(relay_lease.c.name == self.name)).first() is not None:
            return False  # another relay's, and not expired
        try:
            with conn.begin_nested():
                conn.execute(insert(relay_lease).values(name=self.name, owner=self.owner, expires_at=now + self.ttl))
            return True
        except IntegrityError:  # another relay created it at the same moment
            return False

    def _holding(self, until: datetime | None) -> None:
        was = self.held_until is not None
        self.held_until = until
        if was != (until is not None):
            log.info("relay lease taken" if until else "relay lease lost or handed back; standing by",
                     extra={"fields": {"lease": self.name, "owner": self.owner}})
        metrics.RELAY_ACTIVE.set(1 if until is not None else 0)
