"""Shelter page (shelter staff): beds per pool with + / - and Confirm, holds about to expire, arrivals to
confirm and check-outs, for the shelter of the signed-in person (their organisation).

Made for a feature-phone browser on a slow connection: one small page, plain forms that work without script
(+ / - come back with the new number to confirm; shelter.js changes it in place), no third-party assets.
Reporting beds is three taps from sign-in: the page is already there, tap +, tap Confirm.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from refnet.common.v1 import types_pb2 as types
from refnet.shelter.v1 import shelter_service_pb2 as pb
from refnet_platform.caller import Role
from web.adapters.apis import Problem, problem_of
from web.entrypoints.pages.common import (
    AppContext,
    area,
    caller,
    form_values,
    keep_for_after_sign_in,
    lang,
    problem_page,
    render,
    session_expired,
    token,
)
from web.i18n import translate

MAX_CAPACITY = 999
EXPIRING_S = 3600  # a hold with less than this left is about to expire
DONE = {"saved": "shelter.saved", "arrived": "shelter.arrived_done", "checked_out": "shelter.checked_out_done"}


def group_code(value: int) -> str:
    try:
        return str(types.TargetGroup.Name(value)).removeprefix("TARGET_GROUP_").lower()
    except ValueError:
        return "unspecified"


def reservation_code(value: int) -> str:
    try:
        return str(pb.ReservationStatus.Name(value)).removeprefix("RESERVATION_STATUS_").lower()
    except ValueError:
        return "unspecified"


def group_label(language: str, value: int) -> str:
    return translate(language, f"shelter.group.{group_code(value)}")


@dataclass(frozen=True)
class Pool:
    target_group: int
    group: str
    label: str
    capacity: int
    reserved: int
    occupied: int
    free: int
    minimum: int
    confirmed_at: Any
    stale: bool
    shown: int  # the number in the field: a pending + / - or the capacity
    pending: bool


def pools_of(language: str, availability: Iterable[Any], pending: Mapping[int, int] | None = None) -> list[Pool]:
    rows = []
    for a in sorted(availability, key=lambda a: int(a.target_group)):
        minimum = a.reserved + a.occupied
        shown = (pending or {}).get(a.target_group)
        rows.append(Pool(
            target_group=a.target_group, group=group_code(a.target_group), label=group_label(language, a.target_group),
            capacity=a.capacity, reserved=a.reserved, occupied=a.occupied,
            free=max(0, a.capacity - minimum),
            minimum=minimum, confirmed_at=a.confirmed_at if a.HasField("confirmed_at") else None, stale=a.stale,
            shown=a.capacity if shown is None else shown, pending=shown is not None and shown != a.capacity))
    return rows


def stepped(capacity: int, adjust: int, minimum: int) -> int:
    """The number after a tap on + or -, kept between the beds in use and the maximum."""
    return max(minimum, min(MAX_CAPACITY, capacity + adjust))


def parse_int(value: str | None, default: int = 0) -> int:
    try:
        return int((value or "").strip())
    except ValueError:
        return default


def update_request(shelter_id: str, values: Mapping[str, str]) -> pb.UpdateAvailabilityRequest:
    """The UpdateAvailability for a pool's Confirm (the number in the field, never below zero)."""
    capacity = max(0, min(MAX_CAPACITY, parse_int(values.get("capacity"))))
    return pb.UpdateAvailabilityRequest(shelter_id=shelter_id, target_group=parse_int(values.get("target_group")),
                                        capacity=capacity)


@dataclass(frozen=True)
class Stay:
    referral_id: str
    short: str
    case_id: str
    group_label: str
    status: str
    hold_until: Any
    minutes_left: int | None
    expiring: bool


def stays_of(language: str, reservations: Iterable[Any], now: float) -> tuple[list[Stay], list[Stay]]:
    """(held, soonest expiry first; occupied)."""
    held, staying = [], []
    for r in reservations:
        until = r.hold_until.seconds if r.HasField("hold_until") else None
        left = max(0, int((until - now) // 60)) if until else None
        stay = Stay(referral_id=r.referral_id, short=r.referral_id.replace("-", "")[-8:].upper(), case_id=r.case_id,
                    group_label=group_label(language, r.target_group), status=reservation_code(r.status),
                    hold_until=r.hold_until if until else None, minutes_left=left,
                    expiring=until is not None and until - now < EXPIRING_S)
        if r.status == pb.RESERVATION_STATUS_HELD:
            held.append(stay)
        elif r.status == pb.RESERVATION_STATUS_OCCUPIED:
            staying.append(stay)
    held.sort(key=lambda s: (s.hold_until.seconds if s.hold_until else float("inf")))
    return held, staying


def routes(ctx: AppContext) -> list[Route]:
    async def page(request: Request, pending: Mapping[int, int] | None = None, problem: Problem | None = None,
                   problem_group: int | None = None, status_code: int = 200) -> Response:
        shelter_id = caller(request).organisation_id
        stub = ctx.apis.shelter(token(request))
        language = lang(request)
        try:
            shelter = (await stub.GetShelter(pb.GetShelterRequest(shelter_id=shelter_id))).shelter
            reservations = (await stub.ListReservations(pb.ListReservationsRequest())).reservations
        except grpc.RpcError as exc:
            failed = problem_of(exc)
            if not failed.retry:
                return problem_page(ctx, request, failed)
            # A lost connection keeps the page, with the note and a retry (the person is on a slow phone).
            return render(ctx, request, "shelter/page.html", shelter=None, pools=[], held=[], staying=[],
                          problem=failed, problem_group=None, done=None)
        held, staying = stays_of(language, reservations, time.time())
        done = DONE.get(request.query_params.get("done", ""))
        return render(ctx, request, "shelter/page.html", status_code, shelter=shelter,
                      pools=pools_of(language, shelter.pools, pending), held=held, staying=staying, problem=problem,
                      problem_group=problem_group, done=done)

    @area(ctx, Role.SHELTER)
    async def beds(request: Request) -> Response:
        return await page(request)

    @area(ctx, Role.SHELTER)
    async def update(request: Request) -> Response:
        values = await form_values(request)
        if session_expired(request):
            return keep_for_after_sign_in(request, values, "/shelter")
        group = parse_int(values.get("target_group"))
        adjust = parse_int(values.get("adjust"))
        if adjust:  # + or - without script: the page again with the new number, to confirm
            minimum = parse_int(values.get("minimum"))
            return await page(request, {group: stepped(parse_int(values.get("capacity")), adjust, minimum)})
        call = update_request(caller(request).organisation_id, values)
        try:
            await ctx.apis.shelter(token(request)).UpdateAvailability(call)
        except grpc.RpcError as exc:
            problem = problem_of(exc)
            if problem.sign_in_again or problem.status == 404:
                return problem_page(ctx, request, problem)
            if problem.status == 409:  # below the beds in use: say how many, in plain words
                minimum = parse_int(values.get("minimum"))
                problem = Problem("capacity", translate("vi", "shelter.min", min=minimum),
                                  translate("en", "shelter.min", min=minimum), 409)
            return await page(request, {group: call.capacity}, problem, group, problem.status)
        return RedirectResponse("/shelter?done=saved#pool-" + group_code(group), status_code=303)

    def one(method: str, done: str) -> Any:
        @area(ctx, Role.SHELTER)
        async def handler(request: Request) -> Response:
            values = await form_values(request)
            if session_expired(request):
                return keep_for_after_sign_in(request, values, "/shelter")
            referral_id = request.path_params["referral_id"]
            request_class = pb.ConfirmArrivalRequest if method == "ConfirmArrival" else pb.CheckOutRequest
            try:
                await getattr(ctx.apis.shelter(token(request)), method)(request_class(referral_id=referral_id))
            except grpc.RpcError as exc:
                problem = problem_of(exc)
                if problem.sign_in_again or problem.status == 404:
                    return problem_page(ctx, request, problem)
                return await page(request, problem=problem, status_code=problem.status)
            return RedirectResponse(f"/shelter?done={done}", status_code=303)

        return handler

    return [
        Route("/shelter", beds),
        Route("/shelter/beds", update, methods=["POST"]),
        Route("/shelter/arrivals/{referral_id}", one("ConfirmArrival", "arrived"), methods=["POST"]),
        Route("/shelter/checkouts/{referral_id}", one("CheckOut", "checked_out"), methods=["POST"]),
    ]
