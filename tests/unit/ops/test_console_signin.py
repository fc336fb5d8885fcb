"""The console behind its sign-in, in process: who may use it, whose name an audit row carries, CSRF on the
session's requests, and every view narrowed to the person's provinces. The identity provider is stood in for
by a token verifier that knows a few people (the real Keycloak flow is in tests/e2e/test_ops_console.py)."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from itsdangerous import TimestampSigner
from starlette.testclient import TestClient

from ops.adapters.scrape import Scraper
from ops.bootstrap import bootstrap
from ops.config import MIGRATIONS, Settings
from ops.domain import commands
from ops.domain.model import DeadLetterRecord, SpanRecord
from ops.entrypoints.console import create_app
from ops.entrypoints.signin import SESSION_COOKIE, SignIn, SignInNotConfigured, safe_next
from refnet_platform.caller import Caller, Role
from refnet_platform.engine import make_engine
from refnet_platform.errors import Unauthenticated
from refnet_platform.migrations import migrate

SECRET = "unit-test-session-secret"
NOW = datetime.now(UTC)
PEOPLE = {
    "ops-oncall": Caller("ops-oncall", Role.OPS, provinces=frozenset({"*"}), person=True),
    "qn-supervisor": Caller("qn-supervisor", Role.SUPERVISOR, provinces=frozenset({"22"}), person=True),
    "qn-operator": Caller("qn-operator", Role.OPERATOR, provinces=frozenset({"22"}), person=True),
}


class People:
    """Stands in for TokenVerifier: a token is a known person's user name."""

    def person(self, token: str) -> Caller:
        if token not in PEOPLE:
            raise Unauthenticated("the access token is not valid: Signature verification failed")
        return PEOPLE[token]


class Letters:
    def __init__(self) -> None:
        self.waiting = [
            DeadLetterRecord("referral.dlq.v1", 0, i, "referral-worker", "intake.cases.v1", 1, 10 + i, key,
                             b"\x0a\x01x", f"MalformedEvent: bad record {i}", 3, NOW, f"event-{i}", "", "")
            for i, key in enumerate([b"22", b"42", b"22", b"not-a-province"])]

    def read(self, positions: dict[tuple[str, int], int]) -> list[DeadLetterRecord]:
        waiting, self.waiting = self.waiting, []
        return waiting


class Replayer:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic: str, key: bytes, value: bytes, traceparent: str) -> int:
        self.published.append((topic, key))
        return len(self.published)


class NoKafka:
    def lag(self) -> list[Any]:
        return []

    def topics(self) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def settings_for(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'ops.db'}", kafka_bootstrap_servers="127.0.0.1:9",
                    oidc_issuer="http://127.0.0.1:9/realms/refnet", console_oidc_client_secret="dev-secret",
                    console_session_secret=SECRET, accept_within_s={"emergency": 60, "high": 60, "medium": 60,
                                                                    "low": 60})


@pytest.fixture
def console(tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = settings_for(tmp_path)
    engine = make_engine(settings.database[0])
    migrate(engine, MIGRATIONS)
    replayer = Replayer()
    bus = bootstrap(settings, engine, source=Letters(), replayer=replayer)
    earlier = NOW - timedelta(hours=2)
    for province, case_id in (("22", "case-22"), ("42", "case-42")):
        seen = commands.Seen(earlier, "intake", province)
        bus.handle(commands.RecordCase(seen, case_id, ("domestic_violence",), False, False, True))
        bus.handle(commands.RecordReferralRequested(commands.Seen(earlier, "referral", province), f"ref-{province}",
                                                    case_id, "police", f"police-{province}", False, None, None, None))
        bus.handle(commands.RecordCapacity(commands.Seen(earlier, "shelter", province), f"shelter-{province}",
                                           "women", 10, 1, 2))
        start = int(earlier.timestamp() * 1e9)
        bus.handle(commands.StoreSpans([SpanRecord(f"{province:0>32}", "1" * 16, "", "refnet-intake", "register",
                                                   "server", start, start + 1_000_000, "unset",
                                                   {"refnet.case_id": case_id})]))
    bus.handle(commands.CollectDeadLetters())
    signin = SignIn(settings, verifier=People())  # type: ignore[arg-type]
    app = create_app(settings, bus, engine, NoKafka(), Scraper({}), signin)  # type: ignore[arg-type]
    # No `with`: the lifespan (the sampling thread) is not needed here.
    client = TestClient(app, base_url="http://127.0.0.1:8480", follow_redirects=False)
    try:
        yield {"client": client, "bus": bus, "replayer": replayer}
    finally:
        engine.dispose()


def bearer(username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {username}"}


def signed_in(client: TestClient, username: str, since: float | None = None, csrf: str = "csrf-of-the-session"
              ) -> None:
    """A session cookie as the console's callback leaves it (signed with the console's key)."""
    person = PEOPLE[username]
    data = {"person": {"username": username, "role": str(person.role), "provinces": sorted(person.provinces),
                       "since": since or time.time()}, "csrf": csrf, "id_token": "an.id.token"}
    cookie = TimestampSigner(SECRET).sign(base64.b64encode(json.dumps(data).encode())).decode()
    client.cookies.set(SESSION_COOKIE, cookie, domain="127.0.0.1", path="/")


def letters(bus: Any) -> dict[str, Any]:
    return {v.event_id: v for v in bus.handle(commands.ListDeadLetters())}


def test_probes_stay_open_and_everything_else_needs_a_sign_in(console: dict[str, Any]) -> None:
    client = console["client"]
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/readyz").status_code == 503  # no Kafka here: but answered, not sent to sign in
    assert client.get("/static/console.js").status_code == 200
    page = client.get("/dlq?consumer=referral-worker")
    assert page.status_code == 303
    assert page.headers["location"] == "/auth/login?next=%2Fdlq%3Fconsumer%3Dreferral-worker"
    api = client.get("/api/status")
    assert api.status_code == 401 and "refnet login" in api.json()["error"]
    assert api.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/", headers={"X-Refresh": "1"}).status_code == 401  # the page's refresh reloads itself
    assert client.post("/dlq/1/replay").status_code == 401
    assert client.get("/auth/cli").json() == {"issuer": "http://127.0.0.1:9/realms/refnet",
                                              "client_id": "refnet-cli", "audience": "refnet-api"}


def test_only_the_operations_team_and_supervisors_may_use_the_console(console: dict[str, Any]) -> None:
    client = console["client"]
    assert client.get("/api/whoami", headers=bearer("forged")).status_code == 401
    assert client.get("/api/whoami", headers={"Authorization": "Basic b3BzOm9wcw=="}).status_code == 401
    refused = client.get("/api/status", headers=bearer("qn-operator"))
    assert refused.status_code == 403
    assert "cannot use the operations console" in refused.json()["error"]
    assert "không được dùng bảng điều khiển vận hành" in refused.json()["error"]
    assert client.get("/api/whoami", headers=bearer("ops-oncall")).json() == {
        "username": "ops-oncall", "role": "ops", "provinces": ["*"], "national": True, "via": "bearer"}
    signed_in(client, "qn-operator")
    page = client.get("/")
    assert page.status_code == 403
    assert "Your role (operator) cannot use the operations console" in page.text
    assert "Vai trò của bạn (operator) không được dùng bảng điều khiển vận hành" in page.text
    assert 'action="/auth/logout"' in page.text  # and a way to sign out (as someone else)


def test_the_audit_row_names_the_signed_in_person_only(console: dict[str, Any]) -> None:
    client, bus = console["client"], console["bus"]
    letter = letters(bus)["event-0"]
    reply = client.post(f"/api/dlq/{letter.letter_id}/replay?actor=mallory",
                        headers={**bearer("ops-oncall"), "X-Forwarded-User": "mallory"})
    assert reply.status_code == 200 and reply.json()["replayed"]
    assert letters(bus)["event-0"].replayed_by == "ops-oncall"
    again = client.post(f"/api/dlq/{letter.letter_id}/replay", headers=bearer("ops-oncall"))
    assert again.status_code == 409 and "already replayed by ops-oncall" in again.json()["reason"]
    supervisor = client.post(f"/api/dlq/{letters(bus)['event-2'].letter_id}/replay", headers=bearer("qn-supervisor"))
    assert supervisor.status_code == 403 and "operations team" in supervisor.json()["reason"]
    assert console["replayer"].published == [("intake.cases.v1", b"22")]


def test_a_session_post_needs_the_sessions_csrf_token(console: dict[str, Any]) -> None:
    client, bus = console["client"], console["bus"]
    signed_in(client, "ops-oncall", csrf="right-token")
    page = client.get("/dlq")
    assert page.status_code == 200 and 'name="csrf_token" value="right-token"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert not re.search(r"<script>|\son[a-z]+=", page.text)  # no inline script the policy would block
    letter_id = letters(bus)["event-2"].letter_id
    assert client.post(f"/dlq/{letter_id}/replay").status_code == 403
    assert client.post(f"/dlq/{letter_id}/replay", data={"csrf_token": "wrong-token"}).status_code == 403
    assert client.post(f"/api/dlq/{letter_id}/replay").status_code == 403  # the cookie alone is not enough
    assert letters(bus)["event-2"].replayed_at is None and console["replayer"].published == []
    done = client.post(f"/dlq/{letter_id}/replay", data={"csrf_token": "right-token"},
                       headers={"X-Forwarded-User": "mallory"})
    assert done.status_code == 303 and "Replayed" in done.headers["location"]
    assert letters(bus)["event-2"].replayed_by == "ops-oncall"


def test_a_supervisor_sees_their_provinces_only(console: dict[str, Any]) -> None:
    client = console["client"]
    ops, qn = bearer("ops-oncall"), bearer("qn-supervisor")
    everywhere = client.get("/api/status", headers=ops).json()
    assert {row["province_code"] for row in everywhere["provinces"]} == {"22", "42"}
    mine = client.get("/api/status", headers=qn).json()
    assert {row["province_code"] for row in mine["provinces"]} == {"22"}
    assert mine["overdue"] == 1 and everywhere["overdue"] == 2
    assert mine["dead_letters_pending"] == 2 and everywhere["dead_letters_pending"] == 4
    assert [o["track"]["referral_id"] for o in client.get("/api/overdue", headers=qn).json()["overdue"]] == ["ref-22"]
    assert client.get("/api/overdue?province=42", headers=qn).status_code == 400
    assert {d["province_code"] for d in client.get("/api/dlq", headers=qn).json()["dead_letters"]} == {"22"}
    assert client.get("/api/trace/case-22", headers=qn).status_code == 200
    out_of_remit = client.get("/api/trace/case-42", headers=qn)
    unknown = client.get("/api/trace/case-nowhere", headers=qn)
    assert out_of_remit.status_code == unknown.status_code == 404
    assert client.get("/api/trace/ref-42", headers=ops).status_code == 200
    report = client.get("/api/report", headers=qn).json()["report"]  # never the country's: their province
    assert report["province_code"] == "22" and report["cases"] == 1
    assert client.get("/api/report", headers=ops).json()["report"]["cases"] == 2
    refused = client.get("/api/report?province=42", headers=qn)
    assert refused.status_code == 400 and "not one of your provinces" in refused.json()["error"]
    assert client.get("/report.csv?province=42", headers=qn).status_code == 400
    assert client.get("/report.csv", headers=qn).text.splitlines()[1].startswith("line,22,")

    signed_in(client, "qn-supervisor")
    overview = client.get("/").text
    assert 'data-province="22"' in overview and 'data-province="42"' not in overview
    assert '<option value="42"' not in overview and "all my provinces" in overview
    assert 'data-replay=' not in client.get("/dlq").text  # supervisors see letters; the operations team replays
    report_page = client.get("/report").text
    assert "whole country" not in report_page and '<option value="42"' not in report_page


def test_a_session_ends_after_its_time_and_signing_out_clears_it(console: dict[str, Any]) -> None:
    client = console["client"]
    signed_in(client, "ops-oncall", since=time.time() - 9 * 3600)
    assert client.get("/").status_code == 303
    signed_in(client, "ops-oncall", csrf="t")
    assert client.get("/").status_code == 200
    assert client.post("/auth/logout").status_code == 403  # CSRF: another site cannot sign you out either
    out = client.post("/auth/logout", data={"csrf_token": "t"})
    # The provider is unreachable here: signed out of the console, and told the provider's session may live on.
    assert out.status_code == 303 and out.headers["location"] == "/auth/signed-out?provider=open"
    assert client.get("/").status_code == 303
    assert "may still be open" in client.get("/auth/signed-out?provider=open").text


def test_sign_in_when_the_provider_is_unreachable_says_so(console: dict[str, Any]) -> None:
    reply = console["client"].get("/auth/login?next=/dlq")
    assert reply.status_code == 503 and "cannot be reached" in reply.text


def test_the_console_does_not_start_without_an_identity_provider(tmp_path: Path) -> None:
    with pytest.raises(SignInNotConfigured, match=r"OIDC_ISSUER.*OPS_CONSOLE_OIDC_CLIENT_SECRET"):
        SignIn(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", console_oidc_client_secret="s"))
    with pytest.raises(SignInNotConfigured):
        SignIn(Settings(oidc_issuer="http://127.0.0.1:9/realms/refnet"))


def test_after_sign_in_only_a_path_on_the_console_is_followed() -> None:
    assert safe_next("/dlq?consumer=x") == "/dlq?consumer=x"
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "", None, "/auth/logout"):
        assert safe_next(target) == "/"
