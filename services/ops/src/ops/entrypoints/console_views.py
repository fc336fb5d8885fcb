"""The console's pure presentation helpers: JSON-safe values, the remit and province a request is narrowed to,
and the small text and SVG summaries on the overview page (the report's are in console_report.py)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import refnet_geo as geo
from ops.adapters.scrape import ProcessView
from refnet_platform.caller import Caller
from refnet_platform.errors import InvalidArgument


def province_names() -> dict[str, str]:
    return {p.code: p.name for p in geo.provinces()}


def remit(caller: Caller) -> frozenset[str] | None:
    """The provinces a person's questions are narrowed to; None for everyone (national, operations team)."""
    return None if caller.national else frozenset(caller.provinces)


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
