"""The bench's statistics and report: percentiles, ratios to the floor, targets, table, JSON and SVG."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.stats import cores_used, cpu_seconds, percentile, rate, ratio, summarize


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_percentiles_do_not_depend_on_order() -> None:
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0


def test_summary_of_an_empty_sample_is_all_none() -> None:
    assert summarize([]) == {"count": 0, "p50": None, "p99": None, "max": None, "mean": None}
    assert summarize([2.0, 4.0]) == {"count": 2, "p50": 3.0, "p99": pytest.approx(3.98), "max": 4.0, "mean": 3.0}


def test_rate_is_events_per_second_over_their_span() -> None:
    assert rate([10.0, 10.5, 11.0]) == pytest.approx(2.0)
    assert rate([10.0]) is None
    assert rate([3.0, 3.0]) is None


def test_ratio_needs_both_figures() -> None:
    assert ratio(30.0, 6.0) == 5.0
    assert ratio(None, 6.0) is None and ratio(30.0, None) is None and ratio(30.0, 0.0) is None


def _results(notice_p50: float = 20.0, notice_p99: float = 90.0, register_p99: float = 15.0,
             sustained_at_200: bool = True) -> dict[str, Any]:
    def phase(rate_: float, sustained: bool) -> dict[str, Any]:
        return {
            "rate": rate_,
            "floor": {"latency_ms": {"p50": 5.0, "p99": 20.0}},
            "grpc_floor": {"latency_ms": {"p99": 2.0}},
            "refnet": {"registered": int(rate_ * 10), "register_ms": {"p50": 5.0, "p99": register_p99},
                       "notice_ms": {"p50": notice_p50, "p99": notice_p99}, "full_ms": {"p99": 120.0},
                       "hops_ms": {"intake commit -> referral": {"p50": 8.0, "p99": 40.0}},
                       "throughput_cps": rate_, "drain_s": 0.3, "sustained": sustained},
        }

    return {
        "started_at": "2026-11-23T15:00:00+00:00", "database": "SQLite", "machine": {"cpus": 2},
        "config": {"floor_hops": 2},
        "phases": [phase(5, True), phase(50, True), phase(200, sustained_at_200)],
        "floor_saturation": {"messages": 1000, "throughput_mps": 9000.0},
        "backlog": {"cases": 10000, "drain_rate_cps": 250.0, "emergency_ms": {"count": 50, "p50": 40.0, "p99": 90.0}},
        "web": {"operators": 20, "pages": {"all": {"count": 600, "p50": 40.0, "p95": 120.0}}, "errors": {},
                "live": {"measured": True, "shown_ms": {"count": 30, "p50": 500.0, "p95": 900.0}}},
    }


def _by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"].strip(): row for row in rows}


def test_targets_met_when_every_figure_is_within_them() -> None:
    rows = _by_name(report.targets(_results()))
    assert all(row["met"] for row in rows.values() if row["value"] is not None), rows
    assert not any(row["met"] is False for row in rows.values()), rows
    assert rows["sustained throughput (highest rate kept up with)"]["value"] == 200
    assert rows["p50 as a multiple of the floor"]["value"] == pytest.approx(4.0)


def test_targets_show_misses_and_what_was_not_measured() -> None:
    results = _results(notice_p50=40.0, register_p99=25.0, sustained_at_200=False)
    del results["backlog"]
    rows = _by_name(report.targets(results))
    assert rows["commit -> first notice p50 at 50/s"]["met"] is False
    assert rows["p50 as a multiple of the floor"]["met"] is False  # 40 / 5 = 8x
    assert rows["RegisterCase p99 at 50/s"]["met"] is False
    assert rows["sustained throughput (highest rate kept up with)"]["value"] == 50
    assert rows["emergency p99 under the backlog"]["met"] is None


def test_rendered_report_has_a_row_per_rate_and_flags_misses() -> None:
    text = report.render(_results(register_p99=25.0))
    lines = text.splitlines()
    assert sum(1 for line in lines if line.split()[:2] in (["5", "50"], ["50", "500"], ["200", "2000"])) == 3
    assert "MISSED" in text and "RegisterCase p99 at 50/s" in text
    assert "emergencies during the drain: 50" in text
    assert any(line.split()[:2] == ["50", "intake"] for line in lines if line.strip())  # where the time goes


def test_no_rate_kept_up_is_a_miss_not_a_gap() -> None:
    results = _results(sustained_at_200=False)
    for phase in results["phases"]:
        phase["refnet"]["sustained"] = False
    row = _by_name(report.targets(results))["sustained throughput (highest rate kept up with)"]
    assert (row["value"], row["met"]) == (0, False)


def test_table_aligns_numbers_right_and_words_left() -> None:
    table = report.render_table(("name", "n"), [("a", 1), ("bbb", 100)]).splitlines()
    assert table[2:] == ["a       1", "bbb   100"]


def test_json_carries_the_targets(tmp_path: Path) -> None:
    path = tmp_path / "out" / "run.json"
    report.write_json(_results(), path)
    saved = json.loads(path.read_text())
    assert len(saved["phases"]) == 3
    assert _by_name(saved["targets"])["RegisterCase p99 at 50/s"]["met"] is True


def test_svg_is_well_formed_with_a_line_per_series() -> None:
    svg = ET.fromstring(report.render_svg(_results()))
    polylines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(polylines) == len(report.SERIES)


def test_svg_of_a_failed_run_still_renders() -> None:
    ET.fromstring(report.render_svg({"phases": []}))


def test_cores_used_is_cpu_time_over_wall_time_busiest_first() -> None:
    assert cores_used({"a": 1.0, "b": 2.0, "gone": 1.0}, {"a": 3.0, "b": 2.5, "new": 9.0}, 2.0) == \
        {"a": 1.0, "b": 0.25}
    assert list(cores_used({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 2.0}, 1.0)) == ["b", "a"]


def test_cpu_seconds_reads_live_processes_and_skips_gone_ones() -> None:
    used = cpu_seconds({"me": os.getpid(), "gone": 2**22 + 1})
    assert set(used) == {"me"} and used["me"] > 0
