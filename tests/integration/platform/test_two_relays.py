"""Two relays for one service, as real processes (`intake-relay`, twice) on a real broker and a real database
(SQLite and PostgreSQL): every outbox row is published exactly once while both run, and when the active one
is killed the standby takes the lease and publishes what comes next."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from sqlalchemy import Engine, func, select

from intake.config import MIGRATIONS
from refnet.common.v1.envelope_pb2 import EventEnvelope
from refnet.intake.v1 import events_pb2 as intake_events
from refnet_dev.kafka import KafkaBroker, read_records
from refnet_dev.util import eventually, wait_gone
from refnet_platform.engine import make_engine, read_connection
from refnet_platform.envelope import OutgoingEvent
from refnet_platform.migrations import migrate
from refnet_platform.tables import outbox, relay_lease
from refnet_platform.unit_of_work import UnitOfWork

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
TOPIC = "intake.cases.v1"
LEASE_S = 3.0


@pytest.fixture
def intake_db(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    migrate(engine, MIGRATIONS)
    yield engine
    engine.dispose()


def start_relay(database_url: str, bootstrap: str, logs: Path, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "INTAKE_DATABASE_URL": database_url,
           "REFNET_RELAY_LEASE_S": str(LEASE_S), "REFNET_DATA_DIR": str(logs), "INTAKE_METRICS_PORT": "0"}
    with (logs / f"{name}.log").open("wb") as sink:
        return subprocess.Popen([str(Path(sys.executable).parent / "intake-relay")], env=env, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)


def write_cases(engine: Engine, count: int, per_transaction: int = 5) -> list[str]:
    """Closes `count` cases through the unit of work, a few per transaction: outbox rows to publish."""
    ids = [f"lease-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    for start in range(0, count, per_transaction):
        with UnitOfWork(engine, "intake") as work:
            for case_id in ids[start:start + per_transaction]:
                work.publish(OutgoingEvent(intake_events.CaseClosed(case_id=case_id, province_code="22"), TOPIC,
                                           "22", f"case/{case_id}"))
            work.commit()
        time.sleep(0.01)  # a stream of commits, not one burst: both relays are woken again and again
    return ids


def published(bootstrap: str, case_ids: list[str]) -> Counter[str]:
    """How many times each of these cases' events is on the topic."""
    wanted = set(case_ids)
    seen: Counter[str] = Counter()
    for record in read_records(bootstrap, TOPIC):
        closed = intake_events.CaseClosed()
        try:
            envelope = EventEnvelope.FromString(record.value or b"")
        except DecodeError:  # the topic outlives the test: another test's poison record
            continue
        if envelope.type == closed.DESCRIPTOR.full_name and envelope.data.Unpack(closed) and closed.case_id in wanted:
            seen[closed.case_id] += 1
    return seen


def unsent(engine: Engine) -> int:
    with read_connection(engine) as conn:
        return int(conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None))).scalar_one())


def lease_holder(engine: Engine) -> int | None:
    """The pid in the lease owner (host:pid:random), if the lease is held."""
    with read_connection(engine) as conn:
        owner = conn.execute(select(relay_lease.c.owner).where(relay_lease.c.name == "intake-relay")).scalar()
    return int(owner.split(":")[1]) if owner else None


def test_two_relays_one_publisher_and_the_standby_takes_over(
        kafka_broker: KafkaBroker, database_url: str, intake_db: Engine, tmp_path: Path) -> None:
    relays = {name: start_relay(database_url, kafka_broker.bootstrap, tmp_path, name) for name in ("a", "b")}
    try:
        active = eventually(lambda: lease_holder(intake_db), "a relay holding the lease", 60)
        assert active in {p.pid for p in relays.values()}

        # Both running: 300 rows in 60 commits, each published exactly once.
        first = write_cases(intake_db, 300)
        eventually(lambda: unsent(intake_db) == 0 or None, "the outbox drained", 60)
        counts = published(kafka_broker.bootstrap, first)
        assert len(counts) == 300 and set(counts.values()) == {1}, Counter(counts.values())
        assert lease_holder(intake_db) == active  # renewed all along: no hand-over while it lived

        # The active relay dies (SIGKILL: no hand-back). The standby takes over once the lease runs out.
        standby = next(p for p in relays.values() if p.pid != active)
        os.kill(active, signal.SIGKILL)
        assert wait_gone(active, 10)
        killed_at = time.monotonic()
        second = write_cases(intake_db, 50)
        eventually(lambda: unsent(intake_db) == 0 or None, "the standby publishing", 60)
        took_over_s = time.monotonic() - killed_at
        assert lease_holder(intake_db) == standby.pid and standby.poll() is None
        counts = published(kafka_broker.bootstrap, second)
        assert len(counts) == 50 and set(counts.values()) == {1}, Counter(counts.values())
        assert took_over_s < LEASE_S + 10, f"the standby took {took_over_s:.1f} s"
        print(f"standby published {took_over_s:.1f} s after the active relay was killed (lease {LEASE_S:g} s)")
    finally:
        for process in relays.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in relays.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
