"""The indicator report: each survivor once, only reportable cases, Vietnam-time periods, the hotlines' shape."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest

from ops.domain.report import CallFact, CaseFact, Period, ReferralFact, StayFact, build_report
from ops.entrypoints.console import parse_period, parse_province, province_names, report_csv
from refnet_platform.errors import InvalidArgument

JAN = Period(date(2026, 1, 1), date(2026, 1, 31))
QN, HT = "22", "42"


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=UTC)


def case(case_id: str, day: int = 5, province: str = QN, types: tuple[str, ...] = ("domestic_violence",),
         child: bool = False, reportable: bool = True, emergency: int | None = None,
         closed: datetime | None = None) -> CaseFact:
    return CaseFact(case_id, province, at(day), types, child, reportable, at(emergency) if emergency else None, closed)


def test_each_survivor_is_counted_once_across_agencies_and_re_routing() -> None:
    cases = [case("c1"), case("c2")]
    referrals = [
        # c1 went to one police station, which declined, then another: one survivor referred to the police.
        ReferralFact("r1", "c1", QN, "police", at(5), None, None),
        ReferralFact("r2", "c1", QN, "police", at(6), at(6, 12), at(20)),
        ReferralFact("r3", "c1", QN, "health", at(5), at(5, 11), None),
        ReferralFact("r4", "c2", QN, "police", at(7), at(7, 14), None),
    ]
    report = build_report(QN, JAN, cases, [], referrals, [])
    assert report.referrals_by_sector["police"].made == 2
    assert report.referrals_by_sector["police"].accepted == 2
    assert report.referrals_by_sector["police"].completed == 1
    assert report.referrals_by_sector["health"].made == 1
    # waits: 120 min (r2 from its own request), 60 min (r3), 240 min (r4)
    assert report.median_minutes_to_acceptance == 120


def test_a_case_without_reporting_consent_is_left_out_of_every_figure() -> None:
    cases = [case("c1", child=True, emergency=5), case("hidden", child=True, reportable=False, emergency=5)]
    referrals = [ReferralFact("r1", "hidden", QN, "shelter", at(5), at(5, 11), None)]
    stays = [StayFact("hidden", QN, at(6)), StayFact("c1", QN, at(6))]
    report = build_report(QN, JAN, cases, [], referrals, stays)
    assert (report.cases, report.children_under_case_management, report.emergency_interventions) == (1, 1, 1)
    assert report.people_sheltered == 1
    assert report.referrals_by_sector.get("shelter", None) is None or report.referrals_by_sector["shelter"].made == 0
    assert report.median_minutes_to_acceptance is None
    assert report.excluded_cases == 1


def test_periods_are_whole_days_in_vietnam_time() -> None:
    # 31 Jan 18:00 UTC is 1 Feb 01:00 in Vietnam: February's, not January's.
    late = CaseFact("late", QN, datetime(2026, 1, 31, 18, tzinfo=UTC), ("other_gbv",), False)
    # 31 Dec 17:30 UTC is 1 Jan 00:30 in Vietnam: January's.
    early = CaseFact("early", QN, datetime(2025, 12, 31, 17, 30, tzinfo=UTC), ("other_gbv",), False)
    report = build_report(QN, JAN, [late, early], [], [], [])
    assert report.cases == 1 and report.cases_by_type == {"other_gbv": 1}


def test_children_under_case_management_are_those_open_during_the_period() -> None:
    cases = [
        CaseFact("open-before", QN, at(1) - timedelta(days=40), ("child_abuse_or_neglect",), True),
        CaseFact("closed-before", QN, at(1) - timedelta(days=40), ("child_abuse_or_neglect",), True,
                 closed_at=at(1) - timedelta(days=2)),
        case("new", child=True, types=("child_special_circumstances",)),
        case("adult"),
    ]
    report = build_report(QN, JAN, cases, [], [], [])
    assert report.children_under_case_management == 2
    assert report.cases == 2  # registered in January


def test_calls_by_topic_and_cases_by_type_per_province_and_nationally() -> None:
    calls = [CallFact("k1", QN, at(3), "child_protection"), CallFact("k2", QN, at(4), "gender_equality"),
             CallFact("k3", QN, at(4), "child_protection"), CallFact("k4", HT, at(4), "advice")]
    cases = [case("c1", types=("domestic_violence", "sexual_abuse")), case("c2", province=HT, types=("trafficking",))]
    local = build_report(QN, JAN, cases, calls, [], [])
    assert local.calls_by_topic == {"child_protection": 2, "gender_equality": 1} and local.calls == 3
    assert local.cases_by_type == {"domestic_violence": 1, "sexual_abuse": 1} and local.cases == 1
    national = build_report("", JAN, cases, calls, [], [])
    assert national.calls == 4 and national.cases == 2


def test_the_csv_has_one_row_per_indicator_in_the_hotlines_shape() -> None:
    report = build_report(QN, JAN, [case("c1", child=True, emergency=5)],
                          [CallFact("k1", QN, at(3), "child_protection")],
                          [ReferralFact("r1", "c1", QN, "police", at(5), at(5, 10), None)],
                          [StayFact("c1", QN, at(6))])
    rows = list(csv.reader(io.StringIO(report_csv(report))))
    assert rows[0] == ["province_code", "period_start", "period_end", "indicator", "breakdown", "value"]
    body = {(r[3], r[4]): r[5] for r in rows[1:]}
    assert all(r[:3] == ["22", "2026-01-01", "2026-01-31"] for r in rows[1:])
    assert body[("calls", "total")] == "1" and body[("calls", "child_protection")] == "1"
    assert body[("cases", "domestic_violence")] == "1"
    assert body[("children_under_case_management", "")] == "1"
    assert body[("referrals_made", "police")] == "1" and body[("referrals_accepted", "police")] == "1"
    assert body[("emergency_interventions", "")] == "1" and body[("people_sheltered", "")] == "1"
    assert body[("median_minutes_to_acceptance", "")] == "0.0"


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
