"""The bench's results as a table, JSON and an SVG plot, and where they stand against the issue's targets.

Pure functions of the results dict (unit-tested in tests/unit/bench); the shape of that dict:

    {"machine": {...}, "config": {...}, "database": "SQLite",
     "phases": [{"rate": 50, "refnet": {...}, "floor": {...}, "grpc_floor": {...}}, ...],
     "floor_saturation": {..., "cpu_ms_per_message": {process: ms}},
     "backlog": {..., "cpu": {"cases": n, "ms_per_case": {process: {"preload", "drain", "case"}},
                              "totals": {"refnet", "kafka", "total", "bench", ...}, "drain_totals": {...}}},
     "baseline": {"path": ..., "started_at": ..., "commit": ..., "figures": comparable_figures(earlier run)},
     "web": {"operators": 20, "pages": {"all": {...p50, p95, p99}, "/cases": {...}, ...}, "errors": {...},
             "live": {"measured": True, "event_ms": {...}, "shown_ms": {...}, ...}, ...}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from bench.stats import KAFKA, cpu_totals, ratio

Result = dict[str, Any]


def _get(data: Any, *path: str | int) -> Any:
    for key in path:
        if data is None:
            return None
        data = data.get(key) if isinstance(data, dict) else None
    return data


def phase_at(results: Result, rate: float) -> Result | None:
    return next((p for p in results.get("phases", []) if p.get("rate") == rate), None)


def max_sustained_rate(results: Result) -> float | None:
    """The highest rate kept up with; 0 when none was, None when no rate was measured."""
    phases = results.get("phases", [])
    rates = [p["rate"] for p in phases if _get(p, "refnet", "sustained")]
    return max(rates) if rates else (0 if phases else None)


def comparable_figures(results: Result) -> Result:
    """The figures a later run is compared with (None where a run did not measure one: an older bench had no
    CPU per case)."""
    at50 = phase_at(results, 50)
    return {
        "capacity_cps": _get(results, "backlog", "drain_rate_cps"),
        "cpu_ms_per_case": _get(results, "backlog", "cpu", "totals", "total"),
        "register_p99_ms_at_50": _get(at50, "refnet", "register_ms", "p99"),
        "notice_p50_ms_at_50": _get(at50, "refnet", "notice_ms", "p50"),
        "notice_p99_ms_at_50": _get(at50, "refnet", "notice_ms", "p99"),
        "emergency_p99_ms": _get(results, "backlog", "emergency_ms", "p99"),
        "floor_saturated_mps": _get(results, "floor_saturation", "throughput_mps"),
        "floor_cpu_ms_per_message": floor_cpu_per_message(results),
    }


def baseline_figures(earlier: Result, path: str) -> Result:
    """What `--baseline PATH` keeps of the earlier run: where it came from and its comparable figures."""
    return {"path": path, "started_at": earlier.get("started_at"), "commit": _get(earlier, "machine", "commit"),
            "load_start": _get(earlier, "machine", "load_start"), "figures": comparable_figures(earlier)}


COMPARED = (  # (label, key of comparable_figures, unit)
    ("capacity (backlog drain)", "capacity_cps", "cases/s"),
    ("total CPU per case (refnet + Kafka, backlog)", "cpu_ms_per_case", "ms"),
    ("RegisterCase p99 at 50/s", "register_p99_ms_at_50", "ms"),
    ("commit -> first notice p50 at 50/s", "notice_p50_ms_at_50", "ms"),
    ("commit -> first notice p99 at 50/s", "notice_p99_ms_at_50", "ms"),
    ("emergency p99 under the backlog", "emergency_p99_ms", "ms"),
    ("floor saturated", "floor_saturated_mps", "msg/s"),
    ("floor CPU per message", "floor_cpu_ms_per_message", "ms"),
)


def baseline_rows(results: Result) -> list[list[Any]]:
    """figure, the baseline's, this run's, this run as a multiple of the baseline; empty without a baseline."""
    base = _get(results, "baseline", "figures")
    if base is None:
        return []
    now = comparable_figures(results)
    return [[f"{label} ({unit})", base.get(key), now.get(key), ratio(now.get(key), base.get(key))]
            for label, key, unit in COMPARED]


def floor_cpu_per_message(results: Result) -> float | None:
    """The floor chain's CPU per message while saturated: its forwarders and Kafka (not the bench's source)."""
    ms: dict[str, float] = _get(results, "floor_saturation", "cpu_ms_per_message") or {}
    return sum(v for name, v in ms.items() if name.startswith("floor-") or name == KAFKA) if ms else None


def targets(results: Result) -> list[Result]:
    """One row per target (issue 20's, then those of issue 10 and of the web's issue 15 that still stand): the
    figure, the target, and whether it is met (None: not measured)."""
    at50 = phase_at(results, 50)
    notice = _get(at50, "refnet", "notice_ms")
    floor = _get(at50, "floor", "latency_ms")
    sustained = max_sustained_rate(results)
    capacity = _get(results, "backlog", "drain_rate_cps")
    base = _get(results, "baseline", "figures") or {}
    rows = [  # (name, value, unit, op, target, how the aim is written, from which issue)
        ("total CPU per case (refnet + Kafka, backlog)", _get(results, "backlog", "cpu", "totals", "total"), "ms",
         "<=", 13, None, "20"),
        ("capacity as a multiple of the baseline's", ratio(capacity, base.get("capacity_cps")), "x", ">=", 3,
         None, "20"),
        ("CPU per case as a multiple of the baseline's", ratio(_get(results, "backlog", "cpu", "totals", "total"),
                                                               base.get("cpu_ms_per_case")), "x", "<=", 1 / 3,
         "<= 1/3 x", "20"),
        ("RegisterCase p99 at 50/s", _get(at50, "refnet", "register_ms", "p99"), "ms", "<=", 20, None, "10, 20"),
        ("commit -> first notice p50 at 50/s", _get(notice, "p50"), "ms", "<=", 30, None, "10, 20"),
        ("commit -> first notice p99 at 50/s", _get(notice, "p99"), "ms", "<=", 100, None, "10, 20"),
        ("emergency p99 under the backlog", _get(results, "backlog", "emergency_ms", "p99"), "ms", "<=", 100,
         None, "20"),
        ("  p50 as a multiple of the floor", ratio(_get(notice, "p50"), _get(floor, "p50")), "x", "<=", 5, None,
         "10"),
        ("  p99 as a multiple of the floor", ratio(_get(notice, "p99"), _get(floor, "p99")), "x", "<=", 5, None,
         "10"),
        ("sustained throughput (highest rate kept up with)", sustained, "cases/s", ">=", 200, None, "10"),
        ("backlog drain rate (capacity)", capacity, "cases/s", ">=", 200, None, "10"),
        (f"web page p95 at {_get(results, 'web', 'operators') or 20} operators (issue 15)",
         _get(results, "web", "pages", "all", "p95"), "ms", "<=", 300, None, "15"),
        ("web live update commit -> shown p95 (issue 15)", _get(results, "web", "live", "shown_ms", "p95"), "ms",
         "<=", 1000, None, "15"),
    ]
    # A page that failed to load has no latency: any failed fetch misses the page target whatever the rest did.
    web_failed = bool(_get(results, "web", "errors"))
    out = []
    for name, value, unit, op, target, aim, issue in rows:
        met = None if value is None else (value >= target if op == ">=" else value <= target)
        if met and web_failed and name.startswith("web page"):
            met = False
        out.append({"name": name, "value": value, "unit": unit, "target": aim or f"{op} {target} {unit}",
                    "met": met, "issue": issue})
    return out


def cpu_lines(results: Result) -> list[str]:
    """CPU per case: per process in the backlog phase, the totals, the floor's per message and the ratio; empty
    when the backlog's CPU was not measured."""
    cpu = _get(results, "backlog", "cpu")
    if not cpu or not cpu.get("ms_per_case"):
        return []
    rows = [[name, ms.get("preload"), ms.get("drain"), ms.get("case")] for name, ms in cpu["ms_per_case"].items()]
    totals, drain = cpu.get("totals") or {}, cpu.get("drain_totals") or {}
    floor = floor_cpu_per_message(results)
    floor_ms = _get(results, "floor_saturation", "cpu_ms_per_message") or {}
    out = [f"CPU per case in the backlog phase (ms of CPU, process utime + stime, over its {cpu.get('cases')} cases: "
           "while the backlog was registered with the referral worker down, and from the worker's restart until "
           "every notice was out and every worker had read everything):", "",
           render_table(("process", "registering", "draining", "per case"), rows, digits=2), "",
           f"  refnet's processes {_fmt(totals.get('refnet'), 2)} + Kafka {_fmt(totals.get('kafka'), 2)} = total "
           f"{_fmt(totals.get('total'), 2)} ms per case (the whole machine's: the total includes Kafka); the drain "
           f"alone {_fmt(drain.get('total'), 2)} (refnet {_fmt(drain.get('refnet'), 2)} + Kafka "
           f"{_fmt(drain.get('kafka'), 2)})",
           "  not in any total: " + ", ".join(f"{name} {_fmt(totals.get(name), 2)}" for name in ("bench", "keycloak")
                                              if name in totals) + " (the bench is the load generator and reader)"]
    if not cpu.get("settled", True):
        out.append("  (the phase ended before every worker had read everything: a part of the work is missing)")
    if floor is not None:
        parts = ", ".join(f"{name} {_fmt(ms, 3)}" for name, ms in floor_ms.items() if name != "bench")
        out.append(f"  the floor saturated: {_fmt(floor, 3)} ms of CPU per message ({parts}; the bench as its source "
                   f"{_fmt(floor_ms.get('bench'), 3)}, not counted); refnet's total per case is "
                   f"{_fmt(ratio(totals.get('total'), floor), 0)}x the floor's per message")
    return out


def phase_cpu_line(phase: Result) -> str | None:
    """One rate's CPU: ms per case (total, refnet + Kafka) and, busiest first, cores and ms per case."""
    used, ms = _get(phase, "refnet", "cores_used"), _get(phase, "refnet", "cpu_ms_per_case") or {}
    if not used:
        return None
    head = f"  {phase['rate']:g}/s: "
    if ms:
        t = cpu_totals(ms)
        head += f"{t['total']:.1f} ms per case (refnet {t['refnet']:.1f} + Kafka {t['kafka']:.1f}); "
    return head + ", ".join(f"{name} {cores:.2f}" + (f" ({ms[name]:.1f} ms)" if name in ms else "")
                            for name, cores in list(used.items())[:6])


def web_lines(results: Result) -> list[str]:
    """The web phase as text: pages by path, the live update's delay, errors; empty when it did not run."""
    web = results.get("web")
    if not web:
        return []
    rows = [[path, s.get("count"), s.get("p50"), s.get("p95"), s.get("p99"), s.get("max")]
            for path, s in (web.get("pages") or {}).items()]
    out = [f"web front door: {web.get('operators')} signed-in operators ({', '.join(web.get('people') or [])}), "
           f"a page each every {_fmt(web.get('interval_s'))} s for {_fmt(web.get('seconds'), 0)} s: "
           f"{_fmt(web.get('pages_per_s'))} pages/s; sign-in through the identity provider's form p50 "
           f"{_fmt(_get(web, 'sign_in_ms', 'p50'), 0)} ms", "",
           render_table(("page", "fetches", "p50", "p95", "p99", "max"), rows)]
    if web.get("errors"):
        out.append("page errors: " + ", ".join(f"{k} x{v}" for k, v in web["errors"].items()))
    late = _get(web, "sender_late_ms", "p95")
    if late and late > 10:
        out.append(f"the load generator itself ran {late:.0f} ms late (p95): page latency counts from when a fetch "
                   "was due, so it includes that")
    live = web.get("live") or {}
    if not live.get("measured"):
        out.append("live update: not measured (no live endpoint answered)")
    else:
        e, s, c = live.get("event_ms") or {}, live.get("shown_ms") or {}, live.get("commit_ms") or {}
        out += [
            f"live update, {live.get('hand_offs')} hand-offs (a provider accepts / starts over gRPC; the operator's "
            f"case page {live.get('endpoint')} open): commit -> event seen p50 {_fmt(e.get('p50'), 0)} ms, "
            f"p95 {_fmt(e.get('p95'), 0)} ms, max {_fmt(e.get('max'), 0)} ms; -> shown (list re-fetched) p50 "
            f"{_fmt(s.get('p50'), 0)} ms, p95 {_fmt(s.get('p95'), 0)} ms; the api's answer p95 "
            f"{_fmt(c.get('p95'), 0)} ms",
        ]
        if live.get("errors"):
            out.append("  missed: " + ", ".join(f"{k} x{v}" for k, v in live["errors"].items()))
    cores = web.get("cores_used") or {}
    if cores:
        out.append("CPU meanwhile (cores, busiest first): "
                   + ", ".join(f"{name} {used:.2f}" for name, used in list(cores.items())[:6]))
    return out


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 1) -> str:
    """Columns of numbers aligned right, of words left."""
    cells = [list(headers)] + [[_fmt(v, digits) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(isinstance(row[i], int | float) or row[i] is None for row in rows) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def phase_rows(results: Result) -> list[list[Any]]:
    rows = []
    for p in results.get("phases", []):
        r, f, g = p.get("refnet", {}), p.get("floor", {}), p.get("grpc_floor", {})
        notice, floor = r.get("notice_ms", {}), f.get("latency_ms", {})
        rows.append([
            p["rate"], r.get("registered"), _get(r, "register_ms", "p50"), _get(r, "register_ms", "p99"),
            _get(g, "latency_ms", "p99"), notice.get("p50"), notice.get("p99"), floor.get("p50"), floor.get("p99"),
            ratio(notice.get("p50"), floor.get("p50")), ratio(notice.get("p99"), floor.get("p99")),
            _get(r, "full_ms", "p99"), r.get("throughput_cps"), r.get("drain_s"), r.get("sustained"),
        ])
    return rows


PHASE_HEADERS = ("rate/s", "cases", "Reg p50", "Reg p99", "health p99", "notice p50", "notice p99", "floor p50",
                 "floor p99", "x floor p50", "x floor p99", "all-3 p99", "notified/s", "drain s", "kept up")


def render(results: Result) -> str:
    """The whole report as text: per-rate figures, floor and backlog, then the targets."""
    m, c = results.get("machine", {}), results.get("config", {})
    settled = f" (after {m['quiet_wait_s']:.0f} s waiting for it to settle)" if m.get("quiet_wait_s") else ""
    out = [
        f"refnet bench {results.get('started_at', '')} at {m.get('commit', '?')}: {results.get('database', '?')}, "
        f"{m.get('cpus', '?')} CPUs, load average {_fmt(m.get('load_start'), 2)} at start{settled}, "
        f"{_fmt(m.get('load_end'), 2)} at end",
        f"floor: {c.get('floor_hops', '?')} Kafka hops (see bench/floor.py); latencies in ms; "
        "notice = intake commit -> first provider notice; all-3 = every need's provider notified",
    ]
    if results.get("phases") or not results.get("web"):  # `--only web`: no rates were offered
        out += ["", render_table(PHASE_HEADERS, phase_rows(results))]
    hops = [[p["rate"], name, h.get("p50"), h.get("p99")] for p in results.get("phases", [])
            for name, h in (_get(p, "refnet", "hops_ms") or {}).items()]
    if hops:
        out += ["", "where the time goes: commit -> first notice in four parts, cut where each relay sent (ms):", "",
                render_table(("rate/s", "part", "p50", "p99"), hops)]
    cpu = [line for p in results.get("phases", []) if (line := phase_cpu_line(p))]
    if cpu:
        out += ["", "CPU while each rate was offered and drained (cores, and ms of CPU per case; the machine has "
                f"{m.get('cpus', '?')}; busiest first):", *cpu]
    sat, backlog = results.get("floor_saturation"), results.get("backlog")
    if sat:
        out += ["", f"floor saturated: {_fmt(sat.get('throughput_mps'), 0)} msg/s over {sat.get('messages')} messages"]
    if backlog:
        e = backlog.get("emergency_ms", {})
        out += [
            "",
            f"backlog: {backlog.get('cases')} normal cases pre-loaded at {_fmt(backlog.get('register_rate'), 0)}/s "
            f"(RegisterCase p99 {_fmt(_get(backlog, 'register_ms', 'p99'))} ms), drained at "
            f"{_fmt(backlog.get('drain_rate_cps'), 0)} cases/s in {_fmt(backlog.get('drain_s'))} s",
            f"emergencies during the drain: {e.get('count', 0)}, commit -> first notice p50 {_fmt(e.get('p50'))} ms, "
            f"p99 {_fmt(e.get('p99'))} ms, max {_fmt(e.get('max'))} ms; backlog when sent: median "
            f"{_fmt(_get(backlog, 'backlog_at_send', 'p50'), 0)} cases",
        ]
        shares = backlog.get("emergency_hops_ms") or {}
        if shares:
            out.append("  its parts, p50 / p99 ms: " + ", ".join(
                f"{name} {_fmt(h.get('p50'))} / {_fmt(h.get('p99'))}" for name, h in shares.items()))
    web = web_lines(results)
    if web:
        out += ["", *web]
    cpu_text = cpu_lines(results)
    if cpu_text:
        out += ["", *cpu_text]
    base = results.get("baseline")
    if base:
        out += ["", f"against the baseline {base.get('path')} ({base.get('commit', '?')}, {base.get('started_at', '?')}"
                f", load {_fmt(base.get('load_start'), 2)} at start; - = not measured in that run):", "",
                render_table(("figure", "baseline", "this run", "x baseline"), baseline_rows(results), digits=2)]
    elif results.get("backlog"):
        out += ["", "no baseline (--baseline PATH: an earlier run's JSON): the multiples of it are not measured"]
    rows = [[t["name"], t["value"], t["target"], {True: "met", False: "MISSED", None: "not measured"}[t["met"]],
             t["issue"]] for t in targets(results)]
    out += ["", render_table(("target", "measured", "aim", "", "issue"), rows)]
    if results.get("notes"):
        out += ["", *(f"note: {n}" for n in results["notes"])]
    return "\n".join(out)


def write_json(results: Result, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**results, "targets": targets(results)}, indent=2, default=str) + "\n")


# -- the plot: latency against arrival rate, log scale, hand-written SVG (no plotting library) ----------

SERIES = (  # (label, path into a phase, colour, dashed)
    ("RegisterCase p50", ("refnet", "register_ms", "p50"), "#1f77b4", False),
    ("RegisterCase p99", ("refnet", "register_ms", "p99"), "#1f77b4", True),
    ("commit -> notice p50", ("refnet", "notice_ms", "p50"), "#d62728", False),
    ("commit -> notice p99", ("refnet", "notice_ms", "p99"), "#d62728", True),
    ("Kafka floor p50", ("floor", "latency_ms", "p50"), "#7f7f7f", False),
    ("Kafka floor p99", ("floor", "latency_ms", "p99"), "#7f7f7f", True),
)


def _duration(ms: float) -> str:
    return f"{ms:g} ms" if ms < 1000 else f"{ms / 1000:g} s"


def render_svg(results: Result, width: int = 760, height: int = 420) -> str:
    phases = results.get("phases", [])
    left, right, top, bottom = 60, 200, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for p in phases for _, path, _, _ in SERIES if (v := _get(p, *path)) and v > 0]
    low = 10 ** math.floor(math.log10(min(values))) if values else 1
    high = 10 ** math.ceil(math.log10(max(values))) if values else 1000
    high = max(high, low * 10)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / len(phases) if phases else 0)

    def y(v: float) -> float:
        return top + plot_h * (1 - (math.log10(v) - math.log10(low)) / (math.log10(high) - math.log10(low)))

    title = f"refnet latency by arrival rate ({results.get('database', '')}, {results.get('started_at', '')})"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="13">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>',
    ]
    decade = low
    while decade <= high:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(decade):.1f}" y2="{y(decade):.1f}" '
                     f'stroke="#ddd"/><text x="{left - 6}" y="{y(decade) + 4:.1f}" text-anchor="end">'
                     f'{_duration(decade)}</text>')
        decade *= 10
    for i, p in enumerate(phases):
        parts.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{p["rate"]:g}/s</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 12}" text-anchor="middle">arrival rate '
                 '(cases/s; floor: msg/s)</text>')
    for k, (label, path, colour, dashed) in enumerate(SERIES):
        points = [(x(i), y(v)) for i, p in enumerate(phases) if (v := _get(p, *path)) and v > 0]
        dash = ' stroke-dasharray="5,4"' if dashed else ""
        if len(points) > 1:
            coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in points]
        ly = top + 10 + 18 * k
        parts.append(f'<line x1="{width - right + 12}" x2="{width - right + 40}" y1="{ly}" y2="{ly}" '
                     f'stroke="{colour}" stroke-width="2"{dash}/><text x="{width - right + 46}" y="{ly + 4}">'
                     f'{escape(label)}</text>')
    emergency = _get(results, "backlog", "emergency_ms", "p99")
    if emergency:
        ly = top + 10 + 18 * len(SERIES) + 8
        parts.append(f'<text x="{width - right + 12}" y="{ly}">emergency p99 under the</text>'
                     f'<text x="{width - right + 12}" y="{ly + 14}">backlog: {emergency:.0f} ms</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
