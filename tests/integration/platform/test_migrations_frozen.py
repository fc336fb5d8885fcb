"""Every service's migrations, applied from empty, build exactly today's tables.

The migrations are frozen (each declares the tables as they were at its revision) and today's tables live in
each service's adapters: this test is what keeps the two in step. For each service it applies the migrations
to one empty database and creates today's MetaData (with the platform's outbox and inbox where the service
has them) in another of the same kind, then compares what SQLAlchemy's inspector reads back from both:
tables, columns (name, type, nullability), primary keys, indexes, unique, foreign-key and check constraints.
"""

from __future__ import annotations

import importlib
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, MetaData, inspect, text

from refnet_platform.engine import make_engine
from refnet_platform.migrations import migrate
from refnet_platform.tables import platform_metadata


@dataclass(frozen=True)
class Service:
    name: str
    tables: tuple[str, ...]  # "module:attribute" of each MetaData of today's tables
    platform_tables: bool  # the outbox and inbox beside its own

    def metadata(self) -> list[MetaData]:
        found = []
        for ref in self.tables:
            module, attribute = ref.split(":")
            found.append(getattr(importlib.import_module(module), attribute))
        return found + ([platform_metadata] if self.platform_tables else [])

    def migrations(self) -> Path:
        return Path(importlib.import_module(f"{self.name}.config").MIGRATIONS)


SERVICES = [
    Service("intake", ("intake.adapters.tables:metadata", "intake.adapters.tables:metadata_0002",
                       "intake.adapters.tables:metadata_0004", "refnet_platform.requests:request_metadata",
                       "intake.adapters.tables:metadata_erasure", "intake.adapters.tables:metadata_casework"),
            platform_tables=True),
    Service("referral", ("referral.adapters.tables:metadata", "refnet_platform.requests:request_metadata"),
            platform_tables=True),
    Service("shelter", ("shelter.adapters.tables:metadata",), platform_tables=True),
    Service("notifications", ("notifications.adapters.tables:metadata",
                              "notifications.adapters.tables:delivery_metadata",
                              "notifications.adapters.tables:inbound_metadata"), platform_tables=True),
    Service("ops", ("ops.adapters.tables:metadata",), platform_tables=True),
    Service("web", ("web.adapters.sessions:metadata",), platform_tables=False),
]


@contextmanager
def _engine(database_url: str, schema: str) -> Iterator[Engine]:
    """The service's database as it runs: its own schema on PostgreSQL, its own file on SQLite."""
    if database_url.startswith("sqlite"):
        engine = make_engine(f"{database_url.rsplit('/', 1)[0]}/{schema}.db")
    else:
        admin = make_engine(database_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        admin.dispose()
        engine = make_engine(database_url, schema)
    try:
        yield engine
    finally:
        engine.dispose()


def _normalised(sql: str | None) -> str:
    return re.sub(r"\s+", " ", (sql or "").replace("(", " ( ").replace(")", " ) ")).strip().lower()


def describe(engine: Engine) -> dict[str, dict[str, Any]]:
    """What the inspector reads of every table but alembic's own, in a form two databases can be compared by."""
    inspector = inspect(engine)
    dialect = engine.dialect
    tables: dict[str, dict[str, Any]] = {}
    for table in inspector.get_table_names():
        if table == "alembic_version":
            continue
        columns = {c["name"]: (c["type"].compile(dialect=dialect), c["nullable"])
                   for c in inspector.get_columns(table)}
        pk = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
        # A PostgreSQL unique constraint is also reported as an index that duplicates it: counted once, as a constraint.
        indexes = {i["name"]: (tuple(i["column_names"]), bool(i["unique"]))
                   for i in inspector.get_indexes(table) if not i.get("duplicates_constraint")}
        # SQLite reports an unnamed unique constraint with no name: it is known by its columns there.
        uniques = {u["name"] or f"unnamed {tuple(u['column_names'])}": tuple(u["column_names"])
                   for u in inspector.get_unique_constraints(table)}
        foreign_keys = sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                              for f in inspector.get_foreign_keys(table))
        checks = {c["name"]: _normalised(c["sqltext"]) for c in inspector.get_check_constraints(table)}
        tables[table] = {"columns": columns, "primary key": pk, "indexes": indexes, "unique constraints": uniques,
                         "foreign keys": foreign_keys, "check constraints": checks}
    return tables


def differences(migrated: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]) -> list[str]:
    """Each way the migrated database differs from today's tables, one line each."""
    found = [f"table {t}: made by the migrations, not in today's tables" for t in sorted(migrated.keys() - expected)]
    found += [f"table {t}: in today's tables, not made by the migrations" for t in sorted(expected.keys() - migrated)]
    for table in sorted(migrated.keys() & expected.keys()):
        for aspect, want in expected[table].items():
            got = migrated[table][aspect]
            if got == want:
                continue
            if isinstance(want, dict):
                for name in sorted(got.keys() | want.keys(), key=str):
                    if got.get(name) != want.get(name):
                        found.append(f"table {table}, {aspect} {name}: migrations give {got.get(name, 'nothing')},"
                                     f" today's tables {want.get(name, 'nothing')}")
            else:
                found.append(f"table {table}, {aspect}: migrations give {got}, today's tables {want}")
    return found


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_migrations_from_empty_build_todays_tables(service: Service, database_url: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    with _engine(database_url, f"migrated_{suffix}") as migrated, _engine(database_url, f"expected_{suffix}") as today:
        migrate(migrated, service.migrations(), f"migrated_{suffix}")
        with today.begin() as conn:
            for metadata in service.metadata():
                metadata.create_all(conn)
        found = differences(describe(migrated), describe(today))
    assert not found, f"{service.name}'s migrations do not build today's tables:\n" + "\n".join(found)


def test_a_difference_is_named() -> None:
    table: dict[str, Any] = {"columns": {"a": ("VARCHAR(10)", False)}, "primary key": ("a",), "indexes": {}}
    migrated = {"t": {**table, "columns": {"a": ("VARCHAR(10)", True)}, "indexes": {"ix_t_a": (("a",), False)}},
                "u": {"columns": {}, "primary key": (), "indexes": {}}}
    assert differences(migrated, {"t": table}) == [
        "table u: made by the migrations, not in today's tables",
        "table t, columns a: migrations give ('VARCHAR(10)', True), today's tables ('VARCHAR(10)', False)",
        "table t, indexes ix_t_a: migrations give (('a',), False), today's tables nothing",
    ]
