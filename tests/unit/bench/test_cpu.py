"""The bench's CPU per case, the floor's per message, the baseline comparison and issue 20's targets (pure
functions of readings and results), and the /proc reading and py-spy recording on child processes of the test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench import flame, report
from bench.stats import backlog_cpu, cpu_seconds, cpu_totals, cpu_used, is_refnet, per_item_ms


def test_cpu_used_is_the_difference_for_processes_in_both_readings_busiest_first() -> None:
    used = cpu_used({"a": 1.0, "b": 2.0, "gone": 5.0}, {"a": 1.5, "b": 4.0, "new": 9.0})
    assert used == {"b": 2.0, "a": 0.5} and list(used) == ["b", "a"]


def test_per_item_ms_divides_cpu_seconds_by_items() -> None:
    assert per_item_ms({"a": 2.0, "b": 0.5}, 1000) == {"a": 2.0, "b": 0.5}
    assert per_item_ms({"a": 2.0}, 0) == {}


def test_totals_count_refnet_and_kafka_and_leave_the_bench_and_keycloak_out() -> None:
    ms = {"intake-api": 5.0, "referral-worker": 3.0, "kafka": 2.0, "bench": 4.0, "keycloak": 0.5, "floor-1": 9.0,
          "postgres": 1.0}
    assert cpu_totals(ms) == {"refnet": 9.0, "kafka": 2.0, "total": 11.0, "bench": 4.0, "keycloak": 0.5}
    assert cpu_totals({}) == {"refnet": 0.0, "kafka": 0.0, "total": 0.0}
    assert is_refnet("notifications-relay") and is_refnet("web") and not is_refnet("floor-2")


def test_backlog_cpu_adds_the_registering_and_draining_windows_over_every_case() -> None:
    preload = {"intake-api": 10.0, "intake-relay": 2.0, "kafka": 3.0, "bench": 6.0}  # referral worker down
    drain = {"intake-api": 0.2, "referral-worker": 8.0, "kafka": 6.0, "bench": 1.0}
    cpu: Any = backlog_cpu(preload, drain, 2000)
    per = cpu["ms_per_case"]
    assert per["intake-api"] == {"preload": 5.0, "drain": pytest.approx(0.1), "case": pytest.approx(5.1)}
    assert per["referral-worker"] == {"preload": None, "drain": 4.0, "case": 4.0}
    assert list(per)[:2] == ["intake-api", "kafka"]  # busiest first
    assert cpu["totals"]["refnet"] == pytest.approx(5.1 + 1.0 + 4.0)
    assert cpu["totals"]["kafka"] == pytest.approx(4.5)
    assert cpu["totals"]["total"] == pytest.approx(5.1 + 1.0 + 4.0 + 4.5)
    assert cpu["totals"]["bench"] == pytest.approx(3.5)
    assert cpu["drain_totals"]["total"] == pytest.approx(0.1 + 4.0 + 3.0)


def _results(total_ms: float | None = 12.0, capacity: float = 250.0) -> dict[str, Any]:
    backlog: dict[str, Any] = {"cases": 10000, "drain_rate_cps": capacity,
                               "emergency_ms": {"count": 50, "p50": 40.0, "p99": 90.0}}
    if total_ms is not None:
        backlog["cpu"] = {"cases": 10200, "settled": True,
                          "ms_per_case": {"intake-api": {"preload": 3.0, "drain": 0.1, "case": 3.1},
                                          "kafka": {"preload": 1.0, "drain": 2.0, "case": 3.0}},
                          "totals": {"refnet": total_ms - 3.0, "kafka": 3.0, "total": total_ms, "bench": 2.0},
                          "drain_totals": {"refnet": 0.1, "kafka": 2.0, "total": 2.1}}
    return {
        "started_at": "2026-12-06T10:00:00+00:00", "database": "SQLite", "machine": {"cpus": 2, "commit": "abc1234"},
        "config": {"floor_hops": 2},
        "phases": [{"rate": 50, "floor": {"latency_ms": {"p50": 5.0, "p99": 20.0}},
                    "grpc_floor": {"latency_ms": {"p99": 2.0}},
                    "refnet": {"registered": 500, "register_ms": {"p50": 5.0, "p99": 15.0},
                               "notice_ms": {"p50": 20.0, "p99": 90.0}, "full_ms": {"p99": 120.0},
                               "throughput_cps": 50, "drain_s": 0.3, "sustained": True,
                               "cores_used": {"kafka": 0.3, "intake-api": 0.2, "bench": 0.1},
                               "cpu_ms_per_case": {"kafka": 6.0, "intake-api": 4.0, "bench": 2.0}}}],
        "floor_saturation": {"messages": 2000, "throughput_mps": 9000.0,
                             "cpu_ms_per_message": {"floor-1": 0.1, "floor-2": 0.12, "kafka": 0.08, "bench": 0.2}},
        "backlog": backlog, "notes": [],
    }


def _by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"].strip(): row for row in rows}


def test_floor_cpu_per_message_is_its_forwarders_and_kafka_without_the_bench() -> None:
    assert report.floor_cpu_per_message(_results()) == pytest.approx(0.3)
    assert report.floor_cpu_per_message({"floor_saturation": {"messages": 10}}) is None


def test_issue_20_targets_without_a_baseline() -> None:
    rows = _by_name(report.targets(_results()))
    assert rows["total CPU per case (refnet + Kafka, backlog)"]["met"] is True
    assert rows["total CPU per case (refnet + Kafka, backlog)"]["issue"] == "20"
    assert rows["emergency p99 under the backlog"]["target"] == "<= 100 ms"
    assert rows["capacity as a multiple of the baseline's"]["met"] is None  # not measured without one
    assert rows["CPU per case as a multiple of the baseline's"]["met"] is None
    missed = _by_name(report.targets(_results(total_ms=14.0)))
    assert missed["total CPU per case (refnet + Kafka, backlog)"]["met"] is False


def test_baseline_multiples_meet_or_miss_issue_20s_aims() -> None:
    results = _results(total_ms=12.0, capacity=250.0)
    results["baseline"] = report.baseline_figures(_results(total_ms=40.0, capacity=80.0), "base.json")
    rows = _by_name(report.targets(results))
    assert rows["capacity as a multiple of the baseline's"]["value"] == pytest.approx(3.125)
    assert rows["capacity as a multiple of the baseline's"]["met"] is True
    assert rows["CPU per case as a multiple of the baseline's"]["value"] == pytest.approx(0.3)
    assert rows["CPU per case as a multiple of the baseline's"]["met"] is True
    results["baseline"] = report.baseline_figures(_results(total_ms=30.0, capacity=90.0), "base.json")
    rows = _by_name(report.targets(results))
    assert rows["capacity as a multiple of the baseline's"]["met"] is False
    assert rows["CPU per case as a multiple of the baseline's"]["met"] is False


def test_a_baseline_from_an_older_bench_lacks_cpu_figures_and_that_is_not_measured() -> None:
    older = _results(total_ms=None, capacity=73.0)
    del older["floor_saturation"]["cpu_ms_per_message"]
    results = _results()
    results["baseline"] = report.baseline_figures(older, "old.json")
    rows = _by_name(report.targets(results))
    assert rows["capacity as a multiple of the baseline's"]["value"] == pytest.approx(250 / 73)
    assert rows["CPU per case as a multiple of the baseline's"]["met"] is None
    compared = {row[0]: row[1:] for row in report.baseline_rows(results)}
    assert compared["total CPU per case (refnet + Kafka, backlog) (ms)"] == [None, 12.0, None]
    assert compared["capacity (backlog drain) (cases/s)"][2] == pytest.approx(250 / 73)
    text = report.render(results)
    assert "against the baseline old.json" in text


def test_baseline_figures_of_a_failed_run_are_all_missing() -> None:
    figures = report.baseline_figures({}, "empty.json")["figures"]
    assert set(figures.values()) == {None}


def test_report_prints_cpu_per_case_per_process_the_floor_and_the_ratio() -> None:
    text = report.render(_results())
    assert "intake-api" in text and "total 12.00 ms per case" in text and "the total includes Kafka" in text
    assert "0.300 ms of CPU per message" in text and "40x the floor's per message" in text
    assert "50/s: 10.0 ms per case (refnet 4.0 + Kafka 6.0)" in text  # per rate, beside the cores
    assert "no baseline" in text


def test_report_without_cpu_figures_still_renders() -> None:
    text = report.render(_results(total_ms=None))
    assert "CPU per case in the backlog phase" not in text


def test_flame_failure_names_ptrace_and_what_to_do() -> None:
    said = flame.why_failed("Error: Permission Denied: Try running again with elevated permissions")
    assert "ptrace refused" in said and "ptrace_scope" in said
    said = "Error: Failed to find python version from target process\n\nStack backtrace:\n   0: anyhow::error"
    assert flame.why_failed(said) == "Error: Failed to find python version from target process"


def test_cpu_seconds_counts_a_servers_children_when_asked() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
                              "while time.process_time() < end: pass\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while cpu_seconds({"c": child.pid}).get("c", 0) < 0.25 and time.monotonic() < deadline:
            time.sleep(0.05)
        alone = cpu_seconds({"me": os.getpid()})["me"]
        tree = cpu_seconds({"me": os.getpid()}, with_children=("me",))["me"]
        assert tree - alone >= 0.25
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(flame.py_spy() is None, reason="py-spy is not installed (requirements-dev.txt)")
def test_flames_write_a_graph_per_process_and_report_the_ones_they_cannot(tmp_path: Path) -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: sum(range(1000))"])
    not_python = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.5)
        flames = flame.Flames(tmp_path / "flame")
        flames.start({"busy": busy.pid, "sleep": not_python.pid})
        time.sleep(1.5)
        problems = flames.stop()
    finally:
        for p in (busy, not_python):
            p.kill()
            p.wait()
    graph = tmp_path / "flame" / "busy.svg"
    if any("ptrace refused" in p for p in problems):  # a machine that refuses ptrace: said, not raised
        assert all("ptrace refused" in p for p in problems)
        return
    assert graph.exists() and "<svg" in graph.read_text()
    assert [p.split(":")[0] for p in problems] == ["no flame graph of sleep"]
