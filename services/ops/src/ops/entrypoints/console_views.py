"""The console's pure presentation helpers: JSON-safe values, the report as CSV and chart, the period and
province a request asks for, and the small text and SVG summaries on the overview page."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from openpyxl import Workbook

import refnet_geo as geo
from ops.adapters import charts
from ops.adapters.scrape import ProcessView
from ops.domain.report import BY_LINE, NATIONAL_LINE, IndicatorReport, Period
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


CSV_COLUMNS = ["by", "code", "period_start", "period_end", "group", "indicator", "dimension", "value", "figure"]

# The spreadsheet speaks the hotlines' language: a sheet per indicator group, Vietnamese headers and labels
# (the code beside each label, so a figure can be matched to the CSV and the API).
SHEETS = {"calls": "Cuộc gọi", "cases": "Vụ việc", "referrals": "Chuyển gửi", "shelter": "Tạm lánh",
          "timing": "Thời gian"}
LABELS_VI = {
    "calls": "Số cuộc gọi", "cases": "Số vụ việc", "emergency_interventions": "Can thiệp khẩn cấp",
    "children_under_case_management": "Trẻ em được quản lý trường hợp",
    "referrals_made": "Chuyển gửi đã thực hiện", "referrals_accepted": "Chuyển gửi được tiếp nhận",
    "referrals_completed": "Chuyển gửi hoàn thành", "referrals_failed": "Chuyển gửi không thành công",
    "people_sheltered": "Số người được tạm lánh", "bed_nights": "Số đêm lưu trú",
    "minutes_to_acceptance": "Số phút đến khi được tiếp nhận",
    "minutes_to_service_start": "Số phút đến khi bắt đầu dịch vụ",
    "excluded_no_reporting_consent": "Vụ việc không đồng ý báo cáo (không tính)",
    "total": "Tổng số", "sex": "Giới tính", "age_band": "Nhóm tuổi", "child_adult": "Trẻ em / người lớn",
    "disability": "Khuyết tật", "topic": "Chủ đề", "channel": "Kênh tiếp nhận", "outcome": "Kết quả",
    "case_type": "Loại vụ việc (chính)", "sector": "Lĩnh vực dịch vụ", "provider_type": "Loại cơ quan",
    "shelter": "Cơ sở tạm lánh", "median": "Trung vị", "p90": "Phân vị 90", "referrals": "Số chuyển gửi đo",
    "female": "Nữ", "male": "Nam", "other": "Khác", "unknown": "Không rõ", "child": "Trẻ em", "adult": "Người lớn",
    "yes": "Có", "no": "Không",
}
XLSX_HEADERS = ["Chỉ số", "Mã chỉ số", "Phân tổ", "Mã phân tổ", "Nhóm", "Mã nhóm", "Số liệu"]


def _vi(code: str) -> str:
    return LABELS_VI.get(code, code.replace("_", " "))


def scope_words(report: IndicatorReport, names: dict[str, str]) -> str:
    """Whose figures these are, as the report says it (Vietnamese, then English)."""
    code = report.scope.code
    if not code:
        return "Toàn quốc / whole country"
    if code == NATIONAL_LINE:
        return "Đường dây 111 (quốc gia) / national line 111, by handling line"
    name = names.get(code, code)
    if report.scope.by == BY_LINE:
        return f"Đường dây của {name} (theo đường dây tiếp nhận) / {name}'s line, by handling line"
    return f"{name} (theo nơi xảy ra) / {name}, by place it happened"


def report_csv(report: IndicatorReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    head = [report.scope.by, report.scope.code or "national", report.period.start.isoformat(),
            report.period.end.isoformat()]
    for row in report.rows():
        writer.writerow([*head, *row])
    return out.getvalue()


def report_xlsx(report: IndicatorReport, names: dict[str, str]) -> bytes:
    """The report as the hotlines send it: a first sheet saying whose figures and which period, then a sheet per
    indicator group with Vietnamese headers (openpyxl)."""
    book = Workbook()
    about = book.active
    assert about is not None
    about.title = "Thông tin"
    about.append(["Báo cáo chỉ số refnet", scope_words(report, names)])
    about.append(["Từ ngày", report.period.start.isoformat()])
    about.append(["Đến ngày", report.period.end.isoformat()])
    about.append(["Theo", "đường dây tiếp nhận" if report.scope.by == BY_LINE else "nơi xảy ra"])
    about.append([_vi("excluded_no_reporting_consent"), report.excluded_cases])
    sheets = {}
    for group, title in SHEETS.items():
        sheet = book.create_sheet(title)
        sheet.append(XLSX_HEADERS)
        sheets[group] = sheet
    for group, indicator, dimension, value, figure in report.rows():
        number: float | str = figure
        if figure:
            number = float(figure) if "." in figure else int(figure)
        sheets[group].append([_vi(indicator), indicator, _vi(dimension), dimension, _vi(value) if value else "",
                              value, number])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def report_chart(report: IndicatorReport, names: dict[str, str]) -> str:
    bars: list[tuple[str, float]] = [(indicator.replace("_", " "), report.value(indicator)) for indicator in (
        "calls", "cases", "children_under_case_management", "emergency_interventions", "referrals_made",
        "referrals_completed", "referrals_failed", "people_sheltered", "bed_nights")]
    bars += [(f"referred: {sector}", n) for sector, n in report.breakdown("referrals_made", "sector").items()]
    bars += [(f"cases: {kind.replace('_', ' ')}", n) for kind, n in report.breakdown("cases", "case_type").items()]
    bars += [(f"cases: {sex}", n) for sex, n in report.breakdown("cases", "sex").items()]
    return charts.bar_chart(bars, f"{scope_words(report, names)}, {report.period.start} to {report.period.end}",
                            width=640)


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
