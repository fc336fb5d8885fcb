"""Server-side sessions: the cookie carries only a signed id; the table holds sealed data by the id's hash."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from refnet_frontdoor.sessions import InMemorySessionStore, ServerSessions, SessionStore, seal, store_key, unseal
from refnet_platform.engine import make_engine
from refnet_platform.migrations import migrate
from web.adapters.sessions import SqlSessionStore
from web.config import MIGRATIONS

SECRET = "unit-test-secret"


def sql_store(tmp_path: Path) -> SqlSessionStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'web.db'}")
    migrate(engine, MIGRATIONS)
    return SqlSessionStore(engine)


def test_the_table_keeps_sealed_rows_by_hash_and_forgets_expired_ones(tmp_path: Path) -> None:
    store = sql_store(tmp_path)
    sid = "a-session-id"
    data = {"person": {"username": "qn-operator"}, "tokens": {"access_token": "secret-token"}}
    blob = seal(sid, data)
    assert b"secret-token" not in blob and b"qn-operator" not in blob
    store.save(store_key(sid), blob, "qn-operator", expires_at=200.0)
    row = store.load(store_key(sid), now=100.0)
    assert row is not None and row[1] == "qn-operator" and unseal(sid, row[0]) == data
    assert unseal("another-id", row[0]) is None  # the id is the key: the table alone opens nothing
    store.save(store_key(sid), seal(sid, {"x": 1}), "qn-operator", expires_at=300.0)  # an update
    assert store.count() == 1
    assert store.load(store_key(sid), now=300.0) is None
    store.save(store_key("other"), seal("other", {}), "", expires_at=50.0)
    assert store.purge(now=250.0) == 1 and store.count() == 1
    store.delete(store_key(sid))
    assert store.count() == 0


def app(store: SessionStore) -> Starlette:
    async def put(request: Request) -> Response:
        request.session.update(dict(request.query_params))
        return JSONResponse(dict(request.session))

    async def get(request: Request) -> Response:
        return JSONResponse(dict(request.session))

    async def sign_in(request: Request) -> Response:
        request.session.clear()
        request.session["person"] = {"username": "qn-operator"}
        return JSONResponse({})

    async def sign_out(request: Request) -> Response:
        request.session.clear()
        return JSONResponse({})

    routes = [Route("/put", put), Route("/get", get), Route("/in", sign_in), Route("/out", sign_out)]
    return Starlette(routes=routes)


def client(store: SessionStore, https: bool = False) -> TestClient:
    wrapped = ServerSessions(app(store), store, SECRET, "sid", max_age_s=3600, https_only=https)
    return TestClient(wrapped, base_url="https://testserver" if https else "http://testserver")  # type: ignore[arg-type]


def test_the_cookie_carries_only_a_signed_id(tmp_path: Path) -> None:
    store = sql_store(tmp_path)
    browser = client(store)
    reply = browser.get("/put?note=hello")
    cookie = reply.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie and "Secure" not in cookie
    assert "hello" not in cookie
    assert browser.get("/get").json() == {"note": "hello"}
    assert "set-cookie" not in browser.get("/get").headers  # unchanged: nothing written, no new cookie
    # A forged or altered id is a fresh, empty session.
    value = browser.cookies["sid"]
    browser.cookies.clear()
    browser.cookies.set("sid", value[:-2] + "xx")
    assert browser.get("/get").json() == {}
    assert "Secure" in client(InMemorySessionStore(), https=True).get("/put?a=1").headers["set-cookie"]


def test_sign_in_and_out_give_a_new_id(tmp_path: Path) -> None:
    store = sql_store(tmp_path)
    browser = client(store)
    browser.get("/put?state=before-sign-in")
    planted = browser.cookies["sid"]
    browser.get("/in")
    assert browser.cookies["sid"] != planted
    assert browser.get("/get").json() == {"person": {"username": "qn-operator"}}
    assert store.count() == 1  # the pre-sign-in row is gone
    browser.get("/out")
    assert browser.get("/get").json() == {} and store.count() == 0
