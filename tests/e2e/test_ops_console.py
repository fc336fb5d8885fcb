"""The operations console in a real headless browser (Debian's chromium driven by Playwright), over the whole
network on real Kafka, signed in through the real Keycloak's sign-in page: cases flowing, a poison message in
the DLQ view replayed once (audited as the person signed in), CSRF and security headers, an overdue referral,
one case's hops across all four services, sign-out, someone refused, and a supervisor who sees her province
only. The refnet CLI and every process's /metrics against the same network."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet_dev.browser import sign_in as browser_sign_in
from refnet_dev.kafka import KafkaBroker, send
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network
from refnet_dev.util import eventually as wait_until
from refnet_platform import kafka_clients

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

VIEWPORT = {"width": 1280, "height": 900}
FOUR_SERVICES = ("refnet-intake", "refnet-referral", "refnet-shelter", "refnet-notifications")


eventually = partial(wait_until, timeout=45, poll_s=0.3)


def api(network: Network, path: str, method: str = "GET", as_who: str = "ops-oncall") -> tuple[int, Any]:
    """The console's JSON API as the CLI calls it: with the person's access token."""
    assert network.keycloak is not None
    request = urllib.request.Request(network.console_url + path, method=method,
                                     data=b"" if method == "POST" else None,
                                     headers={"Authorization": f"Bearer {network.keycloak.token(as_who)}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def network(kafka_broker: KafkaBroker, keycloak: Keycloak,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    net = Network(kafka_broker.bootstrap, tmp_path_factory.mktemp("ops-e2e") / "var", ops=True, keycloak=keycloak,
                  extra_env={
        # Referrals are due within 3 s, and referral's own timer (which would expire and escalate them) is
        # slow: the police referral nobody accepts is a stuck one, and ops must list it as overdue.
        "REFERRAL_ACCEPT_MINUTES_MEDIUM": "0.05", "REFERRAL_SLA_CHECK_INTERVAL_S": "600",
        "OPS_SCRAPE_INTERVAL_S": "1", "OPS_REFRESH_S": "1"})
    try:
        net.start()
        yield net
    finally:
        net.stop()


@pytest.fixture(scope="module")
def case_id(network: Network) -> str:
    request = intake_pb.RegisterCaseRequest(
        client_request_id=f"ops-e2e-{uuid.uuid4()}", province_code="22", commune_code="06673",
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
        survivor=intake_pb.Survivor(is_child=False, age=29, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True),
               intake_pb.Need(service_type=t.SERVICE_TYPE_SHELTER, consented=True)],
        contact=intake_pb.Contact(name="(ops e2e survivor)", phone="0900000099"), case_worker_id="qn-operator")
    with network.channel("intake", "qn-operator", "operator") as channel:  # a Quảng Ninh operator, signed in
        return str(intake_grpc.IntakeServiceStub(channel).RegisterCase(request, timeout=15).case.case_id)


@pytest.fixture(scope="module")
def poison(network: Network, kafka_broker: KafkaBroker) -> tuple[int, int]:
    """A record that is not an envelope, on the case stream: every worker reading it dead-letters it."""
    producer = kafka_clients.producer(kafka_broker.bootstrap, "test")
    try:
        sent = send(producer, "intake.cases.v1", b"\x00 not an envelope", key=b"22")
    finally:
        producer.close()
    return sent.partition, sent.offset


def screenshot(page: Any, path: Path) -> None:
    page.screenshot(path=str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert struct.unpack(">II", data[16:24]) == (VIEWPORT["width"], VIEWPORT["height"])
    assert len(data) > 20_000, f"{path.name} looks blank ({len(data)} bytes)"
    if keep := os.environ.get("REFNET_SCREENSHOT_DIR"):  # to look at them after the run
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def sign_in(page: Any, network: Network, username: str, path: str = "/") -> Any:
    assert network.keycloak is not None
    return browser_sign_in(page, network.console_url, network.keycloak.issuer, username, path)


def csp_errors(page: Any) -> list[str]:
    """What the browser refused under the console's Content-Security-Policy (inline script, styles...)."""
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    return refused


def test_the_console_shows_the_network_in_a_browser(network: Network, case_id: str, poison: tuple[int, int],
                                                    browser: Any, tmp_path: Path) -> None:
    partition, offset = poison
    where = f"intake.cases.v1[{partition}]@{offset}"

    def police_referral_overdue() -> str | None:
        _, body = api(network, "/api/overdue")
        return next((o["track"]["referral_id"] for o in body["overdue"]
                     if o["track"]["case_id"] == case_id and o["track"]["sector"] == "police"), None)

    referral_id = eventually(police_referral_overdue, "ops listing the case's police referral as overdue")

    def letters_for_poison() -> list[dict[str, Any]] | None:
        """Once both workers' letters are in: each worker dead-letters it in its own time, ops collects them
        on a timer, so one may be listed a round before the other."""
        _, body = api(network, "/api/dlq")
        letters = [d for d in body["dead_letters"] if d["original_topic"] == "intake.cases.v1"
                   and (d["original_partition"], d["original_offset"]) == poison]
        consumers = {d["consumer"] for d in letters}
        return letters if consumers >= {"referral-worker", "notifications-worker"} else None

    letters = eventually(letters_for_poison, "the poison record in the dead-letter view")
    assert all(d["error"].startswith("malformed") for d in letters)

    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    refused_by_policy = csp_errors(page)
    try:
        # Signing in: the console sends the browser to Keycloak; ops-oncall signs in there and is back.
        sign_in(page, network, "ops-oncall")
        assert page.inner_text("#who").startswith("ops-oncall · ops")
        # Overview: every process ready, the case's province flowing, and the page refreshing by itself.
        reply = page.goto(network.console_url + "/")
        headers = reply.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer" and headers["cache-control"] == "no-store"
        page.wait_for_selector('tr[data-process="intake-api"][data-state="ready"]', timeout=30_000)
        # Functions, not strings: the page's policy allows no eval, and Playwright would eval a string.
        page.wait_for_function("n => document.querySelectorAll('#processes tr[data-state=\"ready\"]').length === n",
                               arg=len(network.process_names()), timeout=30_000)
        page.wait_for_selector('#provinces tr[data-province="22"]', timeout=30_000)
        assert int(page.inner_text('#provinces tr[data-province="22"] td:nth-child(2)')) >= 1
        everywhere = {r.get_attribute("data-province") for r in page.locator("#provinces tr[data-province]").all()}
        assert len(everywhere) > 1, everywhere  # the operations team sees every province (beds in the demo's)
        assert page.locator("section.charts svg polyline").count() >= 1  # the throughput plot has lines
        page.wait_for_function("() => document.getElementById('live').dataset.refreshed", timeout=10_000)
        screenshot(page, tmp_path / "overview.png")
        # The filters apply on change from the console's own script (no inline handler for the policy to block).
        with page.expect_navigation():
            page.select_option('select[name="province"]', "22")
        assert "province=22" in page.url

        # Referrals: the one nobody accepted is overdue.
        page.goto(network.console_url + "/referrals")
        row = page.locator(f'#overdue tr[data-referral-id="{referral_id}"]')
        row.wait_for(timeout=10_000)
        assert "not accepted" in row.inner_text()
        screenshot(page, tmp_path / "referrals.png")

        # Dead letters: a POST without the session's CSRF token, or with a wrong one, changes nothing.
        page.goto(network.console_url + "/dlq")
        mine = page.locator("#dead-letters tr", has_text=where).filter(has_text="referral-worker")
        mine.first.wait_for(timeout=10_000)
        assert "malformed" in mine.first.inner_text()
        letter_id = int(mine.first.get_attribute("data-letter-id"))
        other = next(d["letter_id"] for d in letters if d["letter_id"] != letter_id)
        for form in ({}, {"csrf_token": "not-the-sessions-token"}):
            forged = context.request.post(f"{network.console_url}/dlq/{other}/replay", form=form,
                                          max_redirects=0)
            assert forged.status == 403, (form, forged.status)
        assert context.request.post(f"{network.console_url}/api/dlq/{other}/replay").status == 403
        _, body = api(network, "/api/dlq")
        assert not next(d for d in body["dead_letters"] if d["letter_id"] == other)["replayed_at"]

        # ...and the Replay button (its form carries the token) replays once, audited as ops-oncall.
        page.click(f'button[data-replay="{letter_id}"]')
        page.wait_for_selector("#flash", timeout=10_000)
        assert f"Replayed dead letter {letter_id}" in page.inner_text("#flash")
        page.wait_for_selector(f'tr[data-letter-id="{letter_id}"][data-replayed="1"]', timeout=10_000)
        assert "by ops-oncall" in page.inner_text(f'tr[data-letter-id="{letter_id}"]')
        assert page.locator(f'button[data-replay="{letter_id}"]').count() == 0
        screenshot(page, tmp_path / "dead-letters.png")
        status, body = api(network, f"/api/dlq/{letter_id}/replay?actor=someone-else", "POST")
        assert status == 409 and not body["replayed"] and "already replayed by ops-oncall" in body["reason"]

        # The trace view: the case's hops across all four services.
        page.goto(f"{network.console_url}/trace?id={case_id}")
        for service in FOUR_SERVICES:
            page.wait_for_selector(f'#trace-services [data-service="{service}"]', timeout=45_000)
        assert page.locator("section.trace svg.waterfall rect").count() >= 4
        assert page.locator('section.trace tr[data-service="refnet-shelter"]').count() >= 1
        screenshot(page, tmp_path / "trace.png")

        # The indicator report for the province's line: the case counted, a chart, a CSV to download.
        page.goto(f"{network.console_url}/report?province=22")
        assert "by handling line" in page.inner_text("#report-scope")
        cases = page.locator('#indicators tr[data-indicator="cases"][data-dimension="total"] td.num')
        assert int(cases.inner_text()) >= 1
        police = page.locator('#indicators tr[data-indicator="referrals_made"][data-dimension="sector"]'
                              '[data-value="police"] td.num')
        assert int(police.inner_text()) >= 1
        assert page.locator("section.charts svg rect").count() >= 5
        with page.expect_download() as download:
            page.click("#csv-link")
        assert download.value.suggested_filename.startswith("refnet-report-22-")
        screenshot(page, tmp_path / "report.png")
        assert refused_by_policy == [], refused_by_policy

        # Signing out ends the session at the console and at Keycloak: the next visit asks to sign in again.
        page.click("#signout-button")
        page.wait_for_url(f"{network.console_url}/auth/signed-out", timeout=15_000)
        assert "Signed out" in page.inner_text("#signed-out")
        page.goto(network.console_url + "/dlq")
        assert network.keycloak is not None and page.url.startswith(network.keycloak.issuer)
        assert page.locator("#username").count() == 1
    finally:
        context.close()

    # The refnet CLI against the same console, as ops-oncall: the trace, and the replay refused again as a no-op.
    assert network.keycloak is not None
    refnet = [str(Path(sys.executable).parent / "refnet"), "--console", network.console_url]
    as_ops = {**os.environ, "REFNET_TOKEN": network.keycloak.token("ops-oncall"),
              "XDG_CONFIG_HOME": str(tmp_path / "config")}
    traced = subprocess.run([*refnet, "trace", referral_id, "--json"], capture_output=True, text=True, timeout=30,
                            env=as_ops)
    assert traced.returncode == 0, traced.stderr
    services = {s for tr in json.loads(traced.stdout)["traces"] for s in tr["services"]}
    assert set(FOUR_SERVICES) <= services
    again = subprocess.run([*refnet, "dlq", "replay", str(letter_id)], capture_output=True, text=True, timeout=30,
                           env=as_ops)
    assert again.returncode == 0 and "already replayed" in again.stdout
    nobody = subprocess.run([*refnet, "status"], capture_output=True, text=True, timeout=30,
                            env={k: v for k, v in as_ops.items() if k != "REFNET_TOKEN"})
    assert nobody.returncode == 1 and "refnet login" in nobody.stderr


def test_only_ops_and_supervisors_get_in_and_a_supervisor_sees_her_province(network: Network, case_id: str,
                                                                           browser: Any) -> None:
    # An operator signs in at Keycloak, and the console says, in both languages, that it is not for her role.
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        reply = sign_in(page, network, "qn-operator")
        assert reply.status == 403
        text = page.inner_text("#refused")
        assert "Your role (operator) cannot use the operations console" in text
        assert "Vai trò của bạn (operator) không được dùng bảng điều khiển vận hành" in text
        assert page.goto(network.console_url + "/dlq").status == 403
    finally:
        context.close()

    # A Quảng Ninh supervisor sees Quảng Ninh's figures only: provinces, report, filters.
    eventually(lambda: api(network, "/api/overdue?province=22", as_who="qn-supervisor")[1]["overdue"],
               "the overdue referral in Quảng Ninh")
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        sign_in(page, network, "qn-supervisor")
        page.wait_for_selector('#provinces tr[data-province="22"]', timeout=30_000)
        shown = {r.get_attribute("data-province") for r in page.locator("#provinces tr[data-province]").all()}
        assert shown == {"22"}, shown
        options = {o.get_attribute("value") for o in page.locator('select[name="province"] option').all()}
        assert options == {"", "22"}, options
        page.goto(network.console_url + "/report")
        assert page.input_value('select[name="province"]') == "22"  # her province's report, never the country's
        cases = page.locator('#indicators tr[data-indicator="cases"][data-dimension="total"] td.num')
        assert int(cases.inner_text()) >= 1
        page.goto(network.console_url + "/report?province=42")
        assert "not one of your provinces" in page.inner_text("#report-problem")
        page.goto(network.console_url + "/dlq")
        assert page.locator("button[data-replay]").count() == 0  # replays are the operations team's
        page.goto(network.console_url + "/referrals")
        provinces = {t.strip() for t in page.locator("#overdue tr[data-referral-id] td:nth-child(3)").all_inner_texts()}
        assert provinces == {"Quảng Ninh"}, provinces
    finally:
        context.close()
    status, body = api(network, "/api/report?province=42", as_who="qn-supervisor")
    assert status == 400 and "not one of your provinces" in body["error"]


def test_every_process_serves_metrics_and_readiness(network: Network, case_id: str, poison: tuple[int, int]) -> None:
    def metrics(name: str) -> str:
        with urllib.request.urlopen(f"{network.metrics_url(name)}/metrics", timeout=5) as reply:
            return reply.read().decode()

    for name in network.process_names():
        with urllib.request.urlopen(f"{network.metrics_url(name)}/readyz", timeout=5) as reply:
            assert reply.status == 200, name
    eventually(lambda: "RegisterCase" in metrics("intake-api") and "refnet_grpc_request_seconds_bucket"
               in metrics("intake-api"), "gRPC metrics on intake-api")
    eventually(lambda: 'refnet_events_produced_total{topic="intake.cases.v1"' in metrics("intake-relay"),
               "produced events on intake-relay")
    assert "refnet_outbox_backlog" in metrics("intake-relay")
    def having(name: str, text: str) -> Callable[[], str | None]:
        return lambda: (m if text in (m := metrics(name)) else None)

    worker = eventually(having("referral-worker", "refnet_dead_letters_total{"),
                        "the dead letter counted on referral-worker")
    assert 'refnet_events_consumed_total{outcome="handled",topic="intake.cases.v1"' in worker
    assert "refnet_consumer_lag{" in worker and "refnet_event_handling_seconds_bucket" in worker
    eventually(having("ops-console", "refnet_beds_free{"), "beds free per province on the console")
