"""Never overbooked, proven on the databases themselves: threads and separate processes racing for the
last beds, while capacity changes under them, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.exc import IntegrityError

from refnet_platform.bus import MessageBus
from refnet_platform.caller import Caller, Role, machine
from refnet_platform.engine import make_engine
from refnet_platform.errors import PermissionDenied
from refnet_platform.migrations import migrate
from refnet_platform.runtime import open_database
from refnet_platform.vocabulary import TargetGroup
from shelter.adapters.tables import bed_pools, reservations
from shelter.bootstrap import bootstrap
from shelter.config import MIGRATIONS, Settings
from shelter.domain import commands
from shelter.domain.model import BedPool, ReservationStatus, Shelter

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
WOMEN = TargetGroup.WOMEN


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    # As in production: DATABASE_URL, with shelter's own schema on PostgreSQL.
    engine = open_database(Settings(DATABASE_URL=database_url), MIGRATIONS)
    try:
        yield engine
    finally:
        engine.dispose()


def shelter_bus(database_url: str, engine: Engine, capacity: int) -> MessageBus:
    bus = bootstrap(Settings(DATABASE_URL=database_url), engine)
    pool = BedPool("qn-spc", WOMEN, capacity, 0, 0, datetime.now(UTC))
    bus.handle(commands.LoadShelters([Shelter("qn-spc", "Shelter", "22", "06673", pools=(pool,))]))
    return bus


def reserve(referral_id: str) -> commands.ReserveBed:
    return commands.ReserveBed(referral_id, f"case-{referral_id}", "qn-spc", "22", WOMEN,
                               datetime.now(UTC) + timedelta(hours=1))


def counts(engine: Engine) -> tuple[int, int, int, Counter[str]]:
    with engine.connect() as conn:
        pool = conn.execute(select(bed_pools.c.capacity, bed_pools.c.reserved, bed_pools.c.occupied)).one()
        statuses = Counter(dict(conn.execute(
            select(reservations.c.status, func.count()).group_by(reservations.c.status)).all()))
    return pool.capacity, pool.reserved, pool.occupied, statuses


def test_threads_racing_for_the_last_beds_get_exactly_as_many_holds_as_beds(database_url: str, engine: Engine) -> None:
    bus = shelter_bus(database_url, engine, capacity=20)
    for i in range(17):  # all but the last three beds are taken
        bus.handle(reserve(f"early-{i}"))
    contenders = 40
    start = threading.Barrier(contenders)
    outcomes: dict[str, object] = {}

    def contend(i: int) -> None:
        start.wait()
        try:
            outcomes[f"last-{i}"] = bus.handle(reserve(f"last-{i}"))
        except Exception as exc:  # recorded, so the assertion below shows it
            outcomes[f"last-{i}"] = exc

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    statuses = Counter(getattr(o, "status", o) for o in outcomes.values())
    assert statuses == {ReservationStatus.HELD: 3, ReservationStatus.REJECTED: 37}
    assert {o.reason for o in outcomes.values() if o.status is ReservationStatus.REJECTED} == {"no_capacity"}
    assert counts(engine) == (20, 20, 0, Counter({"held": 20, "rejected": 37}))


# One process: the api's or the worker's handlers on their own engine, racing the others.
RACER = """
import json, random, sys
from datetime import UTC, datetime, timedelta
from refnet_platform.engine import make_engine
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import FailedPrecondition
from refnet_platform.vocabulary import TargetGroup
from shelter.bootstrap import bootstrap
from shelter.config import Settings
from shelter.domain import commands

url, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
settings = Settings(DATABASE_URL=url)
bus = bootstrap(settings, make_engine(*settings.database))
# A member of qn-spc's staff, signed in: her token names the shelter she acts for.
staff = Caller("qn-spc-staff", Role.SHELTER, organisation_id="qn-spc", person=True)
rng = random.Random(name)
tally = {"held": 0, "rejected": 0, "refused": 0, "too_late": 0}
for i in range(rounds):
    if name.startswith("capacity"):  # staff shrinking and growing the pool under the racers
        try:
            bus.handle(commands.UpdateAvailability(staff, "qn-spc", TargetGroup.WOMEN, rng.randint(0, 8)))
        except FailedPrecondition:
            tally["refused"] += 1
        continue
    referral = f"{name}-{i}"
    hold = datetime.now(UTC) + timedelta(seconds=rng.choice([-1, 3600]))
    r = bus.handle(commands.ReserveBed(referral, "c", "qn-spc", "22", TargetGroup.WOMEN, hold))
    tally[str(r.status)] += 1
    if r.status == "held":
        step = rng.random()
        if step < 0.3:
            bus.handle(commands.ReleaseBed(referral, "qn-spc", "cancelled"))
        elif step < 0.6:
            try:
                bus.handle(commands.ConfirmArrival(staff, referral))
            except FailedPrecondition:  # another process's timer expired the hold first (it was already due)
                tally["too_late"] += 1
                continue
            if rng.random() < 0.5:
                bus.handle(commands.CheckOut(staff, referral))
    if i % 5 == 0:
        bus.handle(commands.ExpireHolds())
print(json.dumps(tally))
"""


def test_processes_reserving_releasing_and_resizing_at_once_never_overbook(database_url: str, engine: Engine) -> None:
    shelter_bus(database_url, engine, capacity=4)
    names = ["worker-a", "worker-b", "api-a", "api-b", "capacity-1", "capacity-2"]
    racers = [subprocess.Popen([sys.executable, "-c", RACER, database_url, name, "60"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for name in names]
    seen_over = 0
    try:
        while any(r.poll() is None for r in racers):
            capacity, reserved, occupied, _ = counts(engine)
            seen_over += reserved + occupied > capacity
        results = [r.communicate(timeout=120) for r in racers]
    finally:
        for r in racers:
            if r.poll() is None:
                r.kill()
    for racer, (_, err) in zip(racers, results, strict=True):
        assert racer.returncode == 0, err[-3000:]
    tallies = [json.loads(out) for out, _ in results]
    assert sum(t["held"] for t in tallies) > 0 and sum(t["rejected"] for t in tallies) > 0
    assert seen_over == 0
    # The counts agree with the reservations that explain them.
    capacity, reserved, occupied, statuses = counts(engine)
    assert (reserved, occupied) == (statuses["held"], statuses["occupied"])
    assert reserved + occupied <= capacity


def test_the_database_itself_refuses_an_overbooking(database_url: str, engine: Engine) -> None:
    shelter_bus(database_url, engine, capacity=2)
    overbooked = r"ck_pool_never_overbooked|CHECK constraint failed"
    with pytest.raises(IntegrityError, match=overbooked), engine.begin() as conn:
        conn.execute(update(bed_pools).values(reserved=2, occupied=1))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(update(bed_pools).values(reserved=-1))
    assert counts(engine)[:3] == (2, 0, 0)


def test_one_shelters_credentials_cannot_shrink_another(database_url: str, engine: Engine) -> None:
    bus = shelter_bus(database_url, engine, capacity=3)
    with pytest.raises(PermissionDenied):
        bus.handle(commands.UpdateAvailability(machine("qn-campha-temp", Role.SHELTER), "qn-spc", WOMEN, 0))
    # Nor a person whose token names another shelter, whatever their user name.
    with pytest.raises(PermissionDenied):
        bus.handle(commands.UpdateAvailability(Caller("qn-spc", Role.SHELTER, organisation_id="qn-campha-temp",
                                                      person=True), "qn-spc", WOMEN, 0))
    assert counts(engine)[0] == 3
    bus.handle(commands.UpdateAvailability(machine("qn-spc", Role.SHELTER), "qn-spc", WOMEN, 2))
    assert counts(engine)[0] == 2


def test_a_0001_database_migrates_with_its_beds_and_holds(database_url: str) -> None:
    settings = Settings(DATABASE_URL=database_url)
    url, schema = settings.database
    engine = make_engine(url, schema)
    try:
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        now = datetime.now(UTC)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO shelters (shelter_id, name, province_code, commune_code, target_group, "
                              "capacity, reserved, occupied, confirmed_at, address) "
                              "VALUES ('qn-spc', 'S', '22', '06673', 'women_with_children', 6, 1, 2, :now, 'a')"),
                         {"now": now})
            conn.execute(text("INSERT INTO reservations VALUES ('r1', 'qn-spc', 'c1', '22', 'held', :until)"),
                         {"until": now + timedelta(hours=1)})
        migrate(engine, MIGRATIONS, schema)
        bus = bootstrap(settings, engine)
        found, _ = bus.handle(commands.GetShelter(machine("qn-spc", Role.SHELTER), "qn-spc"))
        [pool] = found.pools
        assert (pool.target_group, pool.capacity, pool.reserved, pool.occupied, found.address) == (
            TargetGroup.WOMEN_WITH_CHILDREN, 6, 1, 2, "a")
        # The migrated hold still releases its bed.
        bus.handle(commands.ReleaseBed("r1", "qn-spc", "cancelled"))
        assert counts(engine)[1:3] == (0, 2)
    finally:
        engine.dispose()
