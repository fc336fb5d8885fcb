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

from refnet.intake.v1 import casework_service_pb2 as cw_pb
from refnet_platform.vocabulary import ACCESSIBILITY_CODES
from web.adapters.apis import Problem
from web.entrypoints.pages.operator_forms import Built, _int, checked, listed, problem
from web.i18n import translate

FOLLOW_UP_KINDS = (2, 1, 3, 4, 5)  # a phone call first: the usual one
RISKS = (1, 2, 3)
SERVICES = tuple(range(1, 14))  # refnet.common.v1.ServiceType, the caseload's included
DOMAINS = (1, 2, 3, 4, 5, 6)  # FunctionalDomain: seeing, hearing, walking, remembering, self-care, communicating
DIFFICULTIES = (1, 2, 3, 4)  # none, some, a lot, cannot do
ACCESSIBILITY = ACCESSIBILITY_CODES
REVIEW_OUTCOMES = (1, 2, 3)
LIST_FIELDS = frozenset({"needs", "accessibility"})
FOLLOW_UP_FIELDS = frozenset({"kind", "note", "client_request_id"})
ASSESSMENT_FIELDS = frozenset({"risk", "danger", "needs", "difficulties", "accessibility", "summary",
                               "client_request_id", *(f"wg_{d}" for d in DOMAINS)})


def flat_values(lists: Mapping[str, list[str]]) -> dict[str, str]:
    """One string per field: the last value, or every value comma-joined for the checkbox lists."""
    return {name: ",".join(v for v in values if v) if name in LIST_FIELDS else values[-1]
            for name, values in lists.items() if values}


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


# An api's field problem → the form's field, told with the field's label.

_API_FIELDS = {"kind": "kind", "note": "note", "risk_level": "risk", "immediate_danger": "danger", "needs": "needs",
               "accessibility_needs": "accessibility", "summary": "summary", "difficulties": "difficulties"}
_INDEXED = re.compile(r"\[\d+\]")
_LABELS = {"kind": "cw.follow.kind", "note": "cw.follow.note", "risk": "op.case.risk", "danger": "op.case.danger",
           "needs": "cw.assess.needs", "accessibility": "cw.assess.accessibility", "summary": "cw.assess.summary",
           "difficulties": "cw.assess.difficulties"}
# intake's reasons (intake.domain.casework's validation), in Vietnamese.
_REASONS_VI: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^at most (\d+) characters$"), "tối đa {0} ký tự"),
    (re.compile(r"^at most (\d+)$"), "tối đa {0} mục"),
    (re.compile(r"^is required\b.*$"), "bắt buộc"),
    (re.compile(r"^(?:this domain is )?listed twice$|^.* is listed twice$"), "bị chọn hai lần"),
    (re.compile(r"^must be one of .*$"), "không có trong danh mục"),
    (re.compile(r"^unknown or unspecified .*$"), "không có trong danh mục"),
    (re.compile(r"^is in the future$"), "không được ở tương lai"),
    (re.compile(r"^.*must be in the future$"), "phải là thời điểm sau bây giờ"),
)


def form_field(api_field: str | None, known: frozenset[str]) -> str | None:
    """The form's field for a field the api named (`accessibility_needs[1]` → `accessibility`,
    `difficulties[0].domain` → `difficulties`), when the form has it."""
    if not api_field:
        return None
    head = _INDEXED.sub("", api_field).split(".", 1)[0]
    name = _API_FIELDS.get(head)
    return name if name in known else None


def field_problem(found: Problem, known: frozenset[str]) -> tuple[Problem | None, dict[str, Problem]]:
    """An api's problem beside the form's field it names, in the person's words: "Ghi chú: tối đa 20000 ký tự"
    (English second: "Note: at most 20000 characters"); else the problem on top, as the api told it."""
    name = form_field(found.field, known)
    if name is None:
        return found, {}
    reason = found.message_en.partition(":")[2].strip()
    reason_vi = next((vi.format(*m.groups()) for pattern, vi in _REASONS_VI if (m := pattern.match(reason))),
                     f"không hợp lệ ({reason})" if reason else "không hợp lệ")
    label = _LABELS.get(name, name)
    return None, {name: Problem(name, f"{translate('vi', label)}: {reason_vi}.",
                                f"{translate('en', label)}: {reason or 'not valid'}.", found.status)}
