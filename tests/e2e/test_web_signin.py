"""The web front door in a real headless browser (Debian's chromium driven by Playwright) over the whole network
on real Kafka, signed in through the real Keycloak's sign-in page: each role lands in its area, the operations
team is told the app is not for them, the language switch, sign-out ending the provider's session too, and the
security headers. The pages' own stories build on this (operator, partner, shelter)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from refnet_dev.browser import phone_page
from refnet_dev.browser import sign_in as browser_sign_in
from refnet_dev.network import Network

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

@pytest.fixture(scope="module")
def network(shared_network: Network) -> Network:
    return shared_network  # tests/conftest.py


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with phone_page(browser) as tab:  # fails the test if the CSP refused anything (inline script, styles...)
        yield tab


def sign_in(page: Any, network: Network, username: str, path: str = "/") -> Any:
    assert network.keycloak is not None
    return browser_sign_in(page, network.web_url, network.keycloak.issuer, username, path)


@pytest.mark.parametrize(("username", "area", "title"), [
    ("qn-operator", "/cases", "Bàn làm việc"),
    ("qn-police-baichay", "/referrals", "Chuyển gửi"),
    ("qn-spc-staff", "/shelter", "Cơ sở tạm lánh"),
])
def test_each_role_signs_in_to_its_area(network: Network, page: Any, username: str, area: str, title: str) -> None:
    reply = sign_in(page, network, username)
    page.wait_for_url(network.web_url + area)
    assert reply.status == 200 or page.url == network.web_url + area
    assert page.inner_text("h1") == title
    assert page.get_attribute("#who", "data-username") == username
    assert page.get_attribute("html", "lang") == "vi"


def test_the_operations_team_is_told_it_is_not_for_them(network: Network, page: Any) -> None:
    reply = sign_in(page, network, "ops-oncall")
    assert reply.status == 403
    text = page.inner_text("#refused")
    assert "Không dành cho vai trò của bạn" in text and "Your role" in text


def test_language_switch_headers_and_sign_out(network: Network, page: Any, tmp_path: Path) -> None:
    assert network.keycloak is not None
    sign_in(page, network, "qn-operator", "/cases")
    page.wait_for_url(network.web_url + "/cases")
    headers = page.goto(network.web_url + "/cases").all_headers()
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
    cookie = next(c for c in page.context.cookies() if c["name"] == "refnet_web_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert len(cookie["value"]) < 120 and "." in cookie["value"]  # a signed id, nothing else

    page.click("#lang-switch")
    page.wait_for_url(network.web_url + "/cases")
    assert page.get_attribute("html", "lang") == "en" and page.inner_text("h1") == "Workspace"
    assert "Sign out" in page.inner_text("#signout-button")
    page.screenshot(path=str(tmp_path / "workspace-en.png"))
    page.click("#lang-switch")
    page.wait_for_url(network.web_url + "/cases")
    assert page.get_attribute("html", "lang") == "vi" and page.inner_text("h1") == "Bàn làm việc"

    page.click("#signout-button")
    page.wait_for_url(f"{network.web_url}/auth/signed-out", timeout=15_000)
    assert "Đã đăng xuất" in page.inner_text("#signed-out")
    # The provider's session ended too: coming back asks for the password again.
    page.goto(network.web_url + "/cases")
    assert page.url.startswith(network.keycloak.issuer)
    assert page.is_visible("#password")


def test_the_access_token_is_refreshed_at_keycloak_when_it_nears_expiry(network: Network, page: Any) -> None:
    """The server-side session's token made to look expired: the next page refreshes it with the refresh token
    at Keycloak and the person carries on; the browser never holds a token."""
    from itsdangerous import Signer

    from refnet_frontdoor.sessions import seal, store_key, unseal
    from refnet_platform.engine import make_engine
    from web.adapters.sessions import SqlSessionStore

    sign_in(page, network, "qn-spc-staff")
    page.wait_for_url(network.web_url + "/shelter")
    cookie = next(c for c in page.context.cookies() if c["name"] == "refnet_web_session")
    sid = Signer(network.extra_env["WEB_SESSION_SECRET"], salt="refnet-session-id").unsign(cookie["value"]).decode()
    engine = make_engine(f"sqlite:///{network.data_dir / 'web.db'}")
    try:
        store = SqlSessionStore(engine)
        row = store.load(store_key(sid), time.time())
        assert row is not None and row[1] == "qn-spc-staff"
        data = unseal(sid, row[0])
        assert data is not None
        before = data["tokens"]["access_token"]
        assert before not in str(page.context.cookies())
        data["tokens"]["expires_at"] = time.time() - 1
        store.save(store_key(sid), seal(sid, data), row[1], time.time() + 3600)
        reply = page.goto(network.web_url + "/shelter")
        assert reply.status == 200 and page.inner_text("h1") == "Cơ sở tạm lánh"
        renewed = unseal(sid, store.load(store_key(sid), time.time())[0])  # type: ignore[index]
        assert renewed is not None and renewed["tokens"]["access_token"] != before
        assert renewed["tokens"]["expires_at"] > time.time() + 60
    finally:
        engine.dispose()


def test_probes(network: Network) -> None:
    for probe in ("/healthz", "/readyz"):
        with urllib.request.urlopen(network.web_url + probe, timeout=10) as reply:
            assert reply.status == 200
