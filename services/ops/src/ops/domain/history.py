"""Past call logs and cases, as the hotlines keep them in spreadsheets: the column set `refnet import` reads, and
each row checked and turned into codes (no personal data: a row holds ids, codes and dates only).

One row per call or case. Headers may be in Vietnamese or English (either name of each column, any case); a
column not in the set is refused, so a name or phone column never travels. Places are read as they were on the
row's date: an old province code or name from before 1 July 2025 becomes the province it was merged into, and a
district is accepted only on a date before then. Every problem names the row's line and the column.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, time

import refnet_geo as geo
from ops.domain.report import HOTLINES, NATIONAL_LINE

# (key, English header, Vietnamese header, what it holds). The keys are the English headers.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("record", "Loại bản ghi", "call or case (cuộc gọi / vụ việc)"),
    ("id", "Mã bản ghi", "the row's id in the hotline's own records (with `line` and `record`, what makes a re-import "
                         "change nothing)"),
    ("date", "Ngày", "when the call came in or the case was registered: YYYY-MM-DD or YYYY-MM-DD HH:MM (Vietnam time)"),
    ("line", "Đường dây", "the line that handled it: its number (18001769, 1800.577.756), 111, or its province's code"),
    ("province", "Tỉnh", "where it happened (for a call, the caller's province): a code or a name, as on that date "
                         "(old names and codes from before 1 July 2025 are mapped); default: the line's province"),
    ("commune", "Xã", "commune code as on that date (optional)"),
    ("district", "Huyện", "district code, only for a date before 1 July 2025 (optional)"),
    ("channel", "Kênh", "calls: national_111, provincial_hotline, walk_in, partner_agency, commune "
                        "(default: the line's)"),
    ("topic", "Chủ đề", "calls: domestic_violence, child_protection, trafficking, gender_equality, counselling, "
                        "advice, wrong_number_or_spam, other"),
    ("outcome", "Kết quả", "calls: advice_given, counselling_given, referred_elsewhere, case_opened, case_follow_up, "
                           "no_action, disconnected; cases: how it was closed (resolved, transferred, no_contact, "
                           "survivor_declined, duplicate), empty while open"),
    ("duration_seconds", "Thời lượng (giây)", "calls: length in seconds (optional)"),
    ("case_id", "Mã vụ việc", "calls: the `id` of the case row the call opened or followed (optional)"),
    ("case_type", "Loại vụ việc", "cases: domestic_violence, other_gbv, sexual_abuse, child_abuse_or_neglect, "
                                  "trafficking, forced_labour, abandoned_or_wandering, child_special_circumstances, "
                                  "counselling_request; several separated by ';' (the first is the main type)"),
    ("sex", "Giới tính", "cases: female, male, other or unknown (nữ, nam, khác, không rõ)"),
    ("age_band", "Nhóm tuổi", "cases: 0-5, 6-11, 12-15, 16-17, 18-59, 60+ (or leave empty and say `child`)"),
    ("child", "Trẻ em", "cases: yes or no (có / không); default: from the age band"),
    ("disability", "Khuyết tật", "cases: yes, no or unknown (có / không / không rõ)"),
    ("risk", "Mức độ rủi ro", "cases: low, medium, high (thấp, trung bình, cao); default medium"),
    ("emergency", "Khẩn cấp", "cases: yes if it needed an emergency intervention"),
    ("closed_on", "Ngày kết thúc", "cases: when it was closed (with `outcome`)"),
    ("reporting_consent", "Đồng ý báo cáo", "cases: no if the survivor refused to be counted in reports (default yes)"),
)
# The template's example rows (keys as above): a past case of Quảng Ninh's line that happened in old Hải Dương,
# and the call that opened it.
EXAMPLES: tuple[dict[str, str], ...] = (
    {"record": "vụ việc", "id": "VV-2024-0001", "date": "2024-03-05 09:30", "line": "18001769",
     "province": "Hải Dương", "case_type": "domestic_violence", "sex": "nữ", "age_band": "18-59", "child": "không",
     "disability": "không rõ", "risk": "cao", "emergency": "có", "outcome": "resolved", "closed_on": "2024-04-20",
     "reporting_consent": "có"},
    {"record": "cuộc gọi", "id": "CG-2024-0107", "date": "2024-03-05 09:12", "line": "18001769",
     "channel": "provincial_hotline", "topic": "domestic_violence", "outcome": "case_opened",
     "duration_seconds": "540", "case_id": "VV-2024-0001"},
)
HEADER_KEYS: dict[str, str] = {}
for _key, _vi, _ in COLUMNS:
    HEADER_KEYS[_key] = _key
    HEADER_KEYS[_vi.casefold()] = _key

CALL_CHANNELS = ("national_111", "provincial_hotline", "walk_in", "partner_agency", "commune")
CALL_TOPICS = ("domestic_violence", "child_protection", "trafficking", "gender_equality", "counselling", "advice",
               "wrong_number_or_spam", "other")
CALL_OUTCOMES = ("advice_given", "counselling_given", "referred_elsewhere", "case_opened", "case_follow_up",
                 "no_action", "disconnected")
CLOSE_OUTCOMES = ("resolved", "transferred", "no_contact", "survivor_declined", "duplicate")
CASE_TYPES = ("domestic_violence", "other_gbv", "sexual_abuse", "child_abuse_or_neglect", "trafficking",
              "forced_labour", "abandoned_or_wandering", "child_special_circumstances", "counselling_request")
AGE_BANDS = ("0-5", "6-11", "12-15", "16-17", "18-59", "60+")
CHILD_BANDS = ("0-5", "6-11", "12-15", "16-17")
RISKS = ("low", "medium", "high")
WORDS = {"nữ": "female", "nam": "male", "khác": "other", "không rõ": "unknown", "có": "yes", "không": "no",
         "cuộc gọi": "call", "vụ việc": "case", "thấp": "low", "trung bình": "medium", "cao": "high",
         "true": "yes", "false": "no", "1": "yes", "0": "no", "x": "yes"}


@dataclass(frozen=True)
class RowProblem:
    line: str  # where the row is: "12" in a CSV, "Sheet1!12" in a workbook
    field: str
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.problem}"


class BadRow(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


@dataclass(frozen=True)
class HistoryCase:
    key: str
    at: datetime
    line: str  # the handling line: 111 or a province code
    province_code: str  # where it happened, 2025 code
    recorded_province_code: str  # as the row gave it (an old code stays old: its commune and district are too)
    commune_code: str
    district_code: str
    case_types: tuple[str, ...]
    sex: str
    age_band: str
    is_child: bool
    disability: str
    risk: str
    emergency: bool
    closed_at: datetime | None
    close_outcome: str
    reporting_consent: bool


@dataclass(frozen=True)
class HistoryCall:
    key: str
    at: datetime
    line: str
    province_code: str  # the line's province (for 111: the caller's), 2025 code
    recorded_province_code: str
    commune_code: str
    district_code: str
    channel: str
    topic: str
    outcome: str
    duration_seconds: int
    case_key: str


@dataclass
class History:
    cases: list[HistoryCase] = field(default_factory=list)
    calls: list[HistoryCall] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    rows: int = 0


def header_key(header: str) -> str | None:
    text = unicodedata.normalize("NFC", str(header or "")).strip()
    return HEADER_KEYS.get(text.casefold()) or HEADER_KEYS.get(text.lower())


def _word(value: object) -> str:
    text = unicodedata.normalize("NFC", "" if value is None else str(value)).strip().lower()
    return WORDS.get(text, text)


def _one_of(value: object, allowed: tuple[str, ...], name: str, default: str = "") -> str:
    word = _word(value).replace(" ", "_")
    if not word:
        if default:
            return default
        raise BadRow(name, "is required")
    if word not in allowed:
        raise BadRow(name, f"{value!r} is not one of {', '.join(allowed)}")
    return word


def _yes_no(value: object, name: str, default: bool | None) -> bool | None:
    word = _word(value)
    if not word or word == "unknown":
        return default
    if word not in ("yes", "no"):
        raise BadRow(name, f"{value!r} is not yes or no (có / không)")
    return word == "yes"


def _moment(value: object, name: str, required: bool = True) -> datetime | None:
    """A date or date and time in Vietnam time, as a spreadsheet cell or text gives it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadRow(name, "is required")
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time(12))
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text) if len(text) > 10 else datetime.combine(date.fromisoformat(text),
                                                                                          time(12))
        except ValueError:
            raise BadRow(name, f"{text!r} is not a date (YYYY-MM-DD or YYYY-MM-DD HH:MM)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=geo.VIETNAM_TZ)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFC", str(value)).strip()


def _line(value: object, now: date) -> str:
    text = _text(value)
    if not text:
        raise BadRow("line", "is required: the hotline's number, 111 or its province's code")
    digits = "".join(ch for ch in text if ch.isdigit())
    if digits in HOTLINES:
        return HOTLINES[digits]
    try:
        return geo.resolve_province(digits or text, on=now, field="line").code
    except geo.GeoError:
        raise BadRow("line", f"{text!r} is not a known hotline number, 111 or a province code") from None


def _province(value: object, on: datetime, default: str) -> str:
    text = _text(value)
    if not text:
        if not default:
            raise BadRow("province", "is required for the national line's records")
        return default
    try:
        if text.isdigit():
            return geo.resolve_province(text, on=on, field="province").code
        return geo.province_by_name(text).code
    except geo.GeoError as err:
        raise BadRow("province", err.problem) from None


def _place(row: dict[str, object], on: datetime, province: str) -> tuple[str, str, str]:
    """(province code as recorded, commune, district): an old province code is kept beside old commune and
    district codes, so they are checked (here and by intake) on the map of their date."""
    commune, district = _text(row.get("commune")), _text(row.get("district"))
    recorded = _text(row.get("province"))
    recorded = recorded if recorded.isdigit() else province
    try:
        geo.resolve_location(recorded, commune or None, district or None, on=on,
                             fields=("province", "commune", "district"))
    except geo.GeoError as err:
        raise BadRow(err.field, err.problem) from None
    return recorded, commune, district


def read_row(row: dict[str, object], source: str, today: date) -> HistoryCase | HistoryCall:
    """One row, checked: a HistoryCase or a HistoryCall, or BadRow naming the column."""
    record = _one_of(row.get("record"), ("call", "case"), "record")
    own_id = _text(row.get("id"))
    if not own_id:
        raise BadRow("id", "is required: the row's id in your own records (it keeps a re-import from counting twice)")
    at = _moment(row.get("date"), "date")
    assert at is not None
    if at.astimezone(geo.VIETNAM_TZ).date() > today:
        raise BadRow("date", "is in the future")
    line = _line(row.get("line"), today)
    line_province = "" if line == NATIONAL_LINE else line
    key = f"{source or line}:{record}:{own_id}"
    if record == "call":
        province = _province(row.get("province"), at, line_province)
        recorded, commune, district = _place(row, at, province)
        channel = _one_of(row.get("channel"), CALL_CHANNELS, "channel",
                          "national_111" if line == NATIONAL_LINE else "provincial_hotline")
        duration = _text(row.get("duration_seconds")) or "0"
        if not duration.isdigit():
            raise BadRow("duration_seconds", f"{duration!r} is not a whole number of seconds")
        case_id = _text(row.get("case_id"))
        if line_province and province != line_province:  # a call is the line's: the caller's commune is not its
            recorded, commune, district = line_province, "", ""
        return HistoryCall(key, at, line, line_province or province, recorded, commune, district, channel,
                           _one_of(row.get("topic"), CALL_TOPICS, "topic"),
                           _one_of(row.get("outcome"), CALL_OUTCOMES, "outcome"), int(duration),
                           f"{source or line}:case:{case_id}" if case_id else "")
    province = _province(row.get("province"), at, line_province)
    recorded, commune, district = _place(row, at, province)
    types = tuple(_one_of(t, CASE_TYPES, "case_type") for t in _text(row.get("case_type")).split(";") if t.strip())
    if not types:
        raise BadRow("case_type", "is required")
    band = _text(row.get("age_band"))
    if band and band not in AGE_BANDS:
        raise BadRow("age_band", f"{band!r} is not one of {', '.join(AGE_BANDS)}")
    child = _yes_no(row.get("child"), "child", None)
    if child is None:
        if not band:
            raise BadRow("child", "say yes or no, or give the age band")
        child = band in CHILD_BANDS
    elif band and child != (band in CHILD_BANDS):
        raise BadRow("child", f"does not agree with the age band {band}")
    disability = _yes_no(row.get("disability"), "disability", None)
    closed_at = _moment(row.get("closed_on"), "closed_on", required=False)
    outcome = _text(row.get("outcome"))
    if closed_at is not None or outcome:
        if closed_at is None:
            raise BadRow("closed_on", "is required with an outcome")
        outcome = _one_of(outcome, CLOSE_OUTCOMES, "outcome")
        if closed_at < at:
            raise BadRow("closed_on", "is before the case's date")
    return HistoryCase(
        key, at, line, province, recorded, commune, district, types,
        _one_of(row.get("sex"), ("female", "male", "other", "unknown"), "sex", "unknown"), band, child,
        "unknown" if disability is None else ("yes" if disability else "no"),
        _one_of(row.get("risk"), RISKS, "risk", "medium"), bool(_yes_no(row.get("emergency"), "emergency", False)),
        closed_at, outcome, bool(_yes_no(row.get("reporting_consent"), "reporting_consent", True)))


def read_history(rows: list[tuple[str, dict[str, object]]], source: str = "", today: date | None = None) -> History:
    """Every row checked; a problem per bad row (its first), and no id used twice in one file."""
    today = today or datetime.now(geo.VIETNAM_TZ).date()
    history = History(rows=len(rows))
    seen: dict[str, str] = {}
    for line, row in rows:
        try:
            record = read_row(row, source, today)
        except BadRow as err:
            history.problems.append(RowProblem(line, err.field, err.problem))
            continue
        if record.key in seen:
            history.problems.append(RowProblem(line, "id", f"the same {record.key.split(':')[1]} id as line "
                                                           f"{seen[record.key]}"))
            continue
        seen[record.key] = line
        (history.cases if isinstance(record, HistoryCase) else history.calls).append(record)  # type: ignore[arg-type]
    return history  # a call's case may be in an earlier import: intake checks its case_key
