"""The web app in process behind its sign-in: each role's home, the not-for-your-role page, the language
switch, CSRF and headers, the token kept server-side and refreshed, and a form that outlived its session kept
for after sign-in. The identity provider is stood in for (the real Keycloak flow: tests/e2e/test_web_signin.py)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from itsdangerous import Signer
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from refnet_frontdoor.sessions import seal, store_key
from refnet_platform.caller import Caller, Role
from refnet_platform.engine import make_engine
from refnet_platform.errors import Unauthenticated
from refnet_platform.migrations import migrate
from web.adapters.apis import Apis
from web.adapters.sessions import SqlSessionStore
from web.bootstrap import SESSION_COOKIE, bootstrap, sign_in, templates
from web.config import MIGRATIONS, Settings
from web.entrypoints import app as web_app
from web.entrypoints.pages import common

SECRET = "unit-test-session-secret"
PEOPLE = {
    "qn-operator": Caller("qn-operator", Role.OPERATOR, provinces=frozenset({"22"}), person=True),
    "qn-supervisor": Caller("qn-supervisor", Role.SUPERVISOR, provinces=frozenset({"22"}), person=True),
    "qn-police-baichay": Caller("qn-police-baichay", Role.AGENCY, organisation_id="police-baichay", person=True),
    "qn-spc-staff": Caller("qn-spc-staff", Role.SHELTER, organisation_id="qn-spc", person=True),
    "ops-oncall": Caller("ops-oncall", Role.OPS, provinces=frozenset({"*"}), person=True),
}


class People:
    """Stands in for TokenVerifier: a token is "<username>" or "<username>#<n>"."""

    def person(self, token: str) -> Caller:
        name = token.split("#")[0]
        if name not in PEOPLE:
            raise Unauthenticated("the access token is not valid")
        return PEOPLE[name]


class Provider:
    """Stands in for Authlib's client: refreshes tokens (or refuses to), has no end_session endpoint."""

    def __init__(self) -> None:
        self.refreshed: list[str] = []
        self.refuse = False

    async def fetch_access_token(self, **kwargs: Any) -> dict[str, Any]:
        if self.refuse:
            raise RuntimeError("invalid_grant: Session not active")
        self.refreshed.append(kwargs["refresh_token"])
        name = kwargs["refresh_token"].split("#")[0]
        return {"access_token": f"{name}#{len(self.refreshed)}", "refresh_token": f"{name}#r",
                "expires_in": 300, "refresh_expires_in": 1800}

    async def load_server_metadata(self) -> dict[str, Any]:
        return {}

    person = "qn-operator"

    async def authorize_redirect(self, request: Request, callback: str) -> Response:
        return RedirectResponse(f"http://idp.example/auth?redirect_uri={callback}", status_code=302)

    async def authorize_access_token(self, request: Request) -> dict[str, Any]:
        return {"access_token": self.person, "refresh_token": f"{self.person}#r", "expires_in": 300,
                "id_token": "an.id.token"}


@pytest.fixture
def web(tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'web.db'}", oidc_issuer="http://127.0.0.1:9/realms/refnet",
                        oidc_client_secret="dev-secret", session_secret=SECRET, allow_plaintext=True)
    engine = make_engine(settings.database[0])
    migrate(engine, MIGRATIONS)
    store = SqlSessionStore(engine)
    signin = sign_in(settings, templates(), verifier=People())  # type: ignore[arg-type]
    provider = Provider()
    signin.client = provider
    ctx = bootstrap(settings, signin=signin, apis=Apis(settings.api_addresses(), None))
    seen: dict[str, Any] = {}

    # A form page the way an area builds one, to prove the helpers.
    async def form(request: Request) -> Response:
        if request.method == "POST":
            values = await common.form_values(request)
            if common.session_expired(request):
                return common.keep_for_after_sign_in(request, values)
            seen["token"] = common.token(request)
            return common.render_form(ctx, request, "area.html", values, area="cases")
        seen["draft"] = common.draft(request)
        seen["token"] = common.token(request)
        return common.render(ctx, request, "area.html", area="cases")

    original = web_app.operator.routes
    web_app.operator.routes = lambda c: [*original(c), Route("/cases/form", form, methods=["GET", "POST"])]  # type: ignore[assignment]
    try:
        application = web_app.create_app(ctx, store, engine)
    finally:
        web_app.operator.routes = original  # type: ignore[assignment]
    client = TestClient(application, base_url="http://127.0.0.1:8580", follow_redirects=False)
    try:
        yield {"client": client, "store": store, "provider": provider, "seen": seen, "signin": signin}
    finally:
        engine.dispose()


def signed_in(web: dict[str, Any], username: str, expires_in: float = 300, since: float | None = None,
              csrf: str = "csrf-of-the-session") -> str:
    """A session as the callback leaves it, straight into the sessions table; the browser gets its cookie."""
    sid = secrets.token_urlsafe(32)
    person = PEOPLE[username]
    now = time.time()
    data = {"person": {"username": username, "role": str(person.role), "provinces": sorted(person.provinces),
                       "organisation": person.organisation_id, "since": since or now},
            "csrf": csrf, "id_token": "an.id.token",
            "tokens": {"access_token": username, "refresh_token": f"{username}#r", "expires_at": now + expires_in,
                       "refresh_expires_at": now + 1800}}
    web["store"].save(store_key(sid), seal(sid, data), username, now + 3600)
    web["client"].cookies.set(SESSION_COOKIE, Signer(SECRET, salt="refnet-session-id").sign(sid).decode(),
                              domain="127.0.0.1", path="/")
    return sid


def test_each_role_lands_in_its_area(web: dict[str, Any]) -> None:
    client = web["client"]
    for username, area in (("qn-operator", "/cases"), ("qn-supervisor", "/cases"),
                           ("qn-police-baichay", "/referrals"), ("qn-spc-staff", "/shelter")):
        signed_in(web, username)
        home = client.get("/")
        assert home.status_code == 303 and home.headers["location"] == area, username
        page = client.get(area)
        assert page.status_code == 200 and f'data-username="{username}"' in page.text
        assert '<html lang="vi">' in page.text and 'name="viewport"' in page.text and 'href="#main"' in page.text
        others = {"/cases", "/referrals", "/shelter"} - {area}
        for other in others:  # another role's area: not for you
            refused = client.get(other)
            assert refused.status_code == 403 and 'id="refused"' in refused.text


def test_the_operations_team_is_told_the_app_is_not_for_them(web: dict[str, Any]) -> None:
    signed_in(web, "ops-oncall")
    page = web["client"].get("/")
    assert page.status_code == 403 and 'id="refused"' in page.text
    assert "Không dành cho vai trò của bạn" in page.text and "Your role" in page.text  # both languages
    assert 'id="signout-button"' in page.text


def test_not_signed_in_goes_to_sign_in_and_probes_stay_open(web: dict[str, Any]) -> None:
    client = web["client"]
    reply = client.get("/cases?x=1")
    assert reply.status_code == 303 and reply.headers["location"] == "/auth/login?next=%2Fcases%3Fx%3D1"
    assert client.post("/cases/form", data={"a": "b"}).status_code == 401
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
    assert client.get("/static/web.css").status_code == 200
    assert client.get("/cases", headers={"Authorization": "Bearer qn-operator"}).status_code == 401


def test_the_language_switch_sets_a_cookie_and_comes_back(web: dict[str, Any]) -> None:
    client = web["client"]
    signed_in(web, "qn-operator")
    switch = client.get("/lang?to=en&next=/cases")
    assert switch.status_code == 303 and switch.headers["location"] == "/cases"
    assert "lang=en" in switch.headers["set-cookie"]
    page = client.get("/cases")
    assert '<html lang="en">' in page.text and "Workspace" in page.text and "Tiếng Việt" in page.text
    assert client.get("/lang?to=vi&next=https://evil.example").headers["location"] == "/"
    assert "Bàn làm việc" in client.get("/cases").text


def test_headers_and_csrf(web: dict[str, Any]) -> None:
    client = web["client"]
    signed_in(web, "qn-operator", csrf="t")
    page = client.get("/cases")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert 'name="csrf_token" value="t"' in page.text
    assert client.post("/cases/form", data={"note": "x"}).status_code == 403
    assert client.post("/cases/form", data={"note": "x", "csrf_token": "t"}).status_code == 200
    assert "Set-Cookie" not in str(page.headers) or "qn-operator" not in page.headers.get("set-cookie", "")


def test_the_token_stays_on_the_server_and_is_refreshed_near_expiry(web: dict[str, Any]) -> None:
    client, seen, provider = web["client"], web["seen"], web["provider"]
    signed_in(web, "qn-operator", expires_in=300)
    client.get("/cases/form")
    assert seen["token"] == "qn-operator" and provider.refreshed == []
    signed_in(web, "qn-operator", expires_in=20)  # within the refresh margin
    client.get("/cases/form")
    assert seen["token"] == "qn-operator#1" and provider.refreshed == ["qn-operator#r"]
    client.get("/cases/form")  # the renewed token was saved: no second refresh
    assert seen["token"] == "qn-operator#1" and len(provider.refreshed) == 1
    assert all("qn-operator" not in c for c in client.cookies.values())


def test_a_form_sent_after_the_session_ended_is_kept_for_after_sign_in(web: dict[str, Any]) -> None:
    client, seen, provider = web["client"], web["seen"], web["provider"]
    provider.refuse = True
    signed_in(web, "qn-operator", expires_in=-10, csrf="t")
    page = client.get("/cases/form")  # a page: straight to sign in, and back
    assert page.status_code == 303 and page.headers["location"] == "/auth/login?next=%2Fcases%2Fform"
    signed_in(web, "qn-operator", expires_in=-10, csrf="t")
    sent = client.post("/cases/form", data={"note": "chị ấy gọi lúc 21:00", "csrf_token": "t"})
    assert sent.status_code == 303 and sent.headers["location"] == "/auth/login?next=%2Fcases%2Fform"
    # The same person signs in again: the page gets what was typed back, once.
    provider.person = "qn-operator"
    assert client.get(sent.headers["location"]).headers["location"].startswith("http://idp.example/")
    provider.refuse = False
    back = client.get("/auth/callback?code=c&state=s")
    assert back.status_code == 303 and back.headers["location"] == "/cases/form"
    assert client.get("/cases/form").status_code == 200
    assert seen["draft"] == {"note": "chị ấy gọi lúc 21:00"} and seen["token"] == "qn-operator"
    client.get("/cases/form")
    assert seen["draft"] is None


def test_drafts_never_pass_to_another_person(web: dict[str, Any]) -> None:
    client, seen, provider = web["client"], web["seen"], web["provider"]
    provider.refuse = True
    signed_in(web, "qn-operator", expires_in=-10, csrf="t")
    client.post("/cases/form", data={"note": "private", "csrf_token": "t"})
    provider.person = "qn-supervisor"
    client.get("/auth/login?next=/cases/form")
    provider.refuse = False
    client.get("/auth/callback?code=c&state=s")
    client.get("/cases/form")
    assert seen["draft"] is None and seen["token"] == "qn-supervisor"


def test_sign_out_clears_the_session(web: dict[str, Any]) -> None:
    client = web["client"]
    sid = signed_in(web, "qn-spc-staff", csrf="t")
    out = client.post("/auth/logout", data={"csrf_token": "t"})
    assert out.status_code == 303 and out.headers["location"] == "/auth/signed-out?provider=open"
    assert web["store"].load(store_key(sid), time.time()) is None
    assert client.get("/shelter").status_code == 303
