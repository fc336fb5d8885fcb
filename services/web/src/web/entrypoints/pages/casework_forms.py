"""The case file's forms, pure parts: the choices they offer (follow-up kinds, risk, the services incl. the
caseload's, the Washington Group domains and answers, the accessibility codes intake knows), the forms' values →
CaseWorkService requests, and an api's field problem → the form's field, told in Vietnamese and English with the
field's own label.

What the web checks itself is only what a form cannot send without (a kind, a note, a risk); every other rule is
intake's, and its INVALID_ARGUMENT (`note: at most 20000 characters`) comes back beside the field it names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, time

from google.protobuf.timestamp_pb2 import Timestamp

from refnet.intake.v1 import casework_service_pb2 as cw_pb
from refnet_platform.vocabulary import ACCESSIBILITY_CODES
from web.adapters.apis import Problem
from web.entrypoints.pages.operator_forms import Built, _int, checked, listed, problem
from web.i18n import VIETNAM_TZ, translate, vntime

FOLLOW_UP_KINDS = (2, 1, 3, 4, 5)  # a phone call first: the usual one
RISKS = (1, 2, 3)
SERVICES = tuple(range(1, 14))  # refnet.common.v1.ServiceType, the caseload's included
DOMAINS = (1, 2, 3, 4, 5, 6)  # FunctionalDomain: seeing, hearing, walking, remembering, self-care, communicating
DIFFICULTIES = (1, 2, 3, 4)  # none, some, a lot, cannot do
ACCESSIBILITY = ACCESSIBILITY_CODES
REVIEW_OUTCOMES = (1, 2, 3)  # ReviewOutcome: continue, revise, ready to close
RESPONSIBLE_KINDS = (1, 2)  # ResponsibleKind: a person, an agency
GOAL_STATUSES = (1, 2, 3)  # GoalStatus: open, achieved, dropped
MAX_GOALS = 30  # intake's
BLANK_GOALS = 2  # rows offered beyond the current plan's goals
GOAL_PARTS = ("description", "services", "responsible_kind", "responsible_id", "due", "status")
LIST_FIELDS = frozenset({"needs", "accessibility"})
FOLLOW_UP_FIELDS = frozenset({"kind", "note", "client_request_id"})
ASSESSMENT_FIELDS = frozenset({"risk", "danger", "needs", "difficulties", "accessibility", "summary",
                               "client_request_id", *(f"wg_{d}" for d in DOMAINS)})
REVIEW_FIELDS = frozenset({"outcome", "note", "next_review", "client_request_id"})
PLAN_FIELDS = frozenset({"goals", "review_due", "rows", "client_request_id",
                         *(f"goal_{i}_{part}" for i in range(MAX_GOALS) for part in GOAL_PARTS)})
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def flat_values(lists: Mapping[str, list[str]]) -> dict[str, str]:
    """One string per field: the last value, or every value comma-joined for the checkbox lists."""
    return {name: ",".join(v for v in values if v) if name in LIST_FIELDS or name.endswith("_services")
            else values[-1] for name, values in lists.items() if values}


def _end_of_day(text: str) -> Timestamp | None:
    """A date as a date field sends it (YYYY-MM-DD): the end of that day in Vietnam time; None if not a date."""
    if not DATE.match(text):
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(datetime.combine(day, time(23, 59, 59), VIETNAM_TZ).astimezone(UTC))
    return stamp


def _date(values: Mapping[str, str], name: str, errors: dict[str, Problem]) -> Timestamp | None:
    text = str(values.get(name, "")).strip()
    if not text:
        return None
    stamp = _end_of_day(text)
    if stamp is None:
        errors[name] = problem(name, "cw.err.date")
    return stamp


def follow_up_request(values: Mapping[str, str], case_id: str, request_id: str) -> Built:
    errors: dict[str, Problem] = {}
    kind = _int(values.get("kind"))
    if kind not in FOLLOW_UP_KINDS:
        errors["kind"] = problem("kind", "cw.err.kind")
    note = str(values.get("note", "")).strip()
    if not note:
        errors["note"] = problem("note", "cw.err.note")
    if errors:
        return Built(None, errors)
    return Built(cw_pb.AddFollowUpRequest(client_request_id=request_id, case_id=case_id, kind=kind, note=note))


def assessment_request(values: Mapping[str, str], case_id: str, request_id: str) -> Built:
    errors: dict[str, Problem] = {}
    risk = _int(values.get("risk"))
    if risk not in RISKS:
        errors["risk"] = problem("risk", "op.err.risk")
    if errors:
        return Built(None, errors)
    request = cw_pb.RecordAssessmentRequest(
        client_request_id=request_id, case_id=case_id, risk_level=risk, immediate_danger=checked(values, "danger"),
        needs=[n for v in listed(values, "needs") if (n := _int(v)) in SERVICES],
        accessibility_needs=[code for code in listed(values, "accessibility") if code in ACCESSIBILITY],
        summary=str(values.get("summary", "")).strip())
    for domain in DOMAINS:  # only the domains asked: a blank select is "not asked"
        difficulty = _int(values.get(f"wg_{domain}"))
        if difficulty in DIFFICULTIES:
            request.difficulties.add(domain=domain, difficulty=difficulty)
    return Built(request)


def review_request(values: Mapping[str, str], case_id: str, request_id: str) -> Built:
    errors: dict[str, Problem] = {}
    outcome = _int(values.get("outcome"))
    if outcome not in REVIEW_OUTCOMES:
        errors["outcome"] = problem("outcome", "cw.err.outcome")
    next_review = _date(values, "next_review", errors)
    if errors:
        return Built(None, errors)
    request = cw_pb.ReviewCaseRequest(client_request_id=request_id, case_id=case_id, outcome=outcome,
                                      note=str(values.get("note", "")).strip())
    if next_review is not None:  # intake asks for it unless the case is ready to close
        request.next_review_at.CopyFrom(next_review)
    return Built(request)


def goal_rows(values: Mapping[str, str]) -> int:
    """How many goal rows the plan form shows (kept in a hidden field across a re-render)."""
    rows = _int(values.get("rows")) or BLANK_GOALS
    return max(1, min(rows, MAX_GOALS))


def _row_filled(values: Mapping[str, str], row: int) -> bool:
    return any(str(values.get(f"goal_{row}_{part}", "")).strip() for part in GOAL_PARTS if part != "status")


def sent_rows(values: Mapping[str, str]) -> list[int]:
    """The form's rows sent as goals, in order (a blank row is left out): goals[i] is row sent_rows()[i]."""
    return [row for row in range(goal_rows(values)) if _row_filled(values, row)]


def plan_request(values: Mapping[str, str], case_id: str, request_id: str) -> Built:
    errors: dict[str, Problem] = {}
    request = cw_pb.RecordCasePlanRequest(client_request_id=request_id, case_id=case_id)
    review_due = _date(values, "review_due", errors)
    if review_due is not None:
        request.review_due_at.CopyFrom(review_due)
    rows = sent_rows(values)
    if not rows:
        errors["goals"] = problem("goals", "cw.err.goals")
    for row in rows:
        name = f"goal_{row}_"
        goal = request.goals.add(description=str(values.get(name + "description", "")).strip(),
                                 services=[n for v in listed(values, name + "services") if (n := _int(v)) in SERVICES],
                                 responsible_id=str(values.get(name + "responsible_id", "")).strip())
        kind = _int(values.get(name + "responsible_kind"))
        if kind in RESPONSIBLE_KINDS:
            goal.responsible_kind = kind
        status = _int(values.get(name + "status"))
        goal.status = status if status in GOAL_STATUSES else 1
        due = _date(values, name + "due", errors)
        if due is not None:
            goal.due_at.CopyFrom(due)
    if errors:
        return Built(None, errors)
    return Built(request)


def plan_values(plan: cw_pb.CasePlan) -> dict[str, str]:
    """The plan form filled with the current plan's goals (a new plan replaces it), and blank rows after them."""
    values: dict[str, str] = {"rows": str(min(len(plan.goals) + BLANK_GOALS, MAX_GOALS))}
    if plan.review_due_at.seconds:
        values["review_due"] = vntime(plan.review_due_at, "%Y-%m-%d")
    for row, goal in enumerate(plan.goals[:MAX_GOALS]):
        name = f"goal_{row}_"
        values.update({name + "description": goal.description, name + "responsible_id": goal.responsible_id,
                       name + "services": ",".join(str(s) for s in goal.services),
                       name + "responsible_kind": str(goal.responsible_kind) if goal.responsible_kind else "",
                       name + "status": str(goal.status or 1),
                       name + "due": vntime(goal.due_at, "%Y-%m-%d")})
    return values


# An api's field problem → the form's field, told with the field's label.

_API_FIELDS = {"kind": "kind", "note": "note", "risk_level": "risk", "immediate_danger": "danger", "needs": "needs",
               "accessibility_needs": "accessibility", "summary": "summary", "difficulties": "difficulties",
               "outcome": "outcome", "next_review_at": "next_review", "review_due_at": "review_due", "goals": "goals"}
_GOAL_PARTS = {"description": "description", "services": "services", "responsible_kind": "responsible_kind",
               "responsible_id": "responsible_id", "due_at": "due", "status": "status"}
_GOAL = re.compile(r"^goals\[(\d+)\]\.([a-z_]+)")
_INDEXED = re.compile(r"\[\d+\]")
_LABELS = {"kind": "cw.follow.kind", "note": "cw.follow.note", "risk": "op.case.risk", "danger": "op.case.danger",
           "needs": "cw.assess.needs", "accessibility": "cw.assess.accessibility", "summary": "cw.assess.summary",
           "difficulties": "cw.assess.difficulties", "outcome": "cw.review.outcome", "next_review": "cw.review.next",
           "review_due": "cw.plan.review_due", "goals": "cw.plan.goals"}
# intake's reasons (intake.domain.casework's validation), in Vietnamese.
_REASONS_VI: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^at most (\d+) characters$"), "tối đa {0} ký tự"),
    (re.compile(r"^at most (\d+)$"), "tối đa {0} mục"),
    (re.compile(r"^is required unless the case is ready to close$"), "bắt buộc, trừ khi ca đã sẵn sàng đóng"),
    (re.compile(r"^is required\b.*$"), "bắt buộc"),
    (re.compile(r"^(?:this domain is )?listed twice$|^.* is listed twice$"), "bị chọn hai lần"),
    (re.compile(r"^must be one of .*$"), "không có trong danh mục"),
    (re.compile(r"^unknown or unspecified .*$"), "không có trong danh mục"),
    (re.compile(r"^is in the future$"), "không được ở tương lai"),
    (re.compile(r"^.*must be in the future$"), "phải là một ngày sắp tới"),
)


def form_field(api_field: str | None, known: frozenset[str], rows: list[int] | None = None) -> str | None:
    """The form's field for a field the api named (`accessibility_needs[1]` → `accessibility`,
    `difficulties[0].domain` → `difficulties`, `goals[1].due_at` → the due date of the plan form's row that was
    sent second: `rows` are the rows sent), when the form has it."""
    if not api_field:
        return None
    goal = _GOAL.match(api_field)
    if goal and rows is not None and int(goal.group(1)) < len(rows) and goal.group(2) in _GOAL_PARTS:
        row_field = f"goal_{rows[int(goal.group(1))]}_{_GOAL_PARTS[goal.group(2)]}"
        return row_field if row_field in known else None
    name = _API_FIELDS.get(_INDEXED.sub("", api_field).split(".", 1)[0])
    return name if name in known else None


def _label(lang: str, name: str) -> str:
    goal = re.match(r"^goal_(\d+)_([a-z_]+)$", name)
    if goal:
        return translate(lang, "cw.plan.goal_field", n=str(int(goal.group(1)) + 1),
                         field=translate(lang, f"cw.plan.{goal.group(2)}"))
    return translate(lang, _LABELS.get(name, name))


def field_problem(found: Problem, known: frozenset[str], rows: list[int] | None = None
                  ) -> tuple[Problem | None, dict[str, Problem]]:
    """An api's problem beside the form's field it names, in the person's words: "Ghi chú: tối đa 20000 ký tự"
    (English second: "Note: at most 20000 characters"); else the problem on top, as the api told it."""
    name = form_field(found.field, known, rows)
    if name is None:
        return found, {}
    reason = found.message_en.partition(":")[2].strip()
    reason_vi = next((vi.format(*m.groups()) for pattern, vi in _REASONS_VI if (m := pattern.match(reason))),
                     f"không hợp lệ ({reason})" if reason else "không hợp lệ")
    return None, {name: Problem(name, f"{_label('vi', name)}: {reason_vi}.",
                                f"{_label('en', name)}: {reason or 'not valid'}.", found.status)}
