"""The front doors' security headers and CSRF check, as ASGI middleware around a tiny app (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from refnet_frontdoor.security import (
    CSRF_SESSION_KEY,
    CsrfProtect,
    SecurityHeaders,
    content_security_policy,
    csrf_valid,
    new_csrf_token,
)

TOKEN = "the-session-token"


def app(tmp_path: Any) -> Starlette:
    received: list[bytes] = []

    async def sign_in(request: Request) -> Response:
        request.session[CSRF_SESSION_KEY] = TOKEN
        return PlainTextResponse("signed in")

    async def change(request: Request) -> Response:
        received.append(await request.body())
        return JSONResponse({"changed": True})

    async def page(request: Request) -> Response:
        return PlainTextResponse("page")

    (tmp_path / "console.css").write_text("body {}")
    application = Starlette(routes=[
        Route("/", page), Route("/sign-in", sign_in), Route("/change", change, methods=["POST", "DELETE"]),
        Mount("/static", StaticFiles(directory=tmp_path))],
        middleware=[Middleware(SecurityHeaders, form_targets=["http://idp.example"]),
                    Middleware(SessionMiddleware, secret_key="test-secret"),
                    Middleware(CsrfProtect)])
    application.state.received = received
    return application


@pytest.fixture
def client(tmp_path: Any) -> TestClient:
    return TestClient(app(tmp_path), base_url="http://console.test")


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/", "/nothing-here", "/static/console.css"):
        reply = client.get(path)
        csp = reply.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "'unsafe-inline'" not in csp
        assert "form-action 'self' http://idp.example" in csp
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["referrer-policy"] == "no-referrer"
    assert client.get("/").headers["cache-control"] == "no-store"
    assert client.get("/nothing-here").headers["cache-control"] == "no-store"
    assert "no-store" not in client.get("/static/console.css").headers.get("cache-control", "")
    refused = client.post("/change")
    assert refused.status_code == 403 and "frame-ancestors 'none'" in refused.headers["content-security-policy"]


def test_a_post_without_the_sessions_token_is_refused_and_changes_nothing(client: TestClient) -> None:
    client.get("/sign-in")
    received = client.app.state.received  # type: ignore[attr-defined]
    assert client.post("/change").status_code == 403
    assert client.post("/change", data={"csrf_token": "guessed"}).status_code == 403
    assert client.post("/change", headers={"X-CSRF-Token": "guessed"}).status_code == 403
    assert client.delete("/change").status_code == 403
    assert received == []
    ok = client.post("/change", data={"csrf_token": TOKEN, "letter": "7"})
    assert ok.status_code == 200 and ok.json() == {"changed": True}
    assert received == [f"csrf_token={TOKEN}&letter=7".encode()]  # the handler reads the body unchanged
    assert client.post("/change", headers={"X-CSRF-Token": TOKEN}, json={"x": 1}).status_code == 200


def test_without_a_session_no_token_is_valid(client: TestClient) -> None:
    assert client.post("/change", data={"csrf_token": ""}).status_code == 403
    assert client.post("/change", data={"csrf_token": TOKEN}).status_code == 403


def test_another_sites_form_is_refused_even_with_a_token_and_null_origin_needs_the_token(client: TestClient) -> None:
    client.get("/sign-in")
    assert client.post("/change", data={"csrf_token": TOKEN},
                       headers={"Origin": "http://evil.example"}).status_code == 403
    # A browser sends Origin: null for a form under Referrer-Policy: no-referrer: the token decides.
    assert client.post("/change", data={"csrf_token": TOKEN}, headers={"Origin": "null"}).status_code == 200
    assert client.post("/change", data={"csrf_token": "x"}, headers={"Origin": "null"}).status_code == 403
    assert client.post("/change", data={"csrf_token": TOKEN},
                       headers={"Origin": "http://console.test"}).status_code == 200


def test_a_bearer_request_is_not_cookie_authenticated_and_needs_no_token(client: TestClient) -> None:
    # The sign-in gate (in front of this middleware in the console) has verified the bearer token.
    assert client.post("/change", headers={"Authorization": "Bearer a.b.c"}).status_code == 200


def test_an_oversized_form_is_refused(client: TestClient) -> None:
    client.get("/sign-in")
    reply = client.post("/change", data={"csrf_token": TOKEN, "filler": "x" * 70_000})
    assert reply.status_code == 413


def test_tokens_are_random_and_compared_whole() -> None:
    one, two = new_csrf_token(), new_csrf_token()
    assert one != two and len(one) >= 40
    assert csrf_valid(one, one) and not csrf_valid(one, two) and not csrf_valid(one, one[:-1])
    assert not csrf_valid(None, "") and not csrf_valid("", "") and not csrf_valid(None, one)


def test_the_policy_allows_only_the_consoles_own_files() -> None:
    policy = dict(part.strip().split(" ", 1) for part in content_security_policy().split(";"))
    assert policy["default-src"] == policy["script-src"] == policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["form-action"] == "'self'"
