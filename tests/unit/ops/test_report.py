"""The indicator report: by handling line or by place, each survivor once, only reportable cases, every breakdown
summing to its total, the ids behind each figure, Vietnam-time periods, the hotlines' shape (CSV, XLSX)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from ops.domain.report import (
    BY_LINE,
    BY_PLACE,
    HOTLINES,
    PERSON_DIMENSIONS,
    CallFact,
    CaseFact,
    IndicatorReport,
    Period,
    ReferralFact,
    Scope,
    StayFact,
    build_report,
    line_code,
)
from ops.entrypoints.console_report import parse_period, report_csv, report_xlsx
from ops.entrypoints.console_views import parse_province, province_names
from refnet_platform.errors import InvalidArgument

JAN = Period(date(2026, 1, 1), date(2026, 1, 31))
REPO = Path(__file__).resolve().parents[3]
QN, HT, HP = "22", "42", "31"  # Hải Phòng borders Quảng Ninh
LINE_QN, PLACE_QN = Scope(BY_LINE, QN), Scope(BY_PLACE, QN)


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


def case(case_id: str, day: int = 5, province: str = QN, types: tuple[str, ...] = ("domestic_violence",),
         child: bool = False, reportable: bool = True, emergency: int | None = None,
         closed: datetime | None = None, line: str = "", sex: str = "unknown", band: str = "unknown",
         disability: str = "unknown") -> CaseFact:
    return CaseFact(case_id, province, at(day), types, child, reportable, at(emergency) if emergency else None, closed,
                    line, sex, band, disability)


def assert_breakdowns_sum(report: IndicatorReport) -> None:
    for figure in report.figures.values():
        for dimension, values in figure.breakdowns.items():
            assert sum(sum(ids.values()) for ids in values.values()) == figure.total, (figure.indicator, dimension)


def test_each_survivor_is_counted_once_per_sector_across_agencies_and_re_routing() -> None:
    cases = [case("c1"), case("c2")]
    referrals = [
        # c1 went to one police station, which declined, then another: one survivor referred to the police.
        ReferralFact("r1", "c1", QN, "police", at(5), None, None, "police", failed_at=at(5, 12)),
        ReferralFact("r2", "c1", QN, "police", at(6), at(6, 12), at(20), "police", started_at=at(6, 13)),
        ReferralFact("r3", "c1", QN, "health", at(5), at(5, 11), None, "health"),
        ReferralFact("r4", "c2", QN, "police", at(7), at(7, 14), None, "police", started_at=at(7, 18)),
    ]
    report = build_report(LINE_QN, JAN, cases, [], referrals, [])
    assert report.breakdown("referrals_made", "sector") == {"health": 1, "police": 2}
    assert report.breakdown("referrals_accepted", "sector") == {"health": 1, "police": 2}
    assert report.breakdown("referrals_completed", "sector") == {"police": 1}
    assert report.value("referrals_failed") == 0  # c1's police referral was completed after all
    # waits: 120 min (r2 from its own request), 60 min (r3), 240 min (r4)
    assert report.median_minutes_to_acceptance == 120
    assert report.timings["minutes_to_acceptance"].p90 == 240
    assert report.timings["minutes_to_service_start"].median == (60 * 13 - 60 * 10 + 60 * 18 - 60 * 10) / 2
    assert_breakdowns_sum(report)


def test_a_case_without_reporting_consent_is_left_out_of_every_figure() -> None:
    cases = [case("c1", child=True, emergency=5), case("hidden", child=True, reportable=False, emergency=5)]
    referrals = [ReferralFact("r1", "hidden", QN, "shelter", at(5), at(5, 11), None)]
    stays = [StayFact("hidden", QN, at(6), "qn-spc", at(8), "r1"), StayFact("c1", QN, at(6), "qn-spc", at(9), "r2")]
    report = build_report(LINE_QN, JAN, cases, [], referrals, stays)
    assert (report.cases, report.children_under_case_management, report.emergency_interventions) == (1, 1, 1)
    assert report.people_sheltered == 1 and report.value("bed_nights") == 3
    assert report.value("referrals_made") == 0
    assert report.median_minutes_to_acceptance is None
    assert report.excluded_cases == 1 and report.ids("excluded_cases") == ["hidden"]
    assert all("hidden" not in figure.counted and "r1" not in figure.counted for figure in report.figures.values())
    assert ("cases", "excluded_no_reporting_consent", "total", "", "1") in report.rows()


def test_a_case_counts_for_the_line_that_handled_it_and_the_place_it_happened() -> None:
    # Quảng Ninh's line took a case that happened in Hải Phòng, and referred it there.
    cases = [case("qn-local"), case("across", province=HP, line=QN), case("hp-own", province=HP)]
    referrals = [ReferralFact("r1", "across", HP, "police", at(5), at(5, 11), None, "police")]
    calls = [CallFact("k1", QN, at(5), "domestic_violence", QN), CallFact("k111", HP, at(5), "advice", "111")]
    by_line = build_report(LINE_QN, JAN, cases, calls, referrals, [])
    by_place = build_report(PLACE_QN, JAN, cases, calls, referrals, [])
    hp_by_place = build_report(Scope(BY_PLACE, HP), JAN, cases, calls, referrals, [])
    hp_by_line = build_report(Scope(BY_LINE, HP), JAN, cases, calls, referrals, [])
    assert by_line.ids("cases") == ["across", "qn-local"] and by_line.ids("referrals_made") == ["r1"]
    assert by_place.ids("cases") == ["qn-local"] and by_place.value("referrals_made") == 0
    assert hp_by_place.ids("cases") == ["across", "hp-own"] and hp_by_place.ids("referrals_made") == ["r1"]
    assert hp_by_line.ids("cases") == ["hp-own"]
    national_line = build_report(Scope(BY_LINE, "111"), JAN, cases, calls, referrals, [])
    assert national_line.ids("calls") == ["k111"] and hp_by_place.ids("calls") == ["k111"]
    assert build_report(Scope(), JAN, cases, calls, referrals, []).cases == 3
    assert line_code("18001769") == QN and line_code("1800.577.756") == HT and line_code("111") == "111"


def test_every_breakdown_sums_to_its_total_with_unknown_a_row_of_its_own() -> None:
    cases = [case("c1", child=True, sex="female", band="12-15", disability="yes", emergency=5),
             case("c2", sex="male", band="18-59", disability="no"), case("c3"),
             case("c4", child=True, types=("child_abuse_or_neglect", "sexual_abuse"))]
    calls = [CallFact("k1", QN, at(3), "child_protection", QN, "provincial_hotline", "case_opened"),
             CallFact("k2", QN, at(3), "advice")]
    report = build_report(LINE_QN, JAN, cases, calls, [], [])
    assert report.breakdown("cases", "sex") == {"female": 1, "male": 1, "unknown": 2}
    assert report.breakdown("cases", "child_adult") == {"adult": 2, "child": 2}
    assert report.breakdown("cases", "disability") == {"no": 1, "unknown": 2, "yes": 1}
    assert report.breakdown("cases", "case_type") == {"child_abuse_or_neglect": 1, "domestic_violence": 3}
    assert report.breakdown("calls", "outcome") == {"case_opened": 1, "unknown": 1}
    assert report.breakdown("children_under_case_management", "age_band") == {"12-15": 1, "unknown": 1}
    assert report.ids("cases", "sex", "unknown") == ["c3", "c4"]
    assert set(report.figures["cases"].breakdowns) == {"case_type", *PERSON_DIMENSIONS}
    assert_breakdowns_sum(report)


def test_periods_are_whole_days_in_vietnam_time() -> None:
    # 31 Jan 18:00 UTC is 1 Feb 01:00 in Vietnam: February's, not January's.
    late = CaseFact("late", QN, datetime(2026, 1, 31, 18, tzinfo=UTC), ("other_gbv",), False)
    # 31 Dec 17:30 UTC is 1 Jan 00:30 in Vietnam: January's.
    early = CaseFact("early", QN, datetime(2025, 12, 31, 17, 30, tzinfo=UTC), ("other_gbv",), False)
    report = build_report(LINE_QN, JAN, [late, early], [], [], [])
    assert report.cases == 1 and report.breakdown("cases", "case_type") == {"other_gbv": 1}


def test_children_under_case_management_are_those_open_during_the_period() -> None:
    cases = [
        CaseFact("open-before", QN, at(1) - timedelta(days=40), ("child_abuse_or_neglect",), True),
        CaseFact("closed-before", QN, at(1) - timedelta(days=40), ("child_abuse_or_neglect",), True,
                 closed_at=at(1) - timedelta(days=2)),
        case("new", child=True, types=("child_special_circumstances",)),
        case("adult"),
    ]
    report = build_report(LINE_QN, JAN, cases, [], [], [])
    assert report.ids("children_under_case_management") == ["new", "open-before"]
    assert report.cases == 2  # registered in January


def test_bed_nights_are_counted_per_shelter_inside_the_period() -> None:
    cases = [case("c1"), case("c2")]
    stays = [StayFact("c1", QN, at(1) - timedelta(days=3), "qn-spc", at(4), "r1"),  # 3 nights in January
             StayFact("c2", QN, at(30), "qn-campha-temp", None, "r2")]  # still there: 30 Jan to 1 Feb, 2 nights
    report = build_report(LINE_QN, JAN, cases, [], [], stays, now=at(31) + timedelta(days=5))
    assert report.breakdown("bed_nights", "shelter") == {"qn-campha-temp": 2, "qn-spc": 3}
    assert report.ids("people_sheltered") == ["c2"]  # c1 arrived in December


def test_the_csv_and_the_spreadsheet_carry_every_row() -> None:
    report = build_report(LINE_QN, JAN, [case("c1", child=True, emergency=5, sex="female")],
                          [CallFact("k1", QN, at(3), "child_protection")],
                          [ReferralFact("r1", "c1", QN, "police", at(5), at(5, 10), None, "police")],
                          [StayFact("c1", QN, at(6), "qn-spc")])
    rows = list(csv.reader(io.StringIO(report_csv(report))))
    assert rows[0] == ["by", "code", "period_start", "period_end", "group", "indicator", "dimension", "value",
                       "figure"]
    assert all(r[:4] == ["line", "22", "2026-01-01", "2026-01-31"] for r in rows[1:])
    body = {(r[5], r[6], r[7]): r[8] for r in rows[1:]}
    assert body[("calls", "total", "")] == "1" and body[("calls", "topic", "child_protection")] == "1"
    assert body[("cases", "case_type", "domestic_violence")] == "1" and body[("cases", "sex", "female")] == "1"
    assert body[("children_under_case_management", "total", "")] == "1"
    assert body[("referrals_made", "sector", "police")] == "1" and body[("referrals_accepted", "total", "")] == "1"
    assert body[("emergency_interventions", "total", "")] == "1" and body[("people_sheltered", "total", "")] == "1"
    assert body[("minutes_to_acceptance", "median", "")] == "0.0"
    book = load_workbook(io.BytesIO(report_xlsx(report, province_names())))
    assert book.sheetnames == ["Thông tin", "Cuộc gọi", "Vụ việc", "Chuyển gửi", "Tạm lánh", "Thời gian"]
    assert [c.value for c in book["Vụ việc"][1]] == ["Chỉ số", "Mã chỉ số", "Phân tổ", "Mã phân tổ", "Nhóm", "Mã nhóm",
                                                     "Số liệu"]
    sheet_rows = {(r[1], r[3], r[5] or ""): r[6] for r in book["Vụ việc"].iter_rows(min_row=2, values_only=True)}
    assert sheet_rows[("cases", "sex", "female")] == 1 and sheet_rows[("cases", "total", "")] == 1
    assert "Quảng Ninh" in book["Thông tin"]["B1"].value


def test_bad_report_parameters_name_the_field() -> None:
    names = province_names()
    assert len(names) == 34 and names["22"] == "Quảng Ninh"
    with pytest.raises(InvalidArgument, match=r"^province"):
        parse_province("99", names)
    with pytest.raises(InvalidArgument, match=r"^from"):
        parse_period("2026-13-01", "2026-01-31")
    with pytest.raises(InvalidArgument, match=r"^to"):
        parse_period("2026-02-01", "2026-01-31")
    assert parse_period(None, None, today=date(2026, 3, 31)) == Period(date(2026, 3, 2), date(2026, 3, 31))


def test_the_hotlines_the_demo_lists_are_the_ones_reports_know() -> None:
    listed = json.loads((REPO / "demo" / "hotlines.json").read_text(encoding="utf-8"))["lines"]
    directory = {p["provider_id"] for p in json.loads((REPO / "demo" / "directory.json").read_text(
        encoding="utf-8"))["providers"]}
    assert {line["number"]: line["line"] for line in listed} == HOTLINES
    assert all(line_code(line["shown_as"]) == line["line"] for line in listed)
    assert all(line[k] in directory for line in listed for k in ("social_work_centre", "social_protection_centre")
               if line[k])
