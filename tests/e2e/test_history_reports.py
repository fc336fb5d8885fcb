"""Reports the hotlines publish, from imported history, over the whole network: real Kafka, real gRPC, real
databases, people signed in through the real Keycloak.

A workbook of a few hundred past calls and cases of two provincial lines (Quảng Ninh's 18001769 and Hà Tĩnh's
1800.577.756, plus a few national 111 calls), written with old place names from before 1 July 2025, goes through
`refnet import` (dry run first, then for real) into intake's ImportHistory, on to every service as imported events.
The report for the first half of 2024, per handling line and per place, must match what the test counts from the
workbook itself; a re-import changes nothing; a case handled by one province's line but happening in its neighbour
counts in the line's report by line and in the neighbour's by place; a case that refused reporting is in no figure;
every breakdown sums to its total; and referral and notifications did nothing for the past.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from refnet.notifications.v1 import events_pb2 as notification_events
from refnet.referral.v1 import events_pb2 as referral_events
from refnet_dev.kafka import read_records
from refnet_dev.network import Network
from refnet_dev.util import eventually as wait_until
from refnet_platform.caller import Role
from refnet_platform.envelope import MalformedEvent, TypeRegistry, UnknownEventType, decode

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
eventually = partial(wait_until, timeout=90, poll_s=0.5)

FROM, TO = date(2024, 1, 1), date(2024, 6, 30)
QN, HT, HP, QT = "22", "42", "31", "44"  # Hải Phòng borders Quảng Ninh; Quảng Trị (old Quảng Bình) Hà Tĩnh
# The workbook's own words, counted here without refnet's code: the line column, old and new place names.
LINE_OF = {"18001769": QN, "1800.577.756": HT, "111": "111"}
PLACE_OF = {"": None, "Quảng Ninh": QN, "Hải Dương": HP, "Hà Tĩnh": HT, "Quảng Bình": QT, "Tỉnh Quảng Bình": QT}
HEADERS = ["Loại bản ghi", "Mã bản ghi", "Ngày", "Đường dây", "Tỉnh", "Kênh", "Chủ đề", "Kết quả", "Mã vụ việc",
           "Loại vụ việc", "Giới tính", "Nhóm tuổi", "Trẻ em", "Khuyết tật", "Mức độ rủi ro", "Khẩn cấp",
           "Ngày kết thúc", "Đồng ý báo cáo"]
TOPICS = ["domestic_violence", "child_protection", "gender_equality", "counselling", "advice", "other"]
OUTCOMES = ["advice_given", "counselling_given", "referred_elsewhere", "no_action", "disconnected"]
TYPES = ["domestic_violence", "child_abuse_or_neglect", "sexual_abuse", "trafficking", "counselling_request"]
BANDS = ["0-5", "6-11", "12-15", "16-17", "18-59", "60+", ""]
WORD = {"nữ": "female", "nam": "male", "": "unknown", "có": "yes", "không": "no"}


def history_rows(seed: int = 18) -> list[list[Any]]:
    """About 400 rows: calls and cases of both lines, 2023-11 to 2024-08 (so some fall outside the period)."""
    rng = random.Random(seed)
    rows: list[list[Any]] = []
    start = datetime(2023, 11, 1, 8, 0)
    for line, home, neighbour in (("18001769", "Quảng Ninh", "Hải Dương"), ("1800.577.756", "Hà Tĩnh", "Quảng Bình")):
        prefix = "QN" if line == "18001769" else "HT"
        for n in range(1, 91):
            band = rng.choice(BANDS)
            child = band in ("0-5", "6-11", "12-15", "16-17") or (not band and rng.random() < 0.3)
            emergency = rng.random() < 0.15
            opened = start + timedelta(days=rng.randrange(0, 300), hours=rng.randrange(0, 14))
            closed = opened + timedelta(days=rng.randrange(1, 90)) if rng.random() < 0.5 else None
            types = rng.sample(TYPES, rng.choice([1, 1, 2]))
            rows.append(["vụ việc", f"{prefix}-VV-{n:03d}", opened, line,
                         neighbour if rng.random() < 0.2 else rng.choice([home, ""]), "", "",
                         rng.choice(["resolved", "transferred", "no_contact"]) if closed else "", "",
                         ";".join(types), rng.choice(["nữ", "nữ", "nam", ""]), band,
                         "có" if child else "không", rng.choice(["có", "không", ""]),
                         "cao" if emergency and rng.random() < 0.5 else rng.choice(["thấp", "trung bình"]),
                         "có" if emergency else "", closed or "", "không" if rng.random() < 0.08 else ""])
        for n in range(1, 111):
            called = start + timedelta(days=rng.randrange(0, 300), hours=rng.randrange(0, 14))
            case_row = f"{prefix}-VV-{rng.randrange(1, 91):03d}" if rng.random() < 0.1 else ""
            rows.append(["cuộc gọi", f"{prefix}-CG-{n:03d}", called, line, "",
                         rng.choice(["", "walk_in"]), rng.choice(TOPICS),
                         "case_opened" if case_row else rng.choice(OUTCOMES), case_row] + [""] * 9)
    for n in range(1, 9):  # the national line's calls from Hà Tĩnh (where the caller was)
        rows.append(["cuộc gọi", f"111-CG-{n:03d}", datetime(2024, 2, n, 9), "111", "Hà Tĩnh", "national_111",
                     "child_protection", "advice_given", ""] + [""] * 9)
    return rows


def write_workbook(path: Path, rows: list[list[Any]]) -> None:
    book = Workbook()
    guide = book.active
    assert guide is not None
    guide.title = "Hướng dẫn"
    guide.append(["Nhật ký cuộc gọi và vụ việc trước refnet (no names, phones or notes)"])
    sheet = book.create_sheet("Nhật ký")
    sheet.append(HEADERS)
    for row in rows:
        sheet.append(row)
    book.save(path)


def counted_from_the_file(path: Path, by: str, code: str) -> tuple[Counter[tuple[str, str, str]], int]:
    """What the report must say, counted from the workbook alone: {(indicator, dimension, value): figure} and
    how many cases refused reporting."""
    sheet = load_workbook(path, read_only=True)["Nhật ký"]
    records = [dict(zip(HEADERS, row, strict=True)) for row in sheet.iter_rows(min_row=2, values_only=True)]
    start, end = datetime.combine(FROM, datetime.min.time()), datetime.combine(TO, datetime.max.time())
    figures: Counter[tuple[str, str, str]] = Counter()
    refused = 0

    def count(indicator: str, **values: str) -> None:
        figures[(indicator, "total", "")] += 1
        for dimension, value in values.items():
            figures[(indicator, dimension, value)] += 1

    for r in records:
        line = LINE_OF[str(r["Đường dây"])]
        place = PLACE_OF[r["Tỉnh"] or ""] or line
        if (line if by == "line" else place) != code:
            continue
        when = r["Ngày"]
        if r["Loại bản ghi"] == "cuộc gọi":
            if start <= when <= end:
                channel = r["Kênh"] or ("national_111" if line == "111" else "provincial_hotline")
                count("calls", topic=r["Chủ đề"], channel=channel, outcome=r["Kết quả"])
            continue
        if r["Đồng ý báo cáo"] == "không":
            refused += start <= when <= end
            continue
        child = r["Trẻ em"] == "có"
        person = {"sex": WORD[r["Giới tính"] or ""], "age_band": r["Nhóm tuổi"] or "unknown",
                  "child_adult": "child" if child else "adult", "disability": WORD[r["Khuyết tật"] or ""]}
        if start <= when <= end:
            count("cases", case_type=r["Loại vụ việc"].split(";")[0], **person)
            if r["Khẩn cấp"] == "có" or r["Mức độ rủi ro"] == "cao":
                count("emergency_interventions", **person)
        closed = r["Ngày kết thúc"] or None
        if child and when <= end and (closed is None or closed >= start):
            count("children_under_case_management", **person)
    return figures, refused


def refnet(network: Network, *args: str, who: str = "national-111-supervisor") -> subprocess.CompletedProcess[str]:
    """The refnet CLI as a person: the front door's certificate for intake, the person's token."""
    assert network.keycloak is not None
    cert, key = network.pki.client("refnet-cli", Role.GATEWAY)
    env = {**os.environ, "REFNET_TOKEN": network.keycloak.token(who), "REFNET_CONSOLE_URL": network.console_url,
           "REFNET_INTAKE_ADDRESS": network.address("intake"), "REFNET_TLS_CA": str(network.pki.ca),
           "REFNET_TLS_CERT": str(cert), "REFNET_TLS_KEY": str(key)}
    return subprocess.run([sys.executable, "-m", "ops.entrypoints.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def api(network: Network, path: str, who: str = "ops-oncall", **params: str) -> Any:
    assert network.keycloak is not None
    request = urllib.request.Request(f"{network.console_url}{path}?{urllib.parse.urlencode(params)}",
                                     headers={"Authorization": f"Bearer {network.keycloak.token(who)}"})
    with urllib.request.urlopen(request, timeout=20) as reply:
        return json.loads(reply.read())


def report(network: Network, **params: str) -> dict[tuple[str, str, str], float]:
    data = api(network, "/api/report", **{"from": FROM.isoformat(), "to": TO.isoformat(), **params})
    return {(indicator, dimension, value): float(figure) for _, indicator, dimension, value, figure in data["rows"]
            if dimension not in ("median", "p90", "referrals")}


@pytest.fixture(scope="module")
def network(shared_network: Network) -> Network:
    return shared_network  # tests/conftest.py


@pytest.fixture(scope="module")
def workbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "nhat-ky-2023-2024.xlsx"
    write_workbook(path, history_rows())
    return path


def test_imported_history_gives_the_reports_the_file_itself_gives(network: Network, workbook: Path,
                                                                  tmp_path: Path) -> None:
    rows = history_rows()
    # A dry run of a file with bad rows names each one (sheet!row and column) and sends nothing.
    bad = tmp_path / "bad.xlsx"
    broken = [list(r) for r in rows[:5]]
    broken[1][4] = "Tỉnh Không Có"  # no such province
    broken[3][3] = "1900 0000"  # no such line
    write_workbook(bad, broken)
    dry = refnet(network, "import", str(bad), "--dry-run")
    assert dry.returncode == 1, dry.stderr
    assert "line Nhật ký!3: province: unknown province name 'Tỉnh Không Có'" in dry.stderr
    assert "line Nhật ký!5: line: '1900 0000' is not a known hotline number" in dry.stderr
    assert "3 cases and 0 calls good, 2 bad; nothing imported (dry run)" in dry.stderr
    checked = refnet(network, "import", str(workbook), "--dry-run")
    assert checked.returncode == 0 and "0 bad; nothing imported (dry run)" in checked.stderr, checked.stderr

    first = refnet(network, "import", str(workbook))
    assert first.returncode == 0, first.stderr
    assert f"imported {len(rows)} new, 0 already imported" in first.stderr
    assert "importing" in first.stderr  # the progress, on stderr

    expected_qn, refused_qn = counted_from_the_file(workbook, "line", QN)
    for indicator in ("calls", "cases"):
        wanted = expected_qn[(indicator, "total", "")]
        eventually(lambda indicator=indicator, wanted=wanted:  # type: ignore[misc]
                   report(network, line="18001769").get((indicator, "total", "")) == wanted,
                   f"ops to learn the imported {indicator}")

    def matches(by: str, code: str) -> dict[tuple[str, str, str], float]:
        expected, refused = counted_from_the_file(workbook, by, code)
        got = report(network, province=code, by=by)
        for key, figure in expected.items():
            assert got.get(key) == figure, (by, code, key, got.get(key), figure)
        for indicator in ("calls", "cases", "emergency_interventions", "children_under_case_management"):
            assert got.get((indicator, "total", ""), 0) == expected.get((indicator, "total", ""), 0), indicator
        assert got[("excluded_no_reporting_consent", "total", "")] == refused
        # Every breakdown sums to its total ("unknown" is a row of its own).
        totals = {indicator: figure for (indicator, dimension, _), figure in got.items() if dimension == "total"}
        sums: Counter[tuple[str, str]] = Counter()
        for (indicator, dimension, _), figure in got.items():
            if dimension != "total":
                sums[(indicator, dimension)] += figure
        assert all(sums[key] == totals[key[0]] for key in sums), (by, code)
        return got

    def settled() -> bool:
        """ops has every imported call and case (calls and cases travel on different topics, in any order)."""
        for by, codes in (("line", (QN, HT)), ("place", (QN, HT, HP, QT))):
            for code in codes:
                expected, _ = counted_from_the_file(workbook, by, code)
                got = report(network, province=code, by=by)
                if any(got.get((i, "total", ""), 0) != expected.get((i, "total", ""), 0) for i in ("calls", "cases")):
                    return False
        return True

    eventually(settled, "ops to learn every imported call and case, by line and by place")
    by_line = {code: matches("line", code) for code in (QN, HT)}
    by_place = {code: matches("place", code) for code in (QN, HT, HP, QT)}
    assert refused_qn > 0 and by_line[QN][("excluded_no_reporting_consent", "total", "")] == refused_qn
    # A case Quảng Ninh's line handled in Hải Dương (now Hải Phòng): in the line's report, and in Hải Phòng's by
    # place, never in Quảng Ninh's by place.
    across = by_place[HP][("cases", "total", "")]
    assert across > 0 and by_line[QN][("cases", "total", "")] == by_place[QN][("cases", "total", "")] + across
    assert report(network, line="111")[("calls", "total", "")] == 8 == by_place[HT][("calls", "channel",
                                                                                        "national_111")]

    # The ids behind the figures (operations team): no case that refused reporting is in any of them.
    period = {"from": FROM.isoformat(), "to": TO.isoformat(), "by": "line"}
    refused_ids = set()
    counted_ids = set()
    for code in (QN, HT):
        refused_ids |= set(api(network, "/api/report/ids", province=code, indicator="excluded_cases", **period)["ids"])
        for indicator in ("cases", "emergency_interventions", "children_under_case_management"):
            counted_ids |= set(api(network, "/api/report/ids", province=code, indicator=indicator, **period)["ids"])
    assert len(refused_ids) == refused_qn + counted_from_the_file(workbook, "line", HT)[1]
    assert counted_ids and not refused_ids & counted_ids
    with pytest.raises(urllib.error.HTTPError) as refused:  # the ids are the operations team's alone
        api(network, "/api/report/ids", who="qn-supervisor", province=QN, indicator="cases", **period)
    assert refused.value.code == 403

    # Re-importing changes nothing: every row was imported before, and every figure stays.
    second = refnet(network, "import", str(workbook))
    assert second.returncode == 0 and f"imported 0 new, {len(rows)} already imported" in second.stderr, second.stderr
    assert {code: report(network, province=code, by="line") for code in (QN, HT)} == by_line
    assert {code: report(network, province=code, by="place") for code in (QN, HT, HP, QT)} == by_place

    # The CLI's report and spreadsheet for the line, as a hotline would ask for them.
    out = tmp_path / "qn.xlsx"
    cli_report = refnet(network, "report", "--line", "18001769", "--from", "2024-01-01", "--to", "2024-06-30",
                        "--xlsx", str(out), who="qn-supervisor")
    assert cli_report.returncode == 0, cli_report.stderr
    assert "Quảng Ninh's line, by handling line" in cli_report.stdout
    sheet = load_workbook(out)["Vụ việc"]
    cases_total = next(r[6] for r in sheet.iter_rows(min_row=2, values_only=True)
                       if r[1] == "cases" and r[3] == "total")
    assert cases_total == expected_qn[("cases", "total", "")]

    # Nobody acted on the past: no referral and no notice about any imported case.
    imported = set()
    for code in (QN, HT):
        for indicator in ("cases", "children_under_case_management", "excluded_cases"):
            imported |= set(api(network, "/api/report/ids", province=code, indicator=indicator,
                                **{"from": "2023-01-01", "to": "2024-12-31", "by": "line"})["ids"])
    registry = TypeRegistry([referral_events, notification_events])
    records = [r for topic in ("referral.referrals.v1", "referral.referrals-urgent.v1", "notifications.deliveries.v1")
               for r in read_records(network.kafka_bootstrap, topic)]
    mentioned = {getattr(payload, "case_id", "") for payload in payloads(registry, records)}
    assert len(imported) > 100 and not imported & mentioned


def payloads(registry: TypeRegistry, records: list[Any]) -> list[Any]:
    """The records' payloads, leaving out what does not parse as one: the shared network's topics also carry other
    modules' poison records (the consumer fuzz, the ops console's dead letter)."""
    found = []
    for record in records:
        try:
            found.append(registry.unpack(decode(record.value)))
        except (MalformedEvent, UnknownEventType):
            continue
    return found
