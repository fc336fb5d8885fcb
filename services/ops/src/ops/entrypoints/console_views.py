"""The console's pure presentation helpers: JSON-safe values, the report as CSV and chart, the period and
province a request asks for, and the small text and SVG summaries on the overview page."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import refnet_geo as geo
from ops.adapters import charts
from ops.adapters.scrape import ProcessView
from ops.domain.report import IndicatorReport, Period
from refnet_platform.errors import InvalidArgument


def province_names() -> dict[str, str]:
    return {p.code: p.name for p in geo.provinces()}


def jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    return value


def report_csv(report: IndicatorReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["province_code", "period_start", "period_end", "indicator", "breakdown", "value"])
    for indicator, breakdown, value in report.rows():
        writer.writerow([report.province_code or "national", report.period.start.isoformat(),
                         report.period.end.isoformat(), indicator, breakdown, value])
    return out.getvalue()


def report_chart(report: IndicatorReport, names: dict[str, str]) -> str:
    where = names.get(report.province_code, report.province_code) if report.province_code else "Việt Nam"
    bars: list[tuple[str, float]] = [("calls", report.calls), ("cases", report.cases),
                                     ("children under case management", report.children_under_case_management),
                                     ("emergency interventions", report.emergency_interventions),
                                     ("people sheltered", report.people_sheltered)]
    bars += [(f"referred: {sector}", counts.made) for sector, counts in report.referrals_by_sector.items()]
    bars += [(f"cases: {kind.replace('_', ' ')}", n) for kind, n in sorted(report.cases_by_type.items())]
    return charts.bar_chart(bars, f"{where}, {report.period.start} to {report.period.end}", width=640)


def parse_period(start: str | None, end: str | None, today: date | None = None) -> Period:
    today = today or datetime.now(geo.VIETNAM_TZ).date()
    try:
        end_day = date.fromisoformat(end) if end else today
    except ValueError:
        raise InvalidArgument("to", "is not a date (YYYY-MM-DD)") from None
    try:
        start_day = date.fromisoformat(start) if start else end_day - timedelta(days=29)
    except ValueError:
        raise InvalidArgument("from", "is not a date (YYYY-MM-DD)") from None
    if end_day < start_day:
        raise InvalidArgument("to", "is before from")
    return Period(start_day, end_day)


def parse_province(code: str | None, names: dict[str, str]) -> str:
    code = (code or "").strip()
    if code in ("", "all", "national"):
        return ""
    if code not in names:
        raise InvalidArgument("province", f"{code!r} is not a province code")
    return code


def ago(moment: datetime | None) -> str:
    if moment is None:
        return ""
    seconds = (datetime.now(UTC) - moment).total_seconds()
    return duration(seconds) + " ago"


def duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def sparkline(view: ProcessView) -> str:
    # Everything the process did: records consumed and produced, gRPC calls answered.
    rates = [view.history.get(key, []) for key in ("consumed", "produced", "grpc")]
    values = [sum(step) for step in zip(*rates, strict=True)][-40:]
    if not values:
        return ""
    top = max(max(values), 1e-9)
    points = " ".join(f"{i * 120 / max(len(values) - 1, 1):.1f},{22 - 20 * v / top:.1f}" for i, v in enumerate(values))
    return (f'<svg class="spark" width="120" height="24" viewBox="0 0 120 24"><polyline fill="none" '
            f'stroke="#2563eb" stroke-width="1.5" points="{points}"/></svg>')
