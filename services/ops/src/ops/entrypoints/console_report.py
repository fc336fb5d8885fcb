"""The console's indicator report: the /report page, its CSV, XLSX and SVG, and the API's report and the ids
behind one figure; each narrowed to the provinces the signed-in person covers."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from openpyxl import Workbook
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

import refnet_geo as geo
from ops.adapters import charts
from ops.domain import commands
from ops.domain.report import BY_LINE, BY_PLACE, NATIONAL_LINE, IndicatorReport, Period, line_code
from ops.entrypoints.console_views import jsonable, remit
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import InvalidArgument

if TYPE_CHECKING:
    from ops.entrypoints.console import Console

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

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


class Reports:
    """The report's routes; who asks, and the pages around it, are the console's."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bus = console.bus
        self.names = console.names

    def province(self, caller: Caller, code: str | None) -> str:
        """A person who is not national gets a report for one of their provinces, never the country's (nor the
        national line's)."""
        if (code or "").strip() == NATIONAL_LINE:
            if not caller.national:
                raise InvalidArgument("line", "the national line 111 is not one of your provinces")
            return NATIONAL_LINE
        chosen = self.console.province(caller, code)
        if not chosen and not caller.national:
            chosen = min(caller.provinces)
        return chosen

    def page(self, request: Request) -> HTMLResponse:
        report, problem = None, ""
        try:
            report = self.report(self.console.caller(request), request.query_params)
        except InvalidArgument as exc:
            problem = str(exc)
        return self.console.page(request, "report.html", report=report, problem=problem,
                                 chart=report_chart(report, self.names) if report else "",
                                 scope_words=scope_words(report, self.names) if report else "")

    def report(self, caller: Caller, params: Mapping[str, str]) -> IndicatorReport:
        """The report a request asks for: `line` (a hotline's number, 111 or a province code) or `place` (a
        province code), or `province` with `by` (line, the default, or place); `from` and `to`."""
        by = (params.get("by") or BY_LINE).strip()
        code = params.get("province")
        if params.get("line"):
            by, code = BY_LINE, line_code(params["line"])
        elif params.get("place"):
            by, code = BY_PLACE, params["place"]
        if by not in (BY_LINE, BY_PLACE):
            raise InvalidArgument("by", "is line or place")
        period = parse_period(params.get("from"), params.get("to"))
        province = self.province(caller, code)
        if by == BY_PLACE and province == NATIONAL_LINE:
            raise InvalidArgument("by", "111 is a line, not a place: ask for it by line")
        result: IndicatorReport = self.bus.handle(commands.BuildReport(period, province, within=remit(caller), by=by))
        return result

    @staticmethod
    def _file_name(report: IndicatorReport, suffix: str) -> str:
        return (f"refnet-report-{report.province_code or 'national'}-by-{report.scope.by}-{report.period.start}-"
                f"{report.period.end}.{suffix}")

    def csv(self, request: Request) -> Response:
        report = self.report(self.console.caller(request), request.query_params)
        return Response(report_csv(report), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{self._file_name(report, "csv")}"'})

    def xlsx(self, request: Request) -> Response:
        report = self.report(self.console.caller(request), request.query_params)
        return Response(report_xlsx(report, self.names), media_type=XLSX_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{self._file_name(report, "xlsx")}"'})

    def svg(self, request: Request) -> Response:
        report = self.report(self.console.caller(request), request.query_params)
        return Response(report_chart(report, self.names), media_type="image/svg+xml")

    def api(self, request: Request) -> Response:
        try:
            report = self.report(self.console.caller(request), request.query_params)
        except InvalidArgument as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(jsonable({
            "report": {"by": report.scope.by, "province_code": report.province_code, "period": report.period,
                       "scope": scope_words(report, self.names), "excluded_cases": report.excluded_cases,
                       "calls": report.calls, "cases": report.cases,
                       "emergency_interventions": report.emergency_interventions,
                       "children_under_case_management": report.children_under_case_management,
                       "people_sheltered": report.people_sheltered},
            "rows": report.rows()}))

    def api_ids(self, request: Request) -> Response:
        """The ids one figure counts (`indicator`, and `dimension` + `value` for one of its rows): the operations
        team's, to check a figure against the records; ids only."""
        caller = self.console.caller(request)
        if caller.role is not Role.OPS:
            return JSONResponse({"error": "only the operations team lists the ids behind a figure"}, status_code=403)
        params = request.query_params
        try:
            report = self.report(caller, params)
        except InvalidArgument as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        indicator = params.get("indicator", "")
        ids = report.ids(indicator, params.get("dimension", ""), params.get("value", ""))
        return JSONResponse({"indicator": indicator, "dimension": params.get("dimension", ""),
                             "value": params.get("value", ""), "ids": ids, "count": len(ids)})
