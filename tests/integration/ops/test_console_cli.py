"""The console's pages and API over a real socket, and the refnet CLI against it: tables, --json, progress,
exit codes. The console's database is seeded through ops' own handlers; Kafka is the session broker."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from ops.adapters.kafka import KafkaInspector
from ops.adapters.scrape import Scraper
from ops.bootstrap import bootstrap
from ops.config import MIGRATIONS, Settings
from ops.domain import commands
from ops.domain.model import DeadLetterRecord, SpanRecord
from ops.entrypoints import cli
from ops.entrypoints.console import create_app
from refnet_dev.kafka import KafkaBroker
from refnet_dev.util import free_port
from refnet_geo import VIETNAM_TZ
from refnet_platform.db import make_engine, migrate
from refnet_platform.health_http import HealthServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

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
def console(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("console")
    engine = make_engine(f"sqlite:///{data / 'ops.db'}")
    migrate(engine, MIGRATIONS)
    worker_side_door = HealthServer("127.0.0.1", 0, {}).start()
    targets = {"intake-worker": f"http://127.0.0.1:{worker_side_door.port}",
               "shelter-relay": f"http://127.0.0.1:{free_port()}"}  # nothing listens there: "down"
    port = free_port()
    settings = Settings(database_url=f"sqlite:///{data / 'ops.db'}", kafka_bootstrap_servers=kafka_broker.bootstrap,
                        console_port=port, scrape_interval_s=0.3,
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


def run(console: dict[str, Any], capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["--console", console["url"], *args])
    out, err = capsys.readouterr()
    return code, out, err


def page(console: dict[str, Any], path: str) -> str:
    with urllib.request.urlopen(console["url"] + path, timeout=10) as reply:
        assert reply.status == 200
        return reply.read().decode()


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


def test_dlq_list_and_replay_once_with_progress(console: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(console, capsys, "dlq", "list", "--json")
    letters = json.loads(out)["dead_letters"]
    assert code == 0 and len(letters) == 3 and {d["error"] for d in letters} >= {"MalformedEvent: bad record 0"}
    ids = sorted(d["letter_id"] for d in letters)[:2]
    code, out, err = run(console, capsys, "dlq", "replay", *map(str, ids), "--actor", "ops-anna")
    assert code == 0
    assert f"replaying 1/2: #{ids[0]} replayed" in err and f"replaying 2/2: #{ids[1]} replayed" in err
    assert console["replayer"].published == ["intake.cases.v1", "intake.cases.v1"]
    # Again: refused by the console, a no-op for the script.
    code, out, err = run(console, capsys, "dlq", "replay", str(ids[0]), "--json")
    [again] = json.loads(out)["replays"]
    assert code == 0 and again["outcome"] == "already replayed" and "ops-anna" in again["reason"]
    assert len(console["replayer"].published) == 2
    code, out, _ = run(console, capsys, "dlq", "list", "--pending")
    assert code == 0 and len([line for line in out.splitlines()[2:] if line.strip()]) == 1
    code, _, err = run(console, capsys, "dlq", "replay", "424242")
    assert code == 1 and "failed" in err
    html = page(console, "/dlq")
    assert f'data-letter-id="{ids[0]}" data-replayed="1"' in html and "by ops-anna" in html


def test_trace_by_case_or_referral_id(console: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(console, capsys, "trace", "ref-1")
    assert code == 0 and f"trace {'a' * 32}" in out and "[intake, referral]" in out
    assert "intake.cases.v1 process" in out and "case_id=case-1" in out
    code, out, _ = run(console, capsys, "trace", "case-1", "--json")
    [trace] = json.loads(out)["traces"]
    assert [h["service"] for h in trace["hops"]] == ["refnet-intake", "refnet-referral"]
    code, _, err = run(console, capsys, "trace", "no-such-case")
    assert code == 1 and "no trace mentions" in err
    assert "waterfall" in page(console, "/trace?id=case-1")


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
    body = {(r[3], r[4]): r[5] for r in rows[1:]}
    assert body[("cases", "domestic_violence")] == "1" and body[("referrals_made", "police")] == "1"
    assert body[("referrals_accepted", "health")] == "1" and body[("emergency_interventions", "")] == "1"
    assert body[("median_minutes_to_acceptance", "")] == "60.0"
    assert svg_file.read_text().startswith("<svg") and "Quảng Ninh" in svg_file.read_text()
    code, _, err = run(console, capsys, "report", "--province", "99")
    assert code == 1 and "province" in err


def test_pages_show_ids_and_counts(console: dict[str, Any]) -> None:
    overview = page(console, "/")
    assert 'data-process="intake-worker" data-state="ready"' in overview
    assert 'data-process="shelter-relay" data-state="down"' in overview
    assert 'data-province="22"' in overview and "<svg" in overview
    referrals = page(console, "/referrals")
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


def test_a_replay_posted_from_another_site_is_refused(console: dict[str, Any]) -> None:
    published = len(console["replayer"].published)
    request = urllib.request.Request(console["url"] + "/dlq/3/replay", method="POST", data=b"",
                                     headers={"Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    assert len(console["replayer"].published) == published
