"""Partner portal (agency staff): the referrals assigned to the person's agency, live, and each one's actions.

- `/referrals`: the inbox, emergencies on top, then open before closed, then newest; `/referrals/list` the list
  alone (what partner.js fetches on each event); `/referrals/events` Server-Sent Events fed by the person's own
  WatchReferrals stream (ids, statuses and versions only: nothing personal).
- `/referrals/<id>` (the link every provider notice carries): status, service, urgency, deadlines; the actions
  the status allows as plain forms with CSRF (accept, decline with a coded reason, start, progress, complete,
  report failure); once accepted, the survivor's contact (GetSurvivorContact: only what consent covers) with
  her safe times on top. Another agency's referral answers as not found (the api does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from refnet.common.v1 import types_pb2 as types
from refnet.referral.v1 import referral_service_pb2 as pb
from refnet_platform.caller import Role
from web.adapters.apis import Problem, problem_of
from web.entrypoints.pages.common import (
    AppContext,
    area,
    draft,
    form_values,
    keep_for_after_sign_in,
    lang,
    problem_page,
    render,
    render_form,
    session_expired,
    token,
)
from web.i18n import translate

log = logging.getLogger(__name__)

OPEN = frozenset({pb.REFERRAL_STATUS_REQUESTED, pb.REFERRAL_STATUS_ACCEPTED, pb.REFERRAL_STATUS_IN_SERVICE})
CONTACT_STATUSES = frozenset({pb.REFERRAL_STATUS_ACCEPTED, pb.REFERRAL_STATUS_IN_SERVICE})
MAX_PAGES = 4  # 4 x 500 referrals: an agency's whole history is never needed on one screen
CLOSED_SHOWN = 50  # every open referral, and this many closed ones (newest)
HEARTBEAT_S = 15.0
EN_DASH = "\u2013"

# The labels of each coded enum, by the catalog's group: partner.<group>.<code>.
ENUMS: dict[str, tuple[EnumTypeWrapper, str]] = {
    "status": (pb.ReferralStatus, "REFERRAL_STATUS_"),
    "decline": (pb.DeclineReason, "DECLINE_REASON_"),
    "failure": (pb.FailureReason, "FAILURE_REASON_"),
    "outcome": (pb.Outcome, "OUTCOME_"),
    "progress": (pb.Progress, "PROGRESS_"),
    "reason": (pb.ReferralReason, "REFERRAL_REASON_"),
    "service": (types.ServiceType, "SERVICE_TYPE_"),
    "risk": (types.RiskLevel, "RISK_LEVEL_"),
}


def code_of(group: str, value: int) -> str:
    """An enum value's code: DECLINE_REASON_NO_CAPACITY → "no_capacity" (as the apis' reason strings)."""
    enum, prefix = ENUMS[group]
    try:
        name = enum.Name(value)
    except ValueError:
        return "unspecified"
    return str(name).removeprefix(prefix).lower()


def code_key(group: str, value: int) -> str:
    return f"partner.{group}.{code_of(group, value)}"


def label(language: str, group: str, value: int) -> str:
    return translate(language, code_key(group, value))


def choices(language: str, group: str) -> list[tuple[int, str]]:
    """A select's options for a coded enum: every value but UNSPECIFIED, with its label."""
    enum, _ = ENUMS[group]
    return [(number, label(language, group, number)) for number in enum.values() if number]


def reason_label(language: str, reason: str) -> str:
    """A referral's reason string ("no_capacity", "not_accepted_in_time", "progress:...") in words."""
    if not reason:
        return ""
    code = reason.split(":", 1)[-1].strip().lower()
    for group in ("reason", "decline", "failure", "outcome", "progress"):
        key = f"partner.{group}.{code}"
        text = translate(language, key)
        if text != key:
            return text
    return code.replace("_", " ")


# Safe contact times.

def weekdays_text(language: str, weekdays: Sequence[int]) -> str:
    """ISO weekdays as a person reads them: vi "Thứ 2, 4, Chủ nhật", en "Mon, Wed, Sun"; none: every day."""
    days = sorted({d for d in weekdays if 1 <= d <= 7})
    if not days or len(days) == 7:
        return translate(language, "partner.contact.every_day")
    if language == "vi":
        numbered = [str(d + 1) for d in days if d <= 6]
        parts = [f"Thứ {', '.join(numbered)}"] if numbered else []
        if 7 in days:
            parts.append(translate(language, "partner.weekday.7"))
        return ", ".join(parts)
    return ", ".join(translate(language, f"partner.weekday.{d}") for d in days)


def safe_times_text(language: str, times: Iterable[Any]) -> list[str]:
    """Each safe window (refnet.intake.v1.SafeContactTime) as one line: "Thứ 2, 4 21:30-22:15" (an en dash)."""
    return [f"{weekdays_text(language, list(w.weekdays))} {w.start}{EN_DASH}{w.end}" for w in times]


# The inbox.

def inbox_order(referrals: Iterable[Any]) -> list[Any]:
    """Emergencies on top, then open before closed, then high risk, then newest; closed ones capped."""
    def key(r: Any) -> tuple[int, int, int, float]:
        requested = r.requested_at.seconds + r.requested_at.nanos / 1e9 if r.HasField("requested_at") else 0.0
        open_ = r.status in OPEN
        return (0 if r.emergency and open_ else 1, 0 if open_ else 1, -int(r.risk_level), -requested)

    ordered = sorted(referrals, key=key)
    open_rows = [r for r in ordered if r.status in OPEN]
    closed = [r for r in ordered if r.status not in OPEN][:CLOSED_SHOWN]
    return [*open_rows, *closed]


@dataclass(frozen=True)
class Row:
    """One referral as the pages show it (no personal data: ids, codes, times)."""

    referral_id: str
    short: str
    case_id: str
    status: str
    status_label: str
    service_label: str
    risk: str
    risk_label: str
    emergency: bool
    open: bool
    requested_at: Any
    accept_by: Any
    start_by: Any
    updated_at: Any
    attempt: int
    reason_label: str
    progress_label: str
    province_code: str


def row_of(language: str, r: Any) -> Row:
    return Row(
        referral_id=r.referral_id, short=short_id(r.referral_id), case_id=r.case_id,
        status=code_of("status", r.status), status_label=label(language, "status", r.status),
        service_label=label(language, "service", r.service_type), risk=code_of("risk", r.risk_level),
        risk_label=label(language, "risk", r.risk_level), emergency=r.emergency, open=r.status in OPEN,
        requested_at=r.requested_at if r.HasField("requested_at") else None,
        accept_by=r.accept_by if r.HasField("accept_by") else None,
        start_by=r.start_by if r.HasField("start_by") else None,
        updated_at=r.updated_at if r.HasField("updated_at") else None, attempt=r.attempt,
        reason_label=reason_label(language, r.reason),
        progress_label=label(language, "progress", r.last_progress) if r.last_progress else "",
        province_code=r.province_code)


def short_id(referral_id: str) -> str:
    """The id's last 8 characters: its start is a time (UUIDv7), the same for referrals made together."""
    return referral_id.replace("-", "")[-8:].upper()


# Actions.

@dataclass(frozen=True)
class Action:
    name: str
    method: str
    field: str | None = None  # the form's select, if the action carries a code
    group: str | None = None  # the code's enum group


ACTIONS: dict[str, Action] = {a.name: a for a in (
    Action("accept", "AcceptReferral"),
    Action("decline", "DeclineReferral", "decline_reason", "decline"),
    Action("start", "StartService"),
    Action("progress", "ReportProgress", "progress", "progress"),
    Action("complete", "CompleteReferral", "outcome", "outcome"),
    Action("failure", "ReportFailure", "failure_reason", "failure"),
)}

# What each status lets the agency do (the api has the last word; a refusal shows in plain words).
ALLOWED: dict[int, tuple[str, ...]] = {
    pb.REFERRAL_STATUS_REQUESTED: ("accept", "decline"),
    pb.REFERRAL_STATUS_ACCEPTED: ("start", "progress", "failure"),
    pb.REFERRAL_STATUS_IN_SERVICE: ("progress", "complete", "failure"),
}


class MissingChoice(ValueError):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def action_request(action: Action, referral_id: str, values: Mapping[str, str]) -> Any:
    """The api request for an action's form (request_id from the form, so a double submit changes nothing).
    Raises MissingChoice when the action's code is not chosen or not one of the enum's values."""
    request_id = values.get("request_id") or str(uuid.uuid4())
    code = 0
    if action.field and action.group:
        enum, _ = ENUMS[action.group]
        raw = values.get(action.field, "")
        code = int(raw) if raw.isdigit() else 0
        if not code or code not in enum.values():
            raise MissingChoice(action.field)
    if action.name == "accept":
        return pb.AcceptReferralRequest(referral_id=referral_id, client_request_id=request_id)
    if action.name == "decline":
        return pb.DeclineReferralRequest(referral_id=referral_id, client_request_id=request_id, reason=code)
    if action.name == "start":
        return pb.StartServiceRequest(referral_id=referral_id, client_request_id=request_id)
    if action.name == "progress":
        return pb.ReportProgressRequest(referral_id=referral_id, client_request_id=request_id, progress=code)
    if action.name == "complete":
        return pb.CompleteReferralRequest(referral_id=referral_id, client_request_id=request_id, outcome=code)
    return pb.ReportFailureRequest(referral_id=referral_id, client_request_id=request_id, reason=code)


def sse(event: str, data: Mapping[str, Any], event_id: str = "") -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def routes(ctx: AppContext) -> list[Route]:
    async def listed(request: Request) -> tuple[list[Row], Problem | None]:
        stub = ctx.apis.referral(token(request))
        found: list[Any] = []
        page_token = ""
        try:
            for _ in range(MAX_PAGES):
                reply = await stub.ListReferrals(pb.ListReferralsRequest(page_size=500, page_token=page_token))
                found.extend(reply.referrals)
                page_token = reply.next_page_token
                if not page_token:
                    break
        except grpc.RpcError as exc:
            return [], problem_of(exc)
        language = lang(request)
        return [row_of(language, r) for r in inbox_order(found)], None

    @area(ctx, Role.AGENCY)
    async def inbox(request: Request) -> Response:
        rows, problem = await listed(request)
        if problem is not None and not problem.retry:
            return problem_page(ctx, request, problem)
        # A lost connection keeps the page (and its live script), with the note and a retry, in the list.
        return render(ctx, request, "partner/inbox.html", rows=rows, problem=problem,
                      open_count=sum(1 for r in rows if r.open))

    @area(ctx, Role.AGENCY)
    async def inbox_list(request: Request) -> Response:
        rows, problem = await listed(request)
        return render(ctx, request, "partner/_list.html", 200 if problem is None else problem.status, rows=rows,
                      problem=problem, open_count=sum(1 for r in rows if r.open))

    @area(ctx, Role.AGENCY)
    async def events(request: Request) -> Response:
        stub = ctx.apis.referral(token(request))

        async def stream() -> AsyncIterator[str]:
            call = stub.WatchReferrals(pb.WatchReferralsRequest(include_open=False))
            queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)

            async def pump() -> None:
                try:
                    async for change in call:
                        await queue.put(change)
                except grpc.RpcError as exc:
                    await queue.put(exc)
                finally:
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.put_nowait(None)

            task = asyncio.create_task(pump())
            try:
                yield "retry: 3000\n\n"
                yield sse("ready", {})
                while True:
                    try:
                        item = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if item is None:
                        return
                    if isinstance(item, grpc.RpcError):
                        problem = problem_of(item)
                        yield sse("lost", {"status": problem.status})
                        return
                    r = item.referral
                    yield sse("referral", {"referral_id": r.referral_id, "status": code_of("status", r.status),
                                           "version": r.version, "emergency": r.emergency},
                              f"{r.referral_id}:{r.version}")
            finally:
                call.cancel()
                task.cancel()

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def contact_of(request: Request, referral: Any) -> tuple[Any | None, Problem | None]:
        if referral.status not in CONTACT_STATUSES:
            return None, None
        try:
            reply = await ctx.apis.referral(token(request)).GetSurvivorContact(
                pb.GetSurvivorContactRequest(referral_id=referral.referral_id))
        except grpc.RpcError as exc:
            return None, problem_of(exc)
        return reply, None

    def contact_context(request: Request, referral: Any, contact: Any | None, problem: Problem | None
                        ) -> dict[str, Any]:
        language = lang(request)
        return {"contact": contact, "contact_problem": problem,
                "safe_times": safe_times_text(language, contact.safe_times) if contact is not None else [],
                "contact_applies": referral.status in CONTACT_STATUSES, "referral_id": referral.referral_id}

    async def page(request: Request, referral: Any, values: Mapping[str, str] | None = None,
                   problem: Problem | None = None, errors: Mapping[str, Problem] | None = None,
                   done: str | None = None) -> Response:
        language = lang(request)
        contact, contact_problem = await contact_of(request, referral)
        context: dict[str, Any] = {
            "r": row_of(language, referral), "allowed": ALLOWED.get(referral.status, ()),
            "forms": [(name, ACTIONS[name].field) for name in ALLOWED.get(referral.status, ())],
            "choices": {a.name: choices(language, a.group) for a in ACTIONS.values() if a.group},
            "request_id": str(uuid.uuid4()), "done": done,
            **contact_context(request, referral, contact, contact_problem)}
        if values is not None or problem is not None or errors:
            return render_form(ctx, request, "partner/referral.html", values or {}, problem, errors,
                               known_fields=frozenset({"decline_reason", "progress", "outcome", "failure_reason"}),
                               **context)
        return render(ctx, request, "partner/referral.html", **context)

    async def fetch(request: Request, referral_id: str) -> Any:
        reply = await ctx.apis.referral(token(request)).GetReferral(pb.GetReferralRequest(referral_id=referral_id))
        return reply.referral

    @area(ctx, Role.AGENCY)
    async def detail(request: Request) -> Response:
        referral_id = request.path_params["referral_id"]
        try:
            referral = await fetch(request, referral_id)
        except grpc.RpcError as exc:
            return problem_page(ctx, request, problem_of(exc))
        kept = draft(request)
        done = request.query_params.get("done")
        return await page(request, referral, values=kept, done=done if done in ACTIONS else None)

    @area(ctx, Role.AGENCY)
    async def contact_box(request: Request) -> Response:
        referral_id = request.path_params["referral_id"]
        try:
            referral = await fetch(request, referral_id)
        except grpc.RpcError as exc:
            return problem_page(ctx, request, problem_of(exc))
        contact, problem = await contact_of(request, referral)
        return render(ctx, request, "partner/_contact.html", **contact_context(request, referral, contact, problem))

    @area(ctx, Role.AGENCY)
    async def act(request: Request) -> Response:
        referral_id, name = request.path_params["referral_id"], request.path_params["action"]
        action = ACTIONS.get(name)
        values = await form_values(request)
        if session_expired(request):
            return keep_for_after_sign_in(request, values, f"/referrals/{referral_id}")
        if action is None:
            return problem_page(ctx, request, Problem(None, "Không tìm thấy.", "Not found.", 404))
        try:
            call = action_request(action, referral_id, values)
        except MissingChoice as missing:
            choose = Problem(missing.field, translate("vi", "partner.refused.choose"),
                             translate("en", "partner.refused.choose"), 400)
            try:
                referral = await fetch(request, referral_id)
            except grpc.RpcError as exc:
                return problem_page(ctx, request, problem_of(exc))
            return await page(request, referral, values, errors={missing.field: choose})
        try:
            await getattr(ctx.apis.referral(token(request)), action.method)(call)
        except grpc.RpcError as exc:
            problem = problem_of(exc)
            if problem.status == 404 or problem.sign_in_again:
                return problem_page(ctx, request, problem)
            try:
                referral = await fetch(request, referral_id)
            except grpc.RpcError as again:
                return problem_page(ctx, request, problem_of(again))
            if problem.status == 409:  # in plain words: what the referral is now, and what could not be done
                vi, en = (translate(lng, "partner.refused.state", status=label(lng, "status", referral.status),
                                    action=translate(lng, f"partner.action.{name}").lower()) for lng in ("vi", "en"))
                problem = Problem(None, vi, en, 409)
            return await page(request, referral, values, problem)
        log.info("referral action", extra={"fields": {"referral_id": referral_id, "action": name}})
        return RedirectResponse(f"/referrals/{referral_id}?done={name}", status_code=303)

    return [
        Route("/referrals", inbox),
        Route("/referrals/list", inbox_list),
        Route("/referrals/events", events),
        Route("/referrals/{referral_id}", detail),
        Route("/referrals/{referral_id}/contact", contact_box),
        Route("/referrals/{referral_id}/{action}", act, methods=["POST"]),
    ]

