"""The console's pages and API over a real socket, and the refnet CLI against it: tables, --json, progress,
exit codes. The console's database is seeded through ops' own handlers; Kafka is the session broker; people
sign in through the session's real Keycloak: the browser's authorization code flow (driven here with plain
HTTP and a cookie jar), the CLI's device flow, and bearer tokens."""

from __future__ import annotations

import csv
import html
import http.cookiejar
import io
import json
import re
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from openpyxl import load_workbook

from ops.adapters.kafka import KafkaInspector
from ops.adapters.scrape import Scraper
from ops.bootstrap import bootstrap
from ops.config import MIGRATIONS, Settings
from ops.domain import commands
from ops.domain.model import DeadLetterRecord, SpanRecord
from ops.entrypoints import cli
from ops.entrypoints.console import create_app
from refnet_dev.kafka import KafkaBroker
from refnet_dev.keycloak import DEV_PASSWORD, Keycloak
from refnet_dev.util import free_port
from refnet_geo import VIETNAM_TZ
from refnet_platform.engine import make_engine
from refnet_platform.health_http import HealthServer
from refnet_platform.migrations import migrate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
CONSOLE_SECRET = "refnet-console-dev-secret"  # the development realm's (deploy/keycloak/refnet-realm.json)

NOW = datetime.now(UTC)
TODAY = NOW.astimezone(VIETNAM_TZ).date()


class RecordingReplayer:
    def __init__(self) -> None:
        self.published: list[str] = []

    def publish(self, topic: str, key: bytes, value: bytes, traceparent: str) -> int:
        self.published.append(topic)
        return len(self.published)


def seed(bus: Any) -> None:
    seen = commands.Seen(NOW - timedelta(hours=3), "intake", "22")
    bus.handle(commands.RecordCase(seen, "case-1", ("domestic_violence",), True, True, True))
    bus.handle(commands.RecordCase(commands.Seen(NOW - timedelta(hours=3), "intake", "42"), "case-2",
                                   ("trafficking",), False, False, True))
    bus.handle(commands.RecordReferralRequested(commands.Seen(NOW - timedelta(hours=3), "referral", "22"),
                                                "ref-1", "case-1", "police", "qn-police-baichay", False, None, None,
                                                None))
    bus.handle(commands.RecordReferralRequested(commands.Seen(NOW - timedelta(hours=3), "referral", "22"),
                                                "ref-2", "case-1", "health", "qn-hospital", False, None, None, None))
    bus.handle(commands.RecordReferralStatus(commands.Seen(NOW - timedelta(hours=2), "referral", "22"),
                                             "ref-2", "accepted", ""))
    start = int((NOW - timedelta(hours=3)).timestamp() * 1e9)
    bus.handle(commands.StoreSpans([
        SpanRecord("a" * 32, "1" * 16, "", "refnet-intake", "/refnet.intake.v1.IntakeService/RegisterCase", "server",
                   start, start + 9_000_000, "unset", {}),
        SpanRecord("a" * 32, "2" * 16, "1" * 16, "refnet-referral", "intake.cases.v1 process", "consumer",
                   start + 12_000_000, start + 20_000_000, "unset", {"refnet.case_id": "case-1"})]))


@pytest.fixture(scope="module")
def console(kafka_broker: KafkaBroker, keycloak: Keycloak,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("console")
    engine = make_engine(f"sqlite:///{data / 'ops.db'}")
    migrate(engine, MIGRATIONS)
    worker_side_door = HealthServer("127.0.0.1", 0, {}).start()
    targets = {"intake-worker": f"http://127.0.0.1:{worker_side_door.port}",
               "shelter-relay": f"http://127.0.0.1:{free_port()}"}  # nothing listens there: "down"
    port = free_port()
    settings = Settings(database_url=f"sqlite:///{data / 'ops.db'}", kafka_bootstrap_servers=kafka_broker.bootstrap,
                        console_port=port, scrape_interval_s=0.3, oidc_issuer=keycloak.issuer,
                        console_oidc_client_secret=CONSOLE_SECRET,
                        accept_within_s={"emergency": 60, "high": 60, "medium": 3600, "low": 3600})

    class Letters:
        def read(self, positions: dict[tuple[str, int], int]) -> list[DeadLetterRecord]:
            return [DeadLetterRecord("referral.dlq.v1", 0, i, "referral-worker", "intake.cases.v1", 1, 7 + i, b"22",
                                     b"\x0a\x01x", f"MalformedEvent: bad record {i}", 1, NOW, "", "", "")
                    for i in range(3) if positions.get(("referral.dlq.v1", 0), 0) <= i]

    replayer = RecordingReplayer()
    bus = bootstrap(settings, engine, source=Letters(), replayer=replayer)
    seed(bus)
    bus.handle(commands.CollectDeadLetters())
    app = create_app(settings, bus, engine, KafkaInspector(kafka_broker.bootstrap),
                     Scraper(targets, keep=settings.scrape_history))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # a few samples of every target
        yield {"url": f"http://127.0.0.1:{port}", "replayer": replayer, "data": data}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        worker_side_door.stop()
        engine.dispose()


@pytest.fixture(autouse=True)
def as_ops_oncall(keycloak: Keycloak, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every CLI run below is ops-oncall's (REFNET_TOKEN), with a token file of its own (none unless a test
    signs in)."""
    monkeypatch.setenv("REFNET_TOKEN", keycloak.token("ops-oncall"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def run(console: dict[str, Any], capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["--console", console["url"], *args])
    out, err = capsys.readouterr()
    return code, out, err


def page(console: dict[str, Any], path: str, token: str) -> str:
    request = urllib.request.Request(console["url"] + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200
        return reply.read().decode()


class LocalhostIsSecure(http.cookiejar.DefaultCookiePolicy):
    """As a browser does, http://127.0.0.1 counts as a secure context (Keycloak's cookies are Secure)."""

    def return_ok_secure(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return True


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def a_browser() -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar(LocalhostIsSecure())
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))


def fetch(browser: urllib.request.OpenerDirector, url: str, form: dict[str, str] | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """(status, final URL, body), redirects followed as a browser follows them."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with browser.open(urllib.request.Request(url, data=data, headers=headers or {}), timeout=15) as reply:
            return reply.status, reply.url, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.url, exc.read().decode()


def form_action(body: str, form_id: str = "") -> str:
    pattern = rf'<form[^>]*id="{form_id}"[^>]*action="([^"]+)"' if form_id else r'<form[^>]*action="([^"]+)"'
    found = re.search(pattern, body)
    assert found, f"no form in {body[:300]!r}"
    return html.unescape(found.group(1))


def keycloak_sign_in(browser: urllib.request.OpenerDirector, login_url: str, login_page: str,
                     username: str) -> tuple[int, str, str]:
    """Fills in and submits the identity provider's sign-in form, as a person would."""
    assert 'id="kc-form-login"' in login_page, login_page[:300]
    action = urllib.parse.urljoin(login_url, form_action(login_page, "kc-form-login"))
    return fetch(browser, action, {"username": username, "password": DEV_PASSWORD})


def csrf_of(body: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', body)
    assert found, "no CSRF token on the page"
    return found.group(1)


def test_status_lists_every_process_and_fails_when_one_is_down(console: dict[str, Any],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(console, capsys, "status")
    assert code == 1, err
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert " ready " in lines["intake-worker"] and " down " in lines["shelter-relay"]
    assert "1/2 ready" in out and "1 overdue referrals" in out and "3 dead letters pending" in out
    code, out, _ = run(console, capsys, "status", "--json")
    states = {p["name"]: p["state"] for p in json.loads(out)["processes"]}
    assert states == {"intake-worker": "ready", "shelter-relay": "down"}


def test_topics_and_lag_come_from_the_broker(console: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(console, capsys, "topics", "--json")
    names = {t["name"]: t for t in json.loads(out)["topics"]}
    assert code == 0 and names["intake.cases.v1"]["partitions"] == 6 and names["ops.dlq.v1"]["lane"] == "dead-letter"
    code, out, _ = run(console, capsys, "lag")
    assert code == 0 and out.startswith("group") and "total lag:" in out


def test_dlq_list_and_replay_once_with_progress(console: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                keycloak: Keycloak) -> None:
    code, out, _ = run(console, capsys, "dlq", "list", "--json")
    letters = json.loads(out)["dead_letters"]
    assert code == 0 and len(letters) == 3 and {d["error"] for d in letters} >= {"MalformedEvent: bad record 0"}
    ids = sorted(d["letter_id"] for d in letters)[:2]
    code, out, err = run(console, capsys, "dlq", "replay", *map(str, ids))
    assert code == 0
    assert f"replaying 1/2: #{ids[0]} replayed" in err and f"replaying 2/2: #{ids[1]} replayed" in err
    assert console["replayer"].published == ["intake.cases.v1", "intake.cases.v1"]
    # Again: refused by the console, a no-op for the script.
    code, out, err = run(console, capsys, "dlq", "replay", str(ids[0]), "--json")
    [again] = json.loads(out)["replays"]
    # The audit names the person whose token the CLI sent: nobody can claim another name.
    assert code == 0 and again["outcome"] == "already replayed" and "by ops-oncall" in again["reason"]
    assert len(console["replayer"].published) == 2
    code, out, _ = run(console, capsys, "dlq", "list", "--pending")
    assert code == 0 and len([line for line in out.splitlines()[2:] if line.strip()]) == 1
    code, _, err = run(console, capsys, "dlq", "replay", "424242")
    assert code == 1 and "failed" in err
    dlq = page(console, "/dlq", keycloak.token("ops-oncall"))
    assert f'data-letter-id="{ids[0]}" data-replayed="1"' in dlq and "by ops-oncall" in dlq
    with pytest.raises(SystemExit):  # there is no --actor to claim another name with
        run(console, capsys, "dlq", "replay", str(ids[0]), "--actor", "ops-anna")


def test_trace_by_case_or_referral_id(console: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                     keycloak: Keycloak) -> None:
    code, out, _ = run(console, capsys, "trace", "ref-1")
    assert code == 0 and f"trace {'a' * 32}" in out and "[intake, referral]" in out
    assert "intake.cases.v1 process" in out and "case_id=case-1" in out
    code, out, _ = run(console, capsys, "trace", "case-1", "--json")
    [trace] = json.loads(out)["traces"]
    assert [h["service"] for h in trace["hops"]] == ["refnet-intake", "refnet-referral"]
    code, _, err = run(console, capsys, "trace", "no-such-case")
    assert code == 1 and "no trace mentions" in err
    assert "waterfall" in page(console, "/trace?id=case-1", keycloak.token("ops-oncall"))


def test_report_as_table_json_csv_and_svg(console: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    period = ["--from", str(TODAY - timedelta(days=6)), "--to", str(TODAY)]
    code, out, _ = run(console, capsys, "report", "--province", "22", *period)
    assert code == 0 and "children_under_case_management" in out
    code, out, err = run(console, capsys, "report", "--province", "22,42", *period, "--json")
    reports = json.loads(out)["reports"]
    assert [r["report"]["cases"] for r in reports] == [1, 1] and "counting 2/2: 42" in err
    csv_file, svg_file = tmp_path / "r.csv", tmp_path / "r.svg"
    code, _, _ = run(console, capsys, "report", "--province", "22", *period, "--csv", str(csv_file),
                     "--svg", str(svg_file))
    rows = list(csv.reader(io.StringIO(csv_file.read_text())))
    body = {(r[5], r[6], r[7]): r[8] for r in rows[1:]}
    assert body[("cases", "case_type", "domestic_violence")] == "1"
    assert body[("referrals_made", "sector", "police")] == "1" and body[("referrals_made", "total", "")] == "2"
    assert body[("referrals_accepted", "sector", "health")] == "1"
    assert body[("emergency_interventions", "total", "")] == "1"
    assert body[("minutes_to_acceptance", "median", "")] == "60.0"
    assert svg_file.read_text().startswith("<svg") and "Quảng Ninh" in svg_file.read_text()
    code, _, err = run(console, capsys, "report", "--province", "99")
    assert code == 1 and "province" in err
    # A hotline's number, the spreadsheet, and the ids behind a figure (the operations team's).
    xlsx_file = tmp_path / "r.xlsx"
    code, out, _ = run(console, capsys, "report", "--line", "18001769", *period, "--xlsx", str(xlsx_file))
    assert code == 0 and "Quảng Ninh's line, by handling line" in out
    assert load_workbook(xlsx_file).sheetnames[1:] == ["Cuộc gọi", "Vụ việc", "Chuyển gửi", "Tạm lánh", "Thời gian"]
    code, out, _ = run(console, capsys, "report", "--line", "18001769", *period, "--ids",
                       "referrals_made:sector=police")
    assert code == 0 and out.split() == ["ref-1"]
    code, out, _ = run(console, capsys, "report", "--place", "42", *period, "--ids", "cases")
    assert code == 0 and out.split() == ["case-2"]


def test_pages_show_ids_and_counts(console: dict[str, Any], keycloak: Keycloak) -> None:
    token = keycloak.token("ops-oncall")
    overview = page(console, "/", token)
    assert 'data-process="intake-worker" data-state="ready"' in overview
    assert 'data-process="shelter-relay" data-state="down"' in overview
    assert 'data-province="22"' in overview and "<svg" in overview
    referrals = page(console, "/referrals", token)
    overdue = referrals.split("Escalations")[0]
    assert 'data-referral-id="ref-1"' in overdue and 'data-referral-id="ref-2"' not in overdue
    with urllib.request.urlopen(console["url"] + "/metrics", timeout=10) as reply:
        text = reply.read().decode()
    assert 'refnet_referrals_overdue{province="22"} 1.0' in text
    assert 'refnet_dead_letters_pending{consumer="referral-worker"}' in text


def test_the_console_script_runs_and_says_when_the_console_is_unreachable() -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "refnet"), "--console",
                           f"http://127.0.0.1:{free_port()}", "status"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "cannot reach the ops console" in done.stderr


def test_a_person_signs_in_through_the_identity_provider_and_acts_as_themselves(console: dict[str, Any],
                                                                               keycloak: Keycloak) -> None:
    # The console sends the browser to the provider: the refnet-console client, code flow, PKCE S256.
    sign_in = urllib.request.build_opener(NoRedirects())
    with pytest.raises(urllib.error.HTTPError) as redirect:
        sign_in.open(console["url"] + "/auth/login?next=/dlq", timeout=10)
    authorize = urllib.parse.urlsplit(redirect.value.headers["Location"])
    asked = urllib.parse.parse_qs(authorize.query)
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}".startswith(keycloak.issuer)
    assert asked["client_id"] == ["refnet-console"] and asked["response_type"] == ["code"]
    assert asked["code_challenge_method"] == ["S256"] and asked["code_challenge"] and asked["state"]
    assert asked["redirect_uri"] == [console["url"] + "/auth/callback"]

    browser = a_browser()
    status, url, login_page = fetch(browser, console["url"] + "/dlq")
    assert status == 200 and url.startswith(keycloak.issuer)  # not signed in: the provider's sign-in page
    status, url, dlq = keycloak_sign_in(browser, url, login_page, "ops-oncall")
    assert status == 200 and url == console["url"] + "/dlq", (status, url)  # back where the person was going
    assert 'data-username="ops-oncall"' in dlq
    token = csrf_of(dlq)
    pending = re.findall(r'data-letter-id="(\d+)" data-replayed="0"', dlq)
    assert pending, "no letter left to replay"
    letter = pending[0]
    published = len(console["replayer"].published)
    replay = console["url"] + f"/dlq/{letter}/replay"
    assert fetch(browser, replay, {})[0] == 403
    assert fetch(browser, replay, {"csrf_token": "not-the-token"})[0] == 403
    assert fetch(browser, replay, {"csrf_token": token}, {"Origin": "http://evil.example"})[0] == 403
    assert fetch(browser, console["url"] + f"/api/dlq/{letter}/replay", {})[0] == 403  # cookie, no header
    assert len(console["replayer"].published) == published
    status, url, after = fetch(browser, replay, {"csrf_token": token, "actor": "mallory"},
                               {"X-Forwarded-User": "mallory"})
    assert status == 200 and f"Replayed dead letter {letter}" in after
    assert re.search(rf'data-letter-id="{letter}" data-replayed="1".*?by ops-oncall', after, re.S)
    assert len(console["replayer"].published) == published + 1

    # Signing out ends the provider's session too: the next visit asks for the password again.
    status, url, out = fetch(browser, console["url"] + "/auth/logout", {"csrf_token": token})
    assert status == 200 and url == console["url"] + "/auth/signed-out" and "Signed out" in out
    status, url, again = fetch(browser, console["url"] + "/")
    assert url.startswith(keycloak.issuer) and 'id="kc-form-login"' in again


def test_someone_who_may_not_use_the_console_is_told_so(console: dict[str, Any], keycloak: Keycloak) -> None:
    browser = a_browser()
    _, url, login_page = fetch(browser, console["url"] + "/")
    status, url, refused = keycloak_sign_in(browser, url, login_page, "qn-operator")
    assert status == 403 and url.startswith(console["url"] + "/auth/callback")
    assert "Your role (operator) cannot use the operations console" in refused
    assert "Vai trò của bạn (operator) không được dùng bảng điều khiển vận hành" in refused
    assert fetch(browser, console["url"] + "/referrals")[0] == 403  # and stays refused


def test_the_cli_acts_as_the_person_whose_token_it_sends(console: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                         keycloak: Keycloak, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(console, capsys, "whoami")
    assert code == 0 and out.strip() == "ops-oncall (ops; all provinces)"
    monkeypatch.delenv("REFNET_TOKEN")
    code, _, err = run(console, capsys, "status")
    assert code == 1 and "not signed in" in err and "refnet login" in err
    monkeypatch.setenv("REFNET_TOKEN", keycloak.token("qn-operator"))
    code, _, err = run(console, capsys, "status")
    assert code == 1 and "cannot use the operations console" in err
    monkeypatch.setenv("REFNET_TOKEN", keycloak.token("qn-supervisor"))
    code, out, _ = run(console, capsys, "status", "--json")
    assert {row["province_code"] for row in json.loads(out)["provinces"]} == {"22"}
    code, _, err = run(console, capsys, "report", "--province", "42")
    assert code == 1 and "not one of your provinces" in err
    code, out, _ = run(console, capsys, "report", "--json")
    [mine] = json.loads(out)["reports"]
    assert mine["report"]["province_code"] == "22" and mine["report"]["cases"] == 1
    code, out, _ = run(console, capsys, "dlq", "replay", "1", "--json")
    assert code == 1 and json.loads(out)["replays"][0]["outcome"] == "failed"  # replays are the ops team's


def test_refnet_login_signs_in_with_the_device_flow(console: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("REFNET_TOKEN")
    said, stderr = io.StringIO(), sys.stderr
    monkeypatch.setattr(sys, "stderr", said)
    approved: dict[str, Any] = {}

    def the_person_approves() -> None:
        """Opens the address the CLI printed in a browser, signs in and grants the CLI access."""
        try:
            deadline = time.monotonic() + 20
            while "user_code=" not in said.getvalue() and time.monotonic() < deadline:
                time.sleep(0.1)
            where = re.search(r"open (\S+user_code=\S+)", said.getvalue())
            assert where, said.getvalue()
            browser = a_browser()
            _, url, login_page = fetch(browser, where.group(1))
            status, url, consent = keycloak_sign_in(browser, url, login_page, "ops-oncall")
            if 'name="accept"' in consent:
                code = re.search(r'name="code" value="([^"]+)"', consent)
                assert code
                status, url, consent = fetch(browser, urllib.parse.urljoin(url, form_action(consent)),
                                             {"code": code.group(1), "accept": "Yes"})
            approved.update(status=status, page=consent)
        except BaseException as exc:  # reported by the test below
            approved["error"] = exc

    person = threading.Thread(target=the_person_approves, daemon=True)
    person.start()
    code = cli.main(["--console", console["url"], "login"])  # polls until the person has signed in
    person.join(timeout=30)
    assert "error" not in approved, approved
    assert approved["status"] == 200, approved["page"][:300]
    assert code == 0, said.getvalue()
    assert "signed in as ops-oncall" in said.getvalue()
    stored = tmp_path / "config" / "refnet" / "token"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    monkeypatch.setattr(sys, "stderr", stderr)
    code, out, _ = run(console, capsys, "whoami", "--json")
    assert code == 0 and json.loads(out)["username"] == "ops-oncall"
    code, _, _ = run(console, capsys, "logout")
    assert code == 0 and not stored.exists()
