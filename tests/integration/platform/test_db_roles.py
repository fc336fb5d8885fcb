"""PostgreSQL roles on a real PostgreSQL: the migration role owns every schema; each service's role may read
and write its own tables and nothing else, and only append to its audit log."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url

from refnet_dev.postgres import PostgresCluster
from refnet_platform.db_roles import MIGRATION_ROLE, SERVICES, create_roles, service_role
from refnet_platform.runtime import open_database

pytestmark = pytest.mark.postgres


def _settings(service: str, **values: Any) -> Any:
    config = importlib.import_module(f"{service}.config")
    return config.Settings(**values), config.MIGRATIONS


def _as(url: str, role: str) -> str:
    return make_url(url).set(username=role).render_as_string(hide_password=False)


def _dsn(url: str, role: str) -> str:
    return make_url(url).set(drivername="postgresql", username=role).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def database(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A database migrated as on Kubernetes: roles made by an administrator, each schema by the migration role,
    then each service opened as its own role (which migrates nothing: it is at head)."""
    name = f"roles_{uuid.uuid4().hex[:12]}"
    admin = postgres_cluster.url(name)
    postgres_cluster.create_database(name)
    create_roles(_dsn(admin, "postgres"), name, passwords={})
    owner = _as(admin, MIGRATION_ROLE)
    for service in SERVICES:
        settings, migrations = _settings(service, DATABASE_URL=_as(admin, service_role(service)),
                                         MIGRATION_DATABASE_URL=owner)
        open_database(settings, migrations).dispose()
        # A second process of the service, without the owner's URL (a worker, a relay): starts, migrates nothing.
        settings, migrations = _settings(service, DATABASE_URL=_as(admin, service_role(service)))
        open_database(settings, migrations).dispose()
    yield admin


def _refused(url: str, role: str, statement: str) -> str:
    with psycopg.connect(_dsn(url, role), autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
        conn.execute(statement)
    return str(refused.value)


def _run(url: str, role: str, statement: str) -> Any:
    with psycopg.connect(_dsn(url, role), autocommit=True) as conn:
        return conn.execute(statement).fetchall() if statement.lstrip().upper().startswith("SELECT") \
            else conn.execute(statement).rowcount


AUDIT_ROW = ("INSERT INTO intake.audit_log (at, actor_id, actor_role, action, case_id, need_id, referral_id, "
             "recipient_id, purpose, detail) VALUES (now(), 'sv-1', 'supervisor', 'read_contact', 'case-1', '', "
             "'', '', 'audited', '')")


def test_the_service_role_appends_to_the_audit_log_and_can_do_nothing_else_to_it(database: str) -> None:
    intake = service_role("intake")
    assert _run(database, intake, AUDIT_ROW) == 1
    assert _run(database, intake, "SELECT count(*) FROM intake.audit_log") == [(1,)]
    for statement in ("DELETE FROM intake.audit_log",
                      "UPDATE intake.audit_log SET detail = 'rewritten'",
                      "TRUNCATE intake.audit_log"):
        assert "permission denied for table audit_log" in _refused(database, intake, statement)
    for statement in ("ALTER TABLE intake.audit_log DISABLE TRIGGER ALL",
                      "ALTER TABLE intake.audit_log DISABLE TRIGGER audit_log_append_only",
                      "ALTER TABLE intake.audit_log ADD COLUMN note text",
                      "DROP TRIGGER audit_log_append_only ON intake.audit_log",
                      "DROP TABLE intake.audit_log"):
        assert "must be owner of" in _refused(database, intake, statement)
    assert _run(database, intake, "SELECT count(*) FROM intake.audit_log") == [(1,)]


def test_the_ops_replay_audit_is_append_only_too(database: str) -> None:
    ops = service_role("ops")
    assert "permission denied for table replays" in _refused(database, ops, "DELETE FROM ops.replays")
    assert "permission denied for table replays" in _refused(database, ops, "UPDATE ops.replays SET actor = 'x'")


def test_a_service_role_may_not_touch_another_services_schema(database: str) -> None:
    for role, statement in (
        (service_role("notifications"), "SELECT * FROM intake.consents"),
        (service_role("notifications"), "UPDATE intake.consents SET withdrawn_by = 'x'"),
        (service_role("web"), "UPDATE referral.referrals SET provider_id = 'elsewhere'"),
        (service_role("ops"), "SELECT * FROM intake.case_keys"),
        (service_role("referral"), "INSERT INTO shelter.outbox (event_id) VALUES ('x')"),
    ):
        assert "permission denied for schema" in _refused(database, role, statement)


def test_a_service_role_may_not_change_its_own_schema(database: str) -> None:
    intake = service_role("intake")
    assert "permission denied for schema intake" in _refused(database, intake, "CREATE TABLE intake.extra (x int)")
    assert "must be owner of" in _refused(database, intake, "ALTER TABLE intake.consents ADD COLUMN x int")
    assert "permission denied for table alembic_version" in _refused(
        database, intake, "UPDATE intake.alembic_version SET version_num = 'x'")
    assert "permission denied" in _refused(database, intake, "CREATE SCHEMA intake_copy")


def test_the_migration_role_owns_every_schema_and_the_service_roles_own_nothing(database: str) -> None:
    owners = dict(_run(database, "postgres",
                       "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = ANY(ARRAY"
                       f"{list(SERVICES)})"))
    assert owners == {s: MIGRATION_ROLE for s in SERVICES}
    owned = _run(database, "postgres",
                 "SELECT tableowner, count(*) FROM pg_tables WHERE schemaname = ANY(ARRAY"
                 f"{list(SERVICES)}) GROUP BY tableowner")
    assert [owner for owner, _ in owned] == [MIGRATION_ROLE]


def test_a_service_role_cannot_migrate_a_schema_behind_head(database: str) -> None:
    """A pod that starts before the migration Job finished: a clear refusal, not a half-applied migration."""
    with psycopg.connect(_dsn(database, MIGRATION_ROLE), autocommit=True) as conn:
        (head,) = conn.execute("SELECT version_num FROM shelter.alembic_version").fetchone() or ("",)
        conn.execute("UPDATE shelter.alembic_version SET version_num = '0001'")
    try:
        settings, migrations = _settings("shelter", DATABASE_URL=_as(database, service_role("shelter")))
        with pytest.raises(RuntimeError, match="run the migration Job"):
            open_database(settings, migrations)
    finally:
        with psycopg.connect(_dsn(database, MIGRATION_ROLE), autocommit=True) as conn:
            conn.execute("UPDATE shelter.alembic_version SET version_num = %s", (head,))
