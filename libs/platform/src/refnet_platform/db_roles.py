"""PostgreSQL roles: a migration role owns every service's schema; each service runs as its own role with DML on
its own schema only, and its audit tables insert-only.

A role that does not own a table cannot ALTER, DROP or TRUNCATE it, nor disable its triggers; with no USAGE on
another service's schema it cannot even name that schema's tables. So a compromised process can do no more
than its own service's code could, and the audit log only ever grows.

The roles themselves are made once per database, by CloudNativePG's managed roles (deploy/k8s) or by
`python -m refnet_platform.db_roles` (an administrator's connection); the grants are (re)applied by the
migration role after every migration (refnet_platform.migrations), so a table a migration adds is covered at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql
from sqlalchemy import Connection, text

__all__ = ["APPEND_ONLY", "MIGRATION_ROLE", "SERVICES", "create_roles", "grant_service_role", "service_role"]

MIGRATION_ROLE = "refnet"  # CloudNativePG's database owner: the migration Jobs connect as it
SERVICES = ("intake", "referral", "shelter", "notifications", "ops", "web")

# Tables a service may only read and append to, per schema: the audit trails (their triggers refuse UPDATE and
# DELETE as well, for SQLite and for a migration role that forgets; the privileges do it for the service role).
APPEND_ONLY: dict[str, tuple[str, ...]] = {
    "intake": ("audit_log",),
    "ops": ("replays",),
}


def service_role(service: str) -> str:
    """The role a service's api, worker and relay connect as: refnet_<service>."""
    return f"refnet_{service}"


def grant_service_role(conn: Connection, schema: str, role: str) -> None:
    """Gives `role` DML on every table of `schema` (insert and read only on its append-only tables), and nothing
    else: no CREATE in the schema, no TRUNCATE, no REFERENCES, no TRIGGER. Run by the schema's owner."""
    schema_id, role_id = _quote(conn, schema), _quote(conn, role)
    for statement in (
        f"REVOKE ALL ON SCHEMA {schema_id} FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA {schema_id} TO {role_id}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema_id} FROM {role_id}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema_id} TO {role_id}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema_id} TO {role_id}",
        # Alembic's bookkeeping: a running process only checks it is at head.
        f"REVOKE INSERT, UPDATE, DELETE ON {schema_id}.alembic_version FROM {role_id}",
    ):
        conn.execute(text(statement))
    for table in APPEND_ONLY.get(schema, ()):
        conn.execute(text(f"REVOKE UPDATE, DELETE ON {schema_id}.{_quote(conn, table)} FROM {role_id}"))


def role_exists(conn: Connection, role: str) -> bool:
    return conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is not None


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def create_roles(dsn: str, database: str, passwords: dict[str, str], migration_role: str = MIGRATION_ROLE,
                 services: Iterable[str] = SERVICES) -> list[str]:
    """As an administrator: the migration role (may create schemas in `database`) and a login role per service
    (may connect, nothing more until the migration grants it its schema). Idempotent; passwords are set
    (or reset) when given. Returns the roles made or updated."""
    done = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for role, can_create in [(migration_role, True), *((service_role(s), False) for s in services)]:
            ident = sql.Identifier(role)
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT")
                             .format(ident))
            if role in passwords:
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(passwords[role])))
            db = sql.Identifier(database)
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, ident))
            if can_create:
                conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(db, ident))
            done.append(role)
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(database)))
    return done


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m refnet_platform.db_roles`: makes the roles on a PostgreSQL that CloudNativePG does not manage."""
    parser = argparse.ArgumentParser(
        description="Create refnet's PostgreSQL roles (run once per database, as an administrator). "
                    "Passwords come from the environment: REFNET_DB_PASSWORD_<ROLE> (e.g. "
                    "REFNET_DB_PASSWORD_REFNET_INTAKE); a role without one keeps its password.")
    parser.add_argument("--admin-url", default=os.environ.get("REFNET_DB_ADMIN_URL"),
                        help="an administrator's connection (postgresql://...), or REFNET_DB_ADMIN_URL")
    parser.add_argument("--database", default="refnet", help="the database refnet's schemas live in")
    parser.add_argument("--migration-role", default=MIGRATION_ROLE)
    args = parser.parse_args(argv)
    if not args.admin_url:
        parser.error("--admin-url (or REFNET_DB_ADMIN_URL) is required")
    roles = [args.migration_role, *map(service_role, SERVICES)]
    passwords = {r: os.environ[f"REFNET_DB_PASSWORD_{r.upper()}"] for r in roles
                 if f"REFNET_DB_PASSWORD_{r.upper()}" in os.environ}
    for role in create_roles(args.admin_url, args.database, passwords, args.migration_role):
        print(f"role {role}: ready" + (" (password set)" if role in passwords else ""), file=sys.stdout)


if __name__ == "__main__":
    main()
