"""The operations console in a real headless browser (Debian's chromium driven by Playwright), over the whole
network on real Kafka: cases flowing, a poison message in the DLQ view replayed once, an overdue referral, and
one case's hops across all four services. The refnet CLI and every process's /metrics against the same network."""

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
from kafka import KafkaProducer

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet_dev.kafka import KafkaBroker
from refnet_dev.network import Network
from refnet_dev.util import eventually as wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 900}
FOUR_SERVICES = ("refnet-intake", "refnet-referral", "refnet-shelter", "refnet-notifications")


eventually = partial(wait_until, timeout=45, poll_s=0.3)


def api(network: Network, path: str, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(network.console_url + path, method=method,
                                     data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def network(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    net = Network(kafka_broker.bootstrap, tmp_path_factory.mktemp("ops-e2e") / "var", ops=True, extra_env={
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
        contact=intake_pb.Contact(name="(ops e2e survivor)", phone="0900000099"), case_worker_id="qn-worker-7")
    with network.channel("intake", "qn-worker-7", "operator") as channel:
        return str(intake_grpc.IntakeServiceStub(channel).RegisterCase(request, timeout=15).case.case_id)


@pytest.fixture(scope="module")
def poison(network: Network, kafka_broker: KafkaBroker) -> tuple[int, int]:
    """A record that is not an envelope, on the case stream: every worker reading it dead-letters it."""
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    try:
        sent = producer.send("intake.cases.v1", key=b"22", value=b"\x00 not an envelope").get(timeout=15)
    finally:
        producer.close()
    return sent.partition, sent.offset


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "no chromium: run scripts/install_browser.sh (as root) first"
    with sync_playwright() as playwright:
        # Debian's chromium through its path: no browser build is ever downloaded.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def screenshot(page: Any, path: Path) -> None:
    page.screenshot(path=str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert struct.unpack(">II", data[16:24]) == (VIEWPORT["width"], VIEWPORT["height"])
    assert len(data) > 20_000, f"{path.name} looks blank ({len(data)} bytes)"
    if keep := os.environ.get("REFNET_SCREENSHOT_DIR"):  # to look at them after the run
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def test_the_console_shows_the_network_in_a_browser(network: Network, case_id: str, poison: tuple[int, int],
                                                    browser: Any, tmp_path: Path) -> None:
    partition, offset = poison
    where = f"intake.cases.v1[{partition}]@{offset}"

    def police_referral_overdue() -> str | None:
        _, body = api(network, "/api/overdue")
        return next((o["track"]["referral_id"] for o in body["overdue"]
                     if o["track"]["case_id"] == case_id and o["track"]["sector"] == "police"), None)

    referral_id = eventually(police_referral_overdue, "ops listing the case's police referral as overdue")

    def letters_for_poison() -> list[dict[str, Any]]:
        _, body = api(network, "/api/dlq")
        return [d for d in body["dead_letters"] if d["original_topic"] == "intake.cases.v1"
                and (d["original_partition"], d["original_offset"]) == poison]

    letters = eventually(letters_for_poison, "the poison record in the dead-letter view")
    assert {d["consumer"] for d in letters} >= {"referral-worker", "notifications-worker"}
    assert all(d["error"].startswith("malformed") for d in letters)

    page = browser.new_page(viewport=VIEWPORT)
    try:
        # Overview: every process ready, the case's province flowing, and the page refreshing by itself.
        page.goto(network.console_url + "/")
        page.wait_for_selector('tr[data-process="intake-api"][data-state="ready"]', timeout=30_000)
        page.wait_for_function("document.querySelectorAll('#processes tr[data-state=\"ready\"]').length === "
                               f"{len(network.process_names())}", timeout=30_000)
        page.wait_for_selector('#provinces tr[data-province="22"]', timeout=30_000)
        assert int(page.inner_text('#provinces tr[data-province="22"] td:nth-child(2)')) >= 1
        assert page.locator("section.charts svg polyline").count() >= 1  # the throughput plot has lines
        page.wait_for_function("document.getElementById('live').dataset.refreshed", timeout=10_000)
        screenshot(page, tmp_path / "overview.png")

        # Referrals: the one nobody accepted is overdue.
        page.goto(network.console_url + "/referrals")
        row = page.locator(f'#overdue tr[data-referral-id="{referral_id}"]')
        row.wait_for(timeout=10_000)
        assert "not accepted" in row.inner_text()
        screenshot(page, tmp_path / "referrals.png")

        # Dead letters: the poison record with its reason; replayed once from the button.
        page.goto(network.console_url + "/dlq")
        mine = page.locator("#dead-letters tr", has_text=where).filter(has_text="referral-worker")
        mine.first.wait_for(timeout=10_000)
        assert "malformed" in mine.first.inner_text()
        letter_id = int(mine.first.get_attribute("data-letter-id"))
        page.click(f'button[data-replay="{letter_id}"]')
        page.wait_for_selector("#flash", timeout=10_000)
        assert f"Replayed dead letter {letter_id}" in page.inner_text("#flash")
        page.wait_for_selector(f'tr[data-letter-id="{letter_id}"][data-replayed="1"]', timeout=10_000)
        assert page.locator(f'button[data-replay="{letter_id}"]').count() == 0
        screenshot(page, tmp_path / "dead-letters.png")
        status, body = api(network, f"/api/dlq/{letter_id}/replay", "POST")
        assert status == 409 and not body["replayed"] and "already replayed by console" in body["reason"]

        # The trace view: the case's hops across all four services.
        page.goto(f"{network.console_url}/trace?id={case_id}")
        for service in FOUR_SERVICES:
            page.wait_for_selector(f'#trace-services [data-service="{service}"]', timeout=45_000)
        assert page.locator("section.trace svg.waterfall rect").count() >= 4
        assert page.locator('section.trace tr[data-service="refnet-shelter"]').count() >= 1
        screenshot(page, tmp_path / "trace.png")

        # The indicator report for the province: the case counted, a chart, a CSV to download.
        page.goto(f"{network.console_url}/report?province=22")
        cases = page.locator('#indicators tr[data-indicator="cases"][data-breakdown="total"] td.num')
        assert int(cases.inner_text()) >= 1
        police = page.locator('#indicators tr[data-indicator="referrals_made"][data-breakdown="police"] td.num')
        assert int(police.inner_text()) >= 1
        assert page.locator("section.charts svg rect").count() >= 5
        with page.expect_download() as download:
            page.click("#csv-link")
        assert download.value.suggested_filename.startswith("refnet-report-22-")
        screenshot(page, tmp_path / "report.png")
    finally:
        page.close()

    # The refnet CLI against the same console: the trace, and the replay refused again as a no-op.
    refnet = [str(Path(sys.executable).parent / "refnet"), "--console", network.console_url]
    traced = subprocess.run([*refnet, "trace", referral_id, "--json"], capture_output=True, text=True, timeout=30)
    assert traced.returncode == 0, traced.stderr
    services = {s for tr in json.loads(traced.stdout)["traces"] for s in tr["services"]}
    assert set(FOUR_SERVICES) <= services
    again = subprocess.run([*refnet, "dlq", "replay", str(letter_id)], capture_output=True, text=True, timeout=30)
    assert again.returncode == 0 and "already replayed" in again.stdout


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
