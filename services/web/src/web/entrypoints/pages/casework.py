"""Case work from the web (operators, supervisors): the case file shown on the case page, and its forms.

    /cases/{id}                      the case page (operator.py) shows the case file: `case_file(...)` below
    /cases/{id}/follow-ups/new       add a follow-up (AddFollowUp): kind and a note
    /cases/{id}/assessments/new      record an assessment (RecordAssessment): risk, danger, needs, the Washington
                                     Group domains, accessibility needs, a summary
    /cases/{id}/plan/new             record the case plan (RecordCasePlan): goals with their services, who is
                                     responsible and by when, filled with the current plan's (the new one replaces it)
    /cases/{id}/reviews/new          review the case (ReviewCase): outcome, note, next review

Each form carries a client_request_id made when it is shown, so a double submit records once. The file's sealed
text (notes, summaries, goals) is shown on the page to the signed-in case worker and goes nowhere else: no log
line, no URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from refnet.intake.v1 import casework_service_pb2 as cw_pb
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet_platform.caller import Role
from web.adapters.apis import problem_of
from web.entrypoints.pages import casework_forms as forms
from web.entrypoints.pages.common import (
    AppContext,
    area,
    draft,
    form_lists,
    keep_for_after_sign_in,
    problem_page,
    render_form,
    session_expired,
    token,
)
from web.entrypoints.pages.operator_forms import Built, listed

OPERATORS = (Role.OPERATOR, Role.SUPERVISOR)
DONE = ("follow_up", "assessment", "plan", "review")  # what the case page says was just recorded (?done=)


def _overdue(when: Any, now: datetime) -> bool:
    return bool(when.seconds) and when.ToDatetime(tzinfo=UTC) < now


def case_file_view(reply: cw_pb.GetCaseFileResponse, now: datetime) -> dict[str, Any]:
    """What the case page shows of the file: newest records first, each deadline with whether it has passed."""
    steps = [{"step": s, "overdue": s.status == 1 and _overdue(s.due_at, now)} for s in reply.steps]
    return {"file": reply, "steps": steps, "due_overdue": _overdue(reply.case.next_due_at, now),
            "assessments": sorted(reply.assessments, key=lambda a: -a.assessed_at.seconds),
            "follow_ups": sorted(reply.follow_ups, key=lambda f: -f.occurred_at.seconds),
            "reviews": sorted(reply.reviews, key=lambda r: -r.reviewed_at.seconds),
            "goals": [{"goal": g, "overdue": g.status == 1 and _overdue(g.due_at, now)} for g in reply.plan.goals]}


def _choices() -> dict[str, Any]:
    return {"kinds": forms.FOLLOW_UP_KINDS, "risks": forms.RISKS, "services": forms.SERVICES,
            "domains": forms.DOMAINS, "difficulties": forms.DIFFICULTIES, "accessibility": forms.ACCESSIBILITY,
            "outcomes": forms.REVIEW_OUTCOMES, "responsible_kinds": forms.RESPONSIBLE_KINDS,
            "goal_statuses": forms.GOAL_STATUSES, "goal_rows": forms.goal_rows, "listed": listed}


@dataclass(frozen=True)
class _Form:
    """One case-work form: its template, its fields, how its values become a request, which rpc takes it, and
    (the plan) what it starts from: the case file's current plan."""

    template: str
    known: frozenset[str]
    build: Callable[[Mapping[str, str], str, str], Built]
    rpc: str
    done: str
    prefill: Callable[[cw_pb.GetCaseFileResponse], dict[str, str]] | None = None


FOLLOW_UP = _Form("operator/follow_up.html", forms.FOLLOW_UP_FIELDS, forms.follow_up_request, "AddFollowUp",
                  "follow_up")
ASSESSMENT = _Form("operator/assessment.html", forms.ASSESSMENT_FIELDS, forms.assessment_request, "RecordAssessment",
                   "assessment")
PLAN = _Form("operator/plan.html", forms.PLAN_FIELDS, forms.plan_request, "RecordCasePlan", "plan",
             prefill=lambda found: forms.plan_values(found.plan))
REVIEW = _Form("operator/review.html", forms.REVIEW_FIELDS, forms.review_request, "ReviewCase", "review")


def routes(ctx: AppContext) -> list[Route]:
    def handler(kind: _Form) -> Any:
        @area(ctx, *OPERATORS)
        async def page(request: Request) -> Response:
            case_id = str(request.path_params["case_id"])
            if request.method == "GET":
                try:  # another province's case is not found here either
                    if kind.prefill is not None:
                        found = await ctx.apis.casework(token(request)).GetCaseFile(
                            cw_pb.GetCaseFileRequest(case_id=case_id))
                        case, values = found.case, kind.prefill(found)
                    else:
                        reply = await ctx.apis.intake(token(request)).GetCase(
                            intake_pb.GetCaseRequest(case_id=case_id))
                        case, values = reply.case, {}
                except grpc.RpcError as exc:
                    return problem_page(ctx, request, problem_of(exc))
                values = draft(request) or {**values, "client_request_id": str(uuid.uuid4())}
                return render_form(ctx, request, kind.template, values, case=case, **_choices())
            values = forms.flat_values(await form_lists(request))
            if session_expired(request):
                return keep_for_after_sign_in(request, values)
            values.setdefault("client_request_id", str(uuid.uuid4()))
            built = kind.build(values, case_id, values["client_request_id"])
            case = intake_pb.Case(case_id=case_id)
            if built.errors:
                return render_form(ctx, request, kind.template, values, errors=built.errors, case=case, **_choices())
            try:
                await getattr(ctx.apis.casework(token(request)), kind.rpc)(built.request)
            except grpc.RpcError as exc:
                found = problem_of(exc)
                if found.status == 404 or found.sign_in_again:
                    return problem_page(ctx, request, found)
                top, errors = forms.field_problem(found, kind.known, forms.sent_rows(values))
                return render_form(ctx, request, kind.template, values, top, errors, case=case, **_choices())
            return RedirectResponse(f"/cases/{case_id}?done={kind.done}#casefile", status_code=303)

        return page

    return [
        Route("/cases/{case_id:uuid}/follow-ups/new", handler(FOLLOW_UP), methods=["GET", "POST"]),
        Route("/cases/{case_id:uuid}/assessments/new", handler(ASSESSMENT), methods=["GET", "POST"]),
        Route("/cases/{case_id:uuid}/plan/new", handler(PLAN), methods=["GET", "POST"]),
        Route("/cases/{case_id:uuid}/reviews/new", handler(REVIEW), methods=["GET", "POST"]),
    ]
