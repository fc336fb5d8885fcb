"""Server-side sessions: the cookie carries only a signed, random session id; everything else stays on the server.

`ServerSessions` is ASGI middleware that gives every request `request.session` (a dict, as Starlette's
SessionMiddleware does, so Authlib and refnet_frontdoor.signin work unchanged) loaded from a `SessionStore`
and saved back when it changed. The cookie: `<id>.<signature>` (itsdangerous, the app's secret), HttpOnly,
SameSite=Lax, Path=/, Secure when the app is reached over https.

- The store never sees the session id: rows are keyed by SHA-256 of it, and each session's data (the person,
  their tokens, the CSRF token, unsent drafts) is encrypted (AES-GCM) with a key derived from the id. A copy of
  the database without the browsers' cookies opens nothing.
- Clearing the session (sign-in, sign-out) gives it a new id: a session id planted before sign-in is worthless.
- Rows expire: a signed-in session `max_age_s` after it was last written (the sign-in also ends it
  `max_age_s` after sign-in), an anonymous one (the sign-in's state) after `anonymous_max_age_s`. Expired rows
  are purged whenever a new session is made.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any, Protocol

import anyio.to_thread
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from itsdangerous import BadSignature, Signer
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from refnet_frontdoor.signin import PERSON_KEY


class SessionStore(Protocol):
    """Where sessions live: `key` is SHA-256 (hex) of the session id; `data` is already encrypted."""

    def load(self, key: str, now: float) -> tuple[bytes, str] | None:
        """(data, username) of an unexpired session, or None."""

    def save(self, key: str, data: bytes, username: str, expires_at: float) -> None: ...

    def delete(self, key: str) -> None: ...

    def purge(self, now: float) -> int:
        """Deletes expired sessions; how many."""


class InMemorySessionStore:
    """For tests and a single development process: everything is lost on restart."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[bytes, str, float]] = {}
        self._lock = threading.Lock()

    def load(self, key: str, now: float) -> tuple[bytes, str] | None:
        with self._lock:
            row = self.rows.get(key)
        if row is None or row[2] <= now:
            return None
        return row[0], row[1]

    def save(self, key: str, data: bytes, username: str, expires_at: float) -> None:
        with self._lock:
            self.rows[key] = (data, username, expires_at)

    def delete(self, key: str) -> None:
        with self._lock:
            self.rows.pop(key, None)

    def purge(self, now: float) -> int:
        with self._lock:
            gone = [k for k, row in self.rows.items() if row[2] <= now]
            for k in gone:
                del self.rows[k]
        return len(gone)


class Session(dict[str, Any]):
    """request.session: a dict that remembers being cleared (a new id is then issued)."""

    cleared = False

    def clear(self) -> None:
        self.cleared = True
        super().clear()


def store_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _cipher(session_id: str) -> AESGCM:
    return AESGCM(hashlib.sha256(b"refnet-session-data\x00" + session_id.encode()).digest())


def seal(session_id: str, data: dict[str, Any]) -> bytes:
    nonce = os.urandom(12)
    plain = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return nonce + _cipher(session_id).encrypt(nonce, plain, store_key(session_id).encode())


def unseal(session_id: str, blob: bytes) -> dict[str, Any] | None:
    try:
        plain = _cipher(session_id).decrypt(blob[:12], blob[12:], store_key(session_id).encode())
        value = json.loads(plain)
    except (InvalidTag, ValueError):
        return None
    return value if isinstance(value, dict) else None


class ServerSessions:
    def __init__(self, app: ASGIApp, store: SessionStore, secret_key: str, cookie_name: str,
                 max_age_s: float = 8 * 3600, anonymous_max_age_s: float = 15 * 60, https_only: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.store = store
        self.signer = Signer(secret_key, salt="refnet-session-id")
        self.cookie_name = cookie_name
        self.max_age_s = max_age_s
        self.anonymous_max_age_s = anonymous_max_age_s
        self.https_only = https_only
        self.clock = clock

    def session_id(self, cookie_header: str) -> str | None:
        cookies: SimpleCookie = SimpleCookie()
        try:
            cookies.load(cookie_header)
        except Exception:
            return None
        morsel = cookies.get(self.cookie_name)
        if morsel is None:
            return None
        try:
            return self.signer.unsign(morsel.value).decode()
        except BadSignature:
            return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        cookie_header = "; ".join(v.decode("latin-1") for k, v in scope["headers"] if k == b"cookie")
        session_id = self.session_id(cookie_header) if cookie_header else None
        loaded: dict[str, Any] | None = None
        if session_id is not None:
            row = await anyio.to_thread.run_sync(self.store.load, store_key(session_id), self.clock())
            loaded = unseal(session_id, row[0]) if row else None
            if loaded is None:
                session_id = None  # unknown, expired or tampered with: a fresh session
        session = Session(loaded or {})
        scope["session"] = session
        before = _dump(loaded) if loaded is not None else None

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = await self._commit(session_id, session, before)
                if cookie is not None:
                    MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_session)

    async def _commit(self, session_id: str | None, session: Session, before: str | None) -> str | None:
        """Saves a changed session; the Set-Cookie header to send, if the id changed."""
        if not session:
            if session_id is not None:
                await anyio.to_thread.run_sync(self.store.delete, store_key(session_id))
                return self._cookie("", 0)
            return None
        if session_id is not None and not session.cleared and _dump(session) == before:
            return None
        new_id = session_id
        if session_id is None or session.cleared:
            if session_id is not None:
                await anyio.to_thread.run_sync(self.store.delete, store_key(session_id))
            new_id = secrets.token_urlsafe(32)
            await anyio.to_thread.run_sync(self.store.purge, self.clock())
        assert new_id is not None
        person = session.get(PERSON_KEY)
        username = str(person.get("username", "")) if isinstance(person, dict) else ""
        lifetime = self.max_age_s if username else self.anonymous_max_age_s
        await anyio.to_thread.run_sync(self.store.save, store_key(new_id), seal(new_id, dict(session)), username,
                                       self.clock() + lifetime)
        return self._cookie(self.signer.sign(new_id).decode(), int(self.max_age_s)) if new_id != session_id else None

    def _cookie(self, value: str, max_age: int) -> str:
        cookie = f"{self.cookie_name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
        return cookie + "; Secure" if self.https_only else cookie


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, default=str)


__all__ = ["InMemorySessionStore", "ServerSessions", "Session", "SessionStore", "seal", "store_key", "unseal"]
