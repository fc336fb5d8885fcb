"""Percentiles and rate figures for the bench (pure functions: unit-tested in tests/unit/bench)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), linearly interpolated between the closest ranks; None when empty."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not between 0 and 100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50, p99, max and mean of a sample (milliseconds, usually)."""
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": sum(values) / len(values) if values else None,
    }


def rate(times: Sequence[float]) -> float | None:
    """Events per second over the span of their timestamps (seconds); None with fewer than two."""
    if len(times) < 2:
        return None
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else None


def ratio(value: float | None, floor: float | None) -> float | None:
    """value / floor, or None when either is missing or the floor is zero."""
    if value is None or not floor:
        return None
    return value / floor


def _stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields after the command name: [0] is field 3 (state), [1] the parent's pid."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children_seconds(pid: int, tick: int) -> float:
    """CPU of a process's live children (utime + stime) and of those it has reaped (cutime + cstime)."""
    total = sum(int(f) for f in _stat(pid)[13:15]) / tick
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = _stat(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == pid:
                total += (int(fields[11]) + int(fields[12])) / tick
    return total


def cpu_seconds(pids: dict[str, int], with_children: tuple[str, ...] = ("postgres",)) -> dict[str, float]:
    """CPU time (user + system) each process has used so far, from /proc; processes gone are left out. The
    processes named in `with_children` count their children too (PostgreSQL's work is in its backends)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, pid in pids.items():
        try:
            fields = _stat(pid)
            used[name] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15 of stat)
            if name in with_children:
                used[name] += _children_seconds(pid, tick)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return used


def cores_used(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """Average cores each process kept busy between two cpu_seconds() readings, busiest first."""
    busy = {name: (after[name] - before[name]) / seconds for name in after if name in before and seconds > 0}
    return dict(sorted(busy.items(), key=lambda item: -item[1]))


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each process used between two cpu_seconds() readings (processes in both), busiest first."""
    used = {name: after[name] - before[name] for name in after if name in before}
    return dict(sorted(used.items(), key=lambda item: -item[1]))


def per_item_ms(seconds: dict[str, float], items: int) -> dict[str, float]:
    """CPU seconds per process as milliseconds per item (case or message); empty when there were none."""
    return {name: s * 1000 / items for name, s in seconds.items()} if items > 0 else {}


# The processes of a run that are not refnet's own: the broker (counted in the total, shown on its own),
# the identity provider and the bench itself (its load generator and event reader: never counted).
KAFKA, NOT_COUNTED = "kafka", ("bench", "keycloak")


def is_refnet(name: str) -> bool:
    return name != KAFKA and name not in NOT_COUNTED and not name.startswith("floor-")


def cpu_totals(ms: dict[str, float]) -> dict[str, float]:
    """refnet's processes (with the database server when there is one), Kafka, and total = the two together (the
    issue's whole-machine figure); the bench and Keycloak on their own, in no total."""
    refnet = sum(v for name, v in ms.items() if is_refnet(name))
    kafka = ms.get(KAFKA, 0.0)
    return {"refnet": refnet, "kafka": kafka, "total": refnet + kafka,
            **{name: ms[name] for name in NOT_COUNTED if name in ms}}


def backlog_cpu(preload_s: dict[str, float], drain_s: dict[str, float], cases: int) -> dict[str, object]:
    """The backlog phase's CPU per case, per process: while the backlog was registered (intake's share, with the
    referral worker down), while it drained (from the referral worker's restart until every case's work was
    done), and the two together; both over every case of the phase (the backlog and the emergencies sent
    during the drain), so that a process's two figures add up to its CPU per case."""
    preload, drain = per_item_ms(preload_s, cases), per_item_ms(drain_s, cases)
    both = {name: preload.get(name, 0.0) + drain.get(name, 0.0) for name in {*preload, *drain}}
    both = dict(sorted(both.items(), key=lambda item: -item[1]))
    return {
        "cases": cases, "preload_s": preload_s, "drain_s": drain_s,
        "ms_per_case": {name: {"preload": preload.get(name), "drain": drain.get(name), "case": ms}
                        for name, ms in both.items()},
        "totals": cpu_totals(both), "drain_totals": cpu_totals(drain),
    }
