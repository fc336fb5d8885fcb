"""`refnet login`'s device flow against a scripted provider, the token file, and which token a request carries."""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from ops.entrypoints import cli, cli_signin

ISSUER = "http://idp.test/realms/refnet"
METADATA = {"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token",
            "device_authorization_endpoint": f"{ISSUER}/device"}


class Provider:
    """Answers as the identity provider would, one scripted token reply per poll."""

    def __init__(self, polls: list[tuple[int, dict[str, Any]]]) -> None:
        self.polls = polls
        self.calls: list[tuple[str, dict[str, str] | None]] = []

    def __call__(self, url: str, form: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict]:
        self.calls.append((url, form))
        if url.endswith("/.well-known/openid-configuration"):
            return 200, METADATA
        if url == METADATA["device_authorization_endpoint"]:
            return 200, {"device_code": "dev-123", "user_code": "ABCD-EFGH", "interval": 2, "expires_in": 60,
                         "verification_uri": f"{ISSUER}/device",
                         "verification_uri_complete": f"{ISSUER}/device?user_code=ABCD-EFGH"}
        return self.polls.pop(0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_device_flow_tells_where_to_sign_in_and_polls_until_done() -> None:
    provider = Provider([(400, {"error": "authorization_pending"}), (400, {"error": "slow_down"}),
                         (200, {"access_token": "a.b.c", "expires_in": 900, "refresh_token": "r",
                                "refresh_expires_in": 3600})])
    clock, out = Clock(), io.StringIO()
    data = cli_signin.device_sign_in(ISSUER, "refnet-cli", out=out, sleep=clock.sleep, clock=lambda: clock.now,
                              http=provider)
    assert f"open {ISSUER}/device?user_code=ABCD-EFGH" in out.getvalue() and "ABCD-EFGH" in out.getvalue()
    assert clock.slept == [2, 2, 7]  # slow_down: five seconds more between polls
    assert data["access_token"] == "a.b.c" and data["refresh_token"] == "r" and data["issuer"] == ISSUER
    url, started = provider.calls[1]
    assert url == METADATA["device_authorization_endpoint"] and started is not None
    assert started["client_id"] == "refnet-cli" and started["code_challenge_method"] == "S256"
    poll = provider.calls[2][1]
    assert poll is not None and poll["grant_type"] == cli_signin.DEVICE_GRANT and poll["device_code"] == "dev-123"
    # PKCE: the verifier sent with the polls is the one the challenge was made from.
    digest = hashlib.sha256(poll["code_verifier"].encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == started["code_challenge"]


@pytest.mark.parametrize(("reply", "says"), [((400, {"error": "access_denied"}), "declined"),
                                             ((400, {"error": "expired_token"}), "expired"),
                                             ((401, {"error": "invalid_client"}), "invalid_client")])
def test_the_device_flow_says_why_it_failed(reply: tuple[int, dict], says: str) -> None:
    clock = Clock()
    with pytest.raises(cli_signin.SignInError, match=says):
        cli_signin.device_sign_in(ISSUER, "refnet-cli", out=io.StringIO(), sleep=clock.sleep, clock=lambda: clock.now,
                           http=Provider([reply]))


def test_a_code_nobody_enters_expires() -> None:
    clock = Clock()
    with pytest.raises(cli_signin.SignInError, match="expired before anyone signed in"):
        cli_signin.device_sign_in(ISSUER, "refnet-cli", out=io.StringIO(), sleep=clock.sleep, clock=lambda: clock.now,
                           http=Provider([(400, {"error": "authorization_pending"})] * 40))


def test_the_token_file_is_the_persons_only(tmp_path: Path) -> None:
    store = cli_signin.TokenStore(tmp_path / "refnet" / "token")
    store.save({"access_token": "a"})
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert store.load() == {"access_token": "a"}
    assert store.forget() and store.load() is None and not store.forget()


def test_refnet_token_wins_and_a_stored_token_is_renewed_near_expiry(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = cli_signin.TokenStore(tmp_path / "token")
    assert cli_signin.Credentials(store, {"REFNET_TOKEN": "from-env"}).token() == "from-env"
    assert cli_signin.Credentials(store, {}).token() is None
    store.save({"issuer": ISSUER, "client_id": "refnet-cli", "token_endpoint": f"{ISSUER}/token",
                "access_token": "fresh", "expires_at": time.time() + 600, "refresh_token": "r",
                "refresh_expires_at": time.time() + 3600})
    assert cli_signin.Credentials(store, {}).token() == "fresh"
    data = store.load()
    assert data is not None
    store.save({**data, "access_token": "stale", "expires_at": time.time() + 10})
    asked: list[dict[str, str] | None] = []

    def renew(url: str, form: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict]:
        asked.append(form)
        return 200, {"access_token": "renewed", "expires_in": 900}

    monkeypatch.setattr(cli_signin, "http_json", renew)
    assert cli_signin.Credentials(store, {}).token() == "renewed"
    assert asked == [{"grant_type": "refresh_token", "client_id": "refnet-cli", "refresh_token": "r"}]
    assert store.load()["refresh_token"] == "r"  # type: ignore[index]  # kept when none came back
    store.save({**data, "expires_at": time.time() - 1, "refresh_expires_at": time.time() - 1})
    with pytest.raises(cli_signin.SignInError, match="run `refnet login`"):
        cli_signin.Credentials(store, {}).token()


def test_the_console_is_told_who_asks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    class Reply:
        status = 200

        def __enter__(self) -> Reply:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def read(self) -> bytes:
            return b"{}"

    def urlopen(request: Any, timeout: float) -> Reply:
        seen.append(request)
        return Reply()

    monkeypatch.setattr(cli.urllib.request, "urlopen", urlopen)
    client = cli.Client("http://console.test", credentials=cli_signin.Credentials(cli_signin.TokenStore(tmp_path / "t"),
                                                                           {"REFNET_TOKEN": "tok"}))
    client.post("/api/dlq/7/replay")
    client.get_open("/auth/cli")
    assert seen[0].get_header("Authorization") == "Bearer tok" and seen[0].full_url.endswith("/api/dlq/7/replay")
    assert seen[1].get_header("Authorization") is None
