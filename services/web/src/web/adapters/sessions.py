"""The web app's sessions table: session (by SHA-256 of its id) → sealed data (the person, their access and
refresh tokens and expiry, the CSRF token, the ID token, unsent drafts), user name, expiry. The data is
encrypted with a key derived from the session id, which only the person's cookie holds
(refnet_frontdoor.sessions): this table alone opens nothing."""

from __future__ import annotations

from sqlalchemy import Column, Engine, Float, LargeBinary, MetaData, String, Table, delete, select

from refnet_platform.engine import upsert_insert

metadata = MetaData()

sessions = Table(
    "sessions", metadata,
    Column("key", String(64), primary_key=True),  # SHA-256 (hex) of the session id
    Column("username", String(200), nullable=False, server_default=""),  # "" before sign-in
    Column("data", LargeBinary, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),  # epoch seconds
)


class SqlSessionStore:
    """refnet_frontdoor.sessions.SessionStore over the web's own database (SQLite, or its schema in PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, key: str, now: float) -> tuple[bytes, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(sessions.c.data, sessions.c.username)
                               .where(sessions.c.key == key, sessions.c.expires_at > now)).first()
        return (bytes(row.data), str(row.username)) if row else None

    def save(self, key: str, data: bytes, username: str, expires_at: float) -> None:
        values = {"key": key, "data": data, "username": username, "expires_at": expires_at}
        statement = upsert_insert(self.engine, sessions).values(**values).on_conflict_do_update(
            index_elements=[sessions.c.key], set_={"data": data, "username": username, "expires_at": expires_at})
        with self.engine.begin() as conn:
            conn.execute(statement)

    def delete(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(sessions).where(sessions.c.key == key))

    def purge(self, now: float) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(delete(sessions).where(sessions.c.expires_at <= now)).rowcount or 0)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(sessions.c.key)).all())
