"""Operator workspace (operators, supervisors): log a call, open a case (with a preview of where each need goes),
follow the case's referrals live, and the supervisors' escalation queue.

    /cases                  the workspace: my (a supervisor: my provinces') open cases due first, paged (?page=),
                            recent cases, find by id, log a call, open a case
    /calls/new              log a call (LogCall), or save it and open a case with it
    /cases/new              open a case: preview (RankProviders per consented need), save (RegisterCase)
    /cases/{id}             the case file (casework.py: steps, assessments, plan, follow-ups, reviews, its forms)
                            and its referrals, escalations first; live through /cases/{id}/events
    /cases/{id}/referrals   the referral list alone (what operator.js swaps in on each event)
    /cases/{id}/events      server-sent events: the person's WatchNotices for the case + ListReferrals each second
    /places?q=              place autocompletion over the 2025 units, old names mapped (JSON)
    /escalations            supervisors: ListEscalations for their provinces, AssignProvider
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

import refnet_geo as geo
from refnet.intake.v1 import casework_service_pb2 as cw_pb
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import types_pb2 as intake_types
from refnet.notifications.v1 import notifications_service_pb2 as notifications_pb
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet_platform.caller import Role
from web.adapters.apis import Problem, problem_of
from web.entrypoints.pages import casework
from web.entrypoints.pages import operator_forms as forms
from web.entrypoints.pages.common import (
    AppContext,
    area,
    caller,
    draft,
    form_lists,
    keep_for_after_sign_in,
    problem_page,
    render,
    render_form,
    session_expired,
    token,
)
from web.entrypoints.pages.operator_live import (
    case_events,
    provider_names,
    referral_view,
)

RECENT_KEY = "operator.recent"
RECENT_MAX = 20
CASE_LIST_MAX = 50  # a page of the case list (the next one through ?page=<intake's page token>)
OPERATORS = (Role.OPERATOR, Role.SUPERVISOR)


def _now() -> datetime:
    return datetime.now(UTC)


def _choices() -> dict[str, Any]:
    return {"channels": forms.CHANNELS, "topics": forms.TOPICS, "outcomes": forms.OUTCOMES,
            "case_types": forms.CASE_TYPES, "risks": forms.RISKS, "sexes": forms.SEXES, "givers": forms.GIVERS,
            "legal_bases": forms.LEGAL_BASES,
            "weekdays": forms.WEEKDAYS, "services": forms.SERVICES, "listed": forms.listed,
            "checked": forms.checked}


def _provinces_of(request: Request) -> list[Any]:
    """The provinces the person may pick: their own, or all 34 for the national line."""
    person = caller(request)
    if person.national:
        return sorted(geo.provinces(), key=lambda p: p.name)
    return [geo.resolve_province(code) for code in sorted(person.provinces)]


def _remember(request: Request, case_id: str) -> None:
    recent = [c for c in request.session.get(RECENT_KEY, []) if c[0] != case_id]
    request.session[RECENT_KEY] = [[case_id, int(time.time())], *recent][:RECENT_MAX]


def _problems(found: Problem, known: frozenset[str]) -> tuple[Problem | None, dict[str, Problem]]:
    """An api's problem next to the form field it names (mapped from the api's name), else on top."""
    name = forms.form_field(found.field)
    if name is not None and name in known:
        return None, {name: found}
    return found, {}


def routes(ctx: AppContext) -> list[Route]:
    @area(ctx, *OPERATORS)
    async def workspace(request: Request) -> Response:
        opened = [(case_id, at) for case_id, at in request.session.get(RECENT_KEY, [])]
        from_feed: list[tuple[str, Any]] = []
        try:
            reply = await ctx.apis.notifications(token(request)).ListNotices(
                notifications_pb.ListNoticesRequest(page_size=100))
            seen = {case_id for case_id, _ in opened}
            for notice in reply.notices:
                if notice.case_id and notice.case_id not in seen:
                    seen.add(notice.case_id)
                    from_feed.append((notice.case_id, notice.created_at))
        except grpc.RpcError:
            pass  # the feed is a convenience here: the workspace works without it
        find_error = {"empty": "op.err.case_id", "format": "op.err.case_id_format"}.get(
            request.query_params.get("find", ""))
        supervisor = caller(request).role is Role.SUPERVISOR
        # An operator's own open cases, a supervisor's provinces' open ones: what is due first on top.
        page_token = request.query_params.get("page", "")[:500]  # intake's opaque keyset token: ids, no names
        next_page = ""
        try:
            listed = await ctx.apis.casework(token(request)).ListCases(cw_pb.ListCasesRequest(
                mine=not supervisor, status=intake_types.CASE_STATUS_OPEN, page_size=CASE_LIST_MAX,
                page_token=page_token))
            cases: list[Any] | None = list(listed.cases)
            next_page = listed.next_page_token
        except grpc.RpcError:
            cases = None  # the list is a convenience here too: the workspace works without it
        return render(ctx, request, "operator/home.html", opened=opened, from_feed=from_feed[:RECENT_MAX],
                      find_error=find_error, supervisor=supervisor, cases=cases, next_page=next_page,
                      paged=bool(page_token))

    @area(ctx, *OPERATORS)
    async def find(request: Request) -> Response:
        case_id = request.query_params.get("case_id", "").strip()
        try:
            return RedirectResponse(f"/cases/{uuid.UUID(case_id)}", status_code=303)
        except ValueError:  # a case id is a UUID: anything else is told so beside the box
            return RedirectResponse(f"/cases?find={'format' if case_id else 'empty'}#find", status_code=303)

    @area(ctx, *OPERATORS)
    async def places(request: Request) -> Response:
        found = forms.search_places(request.query_params.get("q", "")[:80])
        return JSONResponse([{"value": p.value, "label": p.label, "province_code": p.province_code,
                              "commune_code": p.commune_code} for p in found])

    # Calls.

    def call_defaults(request: Request) -> dict[str, str]:
        provinces = _provinces_of(request)
        return {"channel": "1" if caller(request).national else "2", "topic": "1", "outcome": "1",
                "anonymous": "on", "province": provinces[0].code if len(provinces) == 1 else "",
                "client_request_id": str(uuid.uuid4()), "started": str(int(time.time()))}

    @area(ctx, *OPERATORS)
    async def new_call(request: Request) -> Response:
        if request.method == "GET":
            values = draft(request) or call_defaults(request)
            logged = request.query_params.get("logged")
            return render_form(ctx, request, "operator/call.html", values, logged=logged,
                               provinces=_provinces_of(request), **_choices())
        values = forms.flat_values(await form_lists(request))
        if session_expired(request):
            return keep_for_after_sign_in(request, values)
        if values.get("action") == "case":  # the call is saved with the case it opens (RegisterCase.call)
            query = f"call_channel={values.get('channel', '')}&call_topic={values.get('topic', '')}" \
                    f"&call_started={values.get('started', '')}"
            return RedirectResponse(f"/cases/new?{query}", status_code=303)
        built = forms.call_request(values, caller(request).provinces, values.get("client_request_id") or
                                   str(uuid.uuid4()), _now())
        if built.errors:
            return render_form(ctx, request, "operator/call.html", values, errors=built.errors,
                               provinces=_provinces_of(request), **_choices())
        try:
            reply = await ctx.apis.intake(token(request)).LogCall(built.request)
        except grpc.RpcError as exc:
            top, errors = _problems(problem_of(exc), forms.CALL_FIELDS)
            return render_form(ctx, request, "operator/call.html", values, top, errors,
                               provinces=_provinces_of(request), **_choices())
        return RedirectResponse(f"/calls/new?logged={reply.call.call_id}", status_code=303)

    # Cases.

    def case_defaults(request: Request) -> dict[str, str]:
        values = {"client_request_id": str(uuid.uuid4()), "sex": "1"}
        for name in ("call_channel", "call_topic", "call_started"):
            if request.query_params.get(name, "").isdigit():
                values[name] = request.query_params[name]
        topic = values.get("call_topic")
        if topic in ("1", "2", "3"):  # the call's topic suggests the case type
            values["types"] = {"1": "1", "2": "4", "3": "5"}[topic]
        return values

    async def preview_of(request: Request, built: forms.Built) -> list[dict[str, Any]]:
        """Where each need would go: RankProviders for each consented need, the top provider and its tier."""
        assert isinstance(built.request, intake_pb.RegisterCaseRequest)
        case = built.request
        directory = ctx.apis.directory(token(request))

        async def rank(service_type: int, consented: bool) -> dict[str, Any]:
            row: dict[str, Any] = {"service": service_type, "consented": consented, "provider": None}
            if not consented:
                return row
            reply = await directory.RankProviders(referral_pb.RankProvidersRequest(
                province_code=case.province_code, commune_code=case.commune_code, service_type=service_type,
                is_child=case.survivor.is_child, sex=case.survivor.sex, risk_level=case.risk_level,
                emergency=case.immediate_danger))
            if reply.providers:
                row["provider"] = reply.providers[0].provider
                row["tier"] = reply.providers[0].area_rank
            return row

        return list(await asyncio.gather(*(rank(s, c) for s, c in forms.ranked_for(case))))

    @area(ctx, *OPERATORS)
    async def new_case(request: Request) -> Response:
        if request.method == "GET":
            return render_form(ctx, request, "operator/case_form.html", draft(request) or case_defaults(request),
                               **_choices())
        values = forms.flat_values(await form_lists(request))
        action = values.pop("action", "preview")
        if session_expired(request):
            return keep_for_after_sign_in(request, values)
        values.setdefault("client_request_id", str(uuid.uuid4()))
        built = forms.case_request(values, values["client_request_id"], _now())
        if built.place is not None and not built.errors:
            values["place"] = built.place.value  # what the server understood, shown back
        if built.errors:
            return render_form(ctx, request, "operator/case_form.html", values, errors=built.errors, **_choices())
        try:
            if action != "save":
                preview = await preview_of(request, built)
                return render_form(ctx, request, "operator/case_form.html", values, preview=preview,
                                   place=built.place, **_choices())
            reply = await ctx.apis.intake(token(request)).RegisterCase(built.request)
        except grpc.RpcError as exc:
            top, errors = _problems(problem_of(exc), forms.CASE_FIELDS)
            return render_form(ctx, request, "operator/case_form.html", values, top, errors, **_choices())
        _remember(request, reply.case.case_id)
        return RedirectResponse(f"/cases/{reply.case.case_id}?saved=1", status_code=303)

    async def referrals_context(request: Request, case_id: str) -> dict[str, Any]:
        view = await referral_view(ctx, token(request), case_id)
        return {"case_id": case_id, **view}

    @area(ctx, *OPERATORS)
    async def case_page(request: Request) -> Response:
        case_id = str(request.path_params["case_id"])
        try:  # the case file (audited read): the case, its assessments, plan, follow-ups, reviews and steps
            reply = await ctx.apis.casework(token(request)).GetCaseFile(cw_pb.GetCaseFileRequest(case_id=case_id))
            live = await referrals_context(request, case_id)
        except grpc.RpcError as exc:
            return problem_page(ctx, request, problem_of(exc))
        case = reply.case
        try:
            province = geo.resolve_province(case.province_code).name
            commune = geo.resolve_commune(case.commune_code).name if case.commune_code else ""
        except geo.GeoError:
            province, commune = case.province_code, case.commune_code
        done = request.query_params.get("done", "")
        return render(ctx, request, "operator/case.html", case=case, province=province, commune=commune,
                      saved=request.query_params.get("saved") == "1", done=done if done in casework.DONE else "",
                      **casework.case_file_view(reply, _now()), **live)

    @area(ctx, *OPERATORS)
    async def case_referrals(request: Request) -> Response:
        case_id = str(request.path_params["case_id"])
        try:
            live = await referrals_context(request, case_id)
        except grpc.RpcError as exc:
            found = problem_of(exc)
            return Response(found.message(request.cookies.get("lang", "vi")), status_code=found.status)
        return render(ctx, request, "operator/_referrals.html", **live)

    @area(ctx, *OPERATORS)
    async def events(request: Request) -> Response:
        case_id = str(request.path_params["case_id"])
        try:  # out of remit reads as not found, before any stream opens
            await ctx.apis.intake(token(request)).GetCase(intake_pb.GetCaseRequest(case_id=case_id))
        except grpc.RpcError as exc:
            found = problem_of(exc)
            return Response(found.message_en, status_code=found.status)
        return case_events(ctx, request, token(request), case_id)

    # Supervisors.

    async def escalation_rows(request: Request, province_codes: list[str]) -> list[dict[str, Any]]:
        tok = token(request)
        replies = await asyncio.gather(*(ctx.apis.escalation(tok).ListEscalations(
            referral_pb.ListEscalationsRequest(province_code=code, page_size=200)) for code in province_codes))
        escalations = [e for reply in replies for e in reply.escalations]
        ids = {e.referral.provider_id for e in escalations} | {e.rerouted_provider_id for e in escalations}
        names = await provider_names(ctx, tok, {i for i in ids if i})
        directory = ctx.apis.directory(tok)

        async def row(escalation: Any) -> dict[str, Any]:
            referral = escalation.referral
            options: list[Any] = []
            if not escalation.rerouted_referral_id:
                ranked = await directory.RankProviders(referral_pb.RankProvidersRequest(
                    province_code=referral.province_code, service_type=referral.service_type,
                    risk_level=referral.risk_level, emergency=referral.emergency))
                options = [(r.provider, r.area_rank) for r in ranked.providers
                           if r.provider.provider_id != referral.provider_id]
            return {"escalation": escalation, "referral": referral, "options": options,
                    "resolved": bool(escalation.rerouted_referral_id),
                    "overdue": referral.reason in ("not_accepted_in_time", "not_started_in_time"),
                    "request_id": str(uuid.uuid4())}

        rows = list(await asyncio.gather(*(row(e) for e in escalations)))
        rows.sort(key=lambda r: (r["resolved"], not r["referral"].emergency, r["referral"].requested_at.seconds))
        for r in rows:
            r["names"] = names
        return rows

    @area(ctx, Role.SUPERVISOR)
    async def escalations(request: Request) -> Response:
        provinces = _provinces_of(request)
        chosen = request.query_params.get("province", "")
        codes = [chosen] if chosen in {p.code for p in provinces} else \
            ([p.code for p in provinces] if len(provinces) <= 5 else [provinces[0].code])
        try:
            rows = await escalation_rows(request, codes)
        except grpc.RpcError as exc:
            return problem_page(ctx, request, problem_of(exc))
        assigned = request.query_params.get("assigned") == "1"
        error = request.query_params.get("error", "")
        return render(ctx, request, "operator/escalations.html", rows=rows, provinces=provinces, chosen=codes,
                      assigned=assigned, error=error)

    @area(ctx, Role.SUPERVISOR)
    async def assign(request: Request) -> Response:
        referral_id = request.path_params["referral_id"]
        values = forms.flat_values(await form_lists(request))
        if session_expired(request):
            return keep_for_after_sign_in(request, values, "/escalations")
        provider_id = values.get("provider_id", "")
        if not provider_id:
            return RedirectResponse(f"/escalations?error={referral_id}#esc-{referral_id}", status_code=303)
        try:
            await ctx.apis.escalation(token(request)).AssignProvider(referral_pb.AssignProviderRequest(
                referral_id=referral_id, provider_id=provider_id,
                client_request_id=values.get("request_id") or str(uuid.uuid4())))
        except grpc.RpcError as exc:
            return problem_page(ctx, request, problem_of(exc))
        return RedirectResponse("/escalations?assigned=1", status_code=303)

    return [
        Route("/cases", workspace),
        Route("/cases/find", find),
        Route("/cases/new", new_case, methods=["GET", "POST"]),
        Route("/cases/{case_id:uuid}", case_page),
        Route("/cases/{case_id}/referrals", case_referrals),
        Route("/cases/{case_id}/events", events),
        Route("/calls/new", new_call, methods=["GET", "POST"]),
        Route("/places", places),
        Route("/escalations", escalations),
        Route("/escalations/{referral_id}/assign", assign, methods=["POST"]),
    ]
