"""Referral's rules: routing, the lifecycle, SLA timers, consent, beds, and who may do what."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, Protocol, TypeAlias, TypeVar

import refnet_geo as geo
from referral.adapters.repository import Conflict
from referral.domain import commands, events
from referral.domain.model import (
    NOT_STARTED,
    OPEN,
    BedState,
    Case,
    CaseState,
    ConsentState,
    DirectoryEntry,
    Need,
    Provider,
    Referral,
    Status,
    Survivor,
    SurvivorContact,
    reroutes,
)
from referral.domain.routing import RoutingRequest, area_rank, rank_providers
from referral.domain.sla import SlaPolicy
from referral.service_layer.authorization import Scope, authorize
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform import metrics
from refnet_platform.caller import Caller, Role
from refnet_platform.clock import Clock, system_clock
from refnet_platform.envelope import new_event_id
from refnet_platform.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from refnet_platform.vocabulary import (
    BedRejectionReason,
    DeclineReason,
    FailureReason,
    ReferralReason,
    RiskLevel,
    ServiceType,
    StatusReason,
    TargetGroup,
)

log = logging.getLogger(__name__)

UowFactory = Callable[[], ReferralUnitOfWork]
# The actor recorded for transitions referral makes itself (timers, consent, shelter's answers).
SYSTEM = "referral"
MAX_PAGE = 500
# Emergencies send police protection and a shelter bed first, in the same transaction as the rest.
EMERGENCY_ORDER = (ServiceType.POLICE_PROTECTION, ServiceType.SHELTER)
# Why a referral leaves its provider in a way that gives a bed back: referral's own reasons, an agency's decline
# or failure. The code goes on the status change and on the ReleaseBed command alike.
LeaveReason: TypeAlias = ReferralReason | DeclineReason | FailureReason


class ContactReader(Protocol):
    """Intake's internal contact API: checks consent and acceptance again, audits every read."""

    def read(self, *, case_id: str, referral_id: str, recipient_id: str, recipient_sector: str,
             service_type: ServiceType, purpose: str) -> SurvivorContact: ...


@dataclass(frozen=True)
class Policy:
    sla: SlaPolicy
    bed_hold: timedelta
    clock: Clock = system_clock


H = TypeVar("H", bound=Callable[..., Any])


def retry_on_conflict(handler: H) -> H:
    """Runs the handler again (from a fresh read) if a referral changed under it."""

    @wraps(handler)
    def run(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(3):
            try:
                return handler(*args, **kwargs)
            except Conflict:
                if attempt == 2:
                    raise FailedPrecondition("the referral changed meanwhile; try again") from None
        raise AssertionError("unreachable")

    return run  # type: ignore[return-value]


# --- routing -----------------------------------------------------------------------------------


def _neighbours(province_code: str) -> tuple[str, ...]:
    try:
        return geo.neighbours(province_code)
    except geo.GeoError:
        return ()


def _candidates(work: ReferralUnitOfWork, case: Case, need_type: ServiceType) -> list[Provider]:
    areas = [case.province_code, *([case.commune_code] if case.commune_code else [])]
    return work.directory.reachable(need_type, (case.province_code, *_neighbours(case.province_code)), areas)


def _routable(case: Case | None, need: Need | None, now: datetime) -> bool:
    """No consent, no referral: and nothing for a closed or erased case."""
    return case is not None and case.state is CaseState.OPEN and need is not None and need.consent_valid(now)


def _unserved(referrals: list[Referral]) -> bool:
    """Nothing is under way or done for the need."""
    return not any(r.status in OPEN or r.status is Status.COMPLETED for r in referrals)


def _route(work: ReferralUnitOfWork, policy: Policy, case: Case, need: Need, now: datetime,
           earlier: list[Referral], previous: Referral | None) -> Referral:
    """Sends the need to the best provider not tried yet (`earlier`: the need's referrals so far); with none,
    escalates at once."""
    accept_by, _ = policy.sla.deadlines(case, now)
    pool = _candidates(work, case, need.service_type)
    # Providers that declined, missed a deadline or failed are not asked again; one whose referral was
    # cancelled (consent withdrawn, case closed) may be.
    tried = frozenset(r.provider_id for r in earlier if r.provider_id and r.status is not Status.CANCELLED)
    request = RoutingRequest(need.service_type, case.province_code, case.commune_code, case.survivor, now, accept_by,
                             need.sectors, tried)
    ranked = rank_providers(pool, request, work.beds.free(p.shelter_id for p in pool))
    return _request(work, policy, case, need, ranked[0].provider if ranked else None, now, previous,
                    attempt=len(earlier) + 1)


def _request(work: ReferralUnitOfWork, policy: Policy, case: Case, need: Need, provider: Provider | None,
             now: datetime, previous: Referral | None, attempt: int, actor: str = SYSTEM) -> Referral:
    accept_by, start_by = policy.sla.deadlines(case, now)
    referral = Referral(
        referral_id=new_event_id(), case_id=case.case_id, need_id=need.need_id, service_type=need.service_type,
        provider_id=provider.provider_id if provider else "", province_code=case.province_code,
        status=Status.REQUESTED, emergency=case.emergency, risk_level=case.risk_level,
        case_worker_id=case.case_worker_id, requested_at=now, shelter_id=provider.shelter_id if provider else "",
        accept_by=accept_by, start_by=start_by, attempt=attempt,
        previous_referral_id=previous.referral_id if previous else "",
        provider_province_code=provider.province_code if provider else "",
        bed=BedState.REQUESTED if provider and provider.is_shelter else BedState.NONE, updated_at=now)
    work.referrals.add(referral)
    work.referrals.record(referral.referral_id, now, None, Status.REQUESTED, "", actor)
    work.emit(events.ReferralRequested(referral))
    if provider is None:
        # Nothing is silently dropped: the province's supervisor must find a provider.
        _transition(work, referral, Status.EXPIRED, ReferralReason.NO_PROVIDER, now)
        _transition(work, referral, Status.ESCALATED, ReferralReason.NO_PROVIDER, now)
        work.emit(events.ReferralEscalated(referral, ReferralReason.NO_PROVIDER, sla="", deadline=None,
                                           rerouted=None))
        log.warning("no provider: escalated", extra={"fields": _ids(referral)})
    else:
        if provider.is_shelter:
            work.emit(events.BedRequested(referral, now + policy.bed_hold, provider.bed_group(case.survivor)))
        log.info("referral requested", extra={"fields": _ids(referral)})
    return referral


def _transition(work: ReferralUnitOfWork, referral: Referral, status: Status, reason: StatusReason | None,
                now: datetime, actor: str = SYSTEM) -> None:
    """One lifecycle step: saved, recorded in the history and published, in the caller's transaction."""
    previous = referral.move_to(status, reason, now)
    work.referrals.save(referral)
    work.referrals.record(referral.referral_id, now, previous, status, referral.reason, actor)
    work.emit(events.ReferralStatusChanged(referral, previous))


def _leave(work: ReferralUnitOfWork, referral: Referral, status: Status, reason: LeaveReason, now: datetime,
           actor: str = SYSTEM) -> None:
    """A transition that ends the provider's part: a bed asked for or held goes back to the shelter."""
    if referral.shelter_id and referral.bed.releasable:
        referral.bed = BedState.RELEASED
        work.emit(events.BedReleaseRequested(referral, reason))
    _transition(work, referral, status, reason, now, actor)


def _escalate(work: ReferralUnitOfWork, policy: Policy, referral: Referral, reason: ReferralReason, sla: str,
              now: datetime) -> None:
    """Expired: the province's supervisor is told and the need goes on to the next provider."""
    deadline = referral.due_at if sla else None
    _leave(work, referral, Status.EXPIRED, reason, now)
    _transition(work, referral, Status.ESCALATED, reason, now)
    rerouted = _reroute(work, policy, referral, now)
    work.emit(events.ReferralEscalated(referral, reason, sla, deadline, rerouted))
    log.warning("referral escalated", extra={"fields": {**_ids(referral), "reason": reason,
                                                        "rerouted_to": rerouted.referral_id if rerouted else ""}})


def _reroute(work: ReferralUnitOfWork, policy: Policy, referral: Referral, now: datetime) -> Referral | None:
    case = work.cases.get(referral.case_id)
    need = work.cases.need(referral.need_id)
    if not _routable(case, need, now):
        return None
    earlier = work.referrals.for_need(referral.need_id)
    if not _unserved(earlier):
        return None
    assert case is not None and need is not None
    return _route(work, policy, case, need, now, earlier, previous=referral)


def _ids(referral: Referral) -> dict[str, object]:
    return {"referral_id": referral.referral_id, "case_id": referral.case_id, "provider_id": referral.provider_id,
            "attempt": referral.attempt}


# --- intake's case events ----------------------------------------------------------------------


def _emergency_first(needs: Iterable[commands.NeedToRoute], emergency: bool) -> list[commands.NeedToRoute]:
    if not emergency:
        return list(needs)
    return sorted(needs, key=lambda n: EMERGENCY_ORDER.index(n.service_type)
                  if n.service_type in EMERGENCY_ORDER else len(EMERGENCY_ORDER))


def _case_from(cmd: commands.RouteCase | commands.AddNeed, known: Case | None) -> Case:
    case = Case(case_id=cmd.case_id, province_code=cmd.province_code, commune_code=cmd.commune_code,
                survivor=cmd.survivor, risk_level=cmd.risk_level, emergency=cmd.emergency,
                case_worker_id=cmd.case_worker_id)
    deadlines = [d for d in (known.child_deadline if known else None,
                             cmd.child_deadline if isinstance(cmd, commands.RouteCase) else None) if d]
    case.child_deadline = min(deadlines, default=None)
    return case


def _register_needs(work: ReferralUnitOfWork, policy: Policy, cmd: commands.RouteCase | commands.AddNeed,
                    needs: list[commands.NeedToRoute]) -> list[Referral]:
    now = policy.clock()
    known = work.cases.get(cmd.case_id, for_update=True)
    if known is not None and known.state is not CaseState.OPEN:
        return []  # closed or erased before this event arrived
    case = _case_from(cmd, known)
    work.cases.save(case)
    # Every need's row and referrals in one read each (a need never stored has no referral).
    stored = work.cases.needs_by_id(item.need_id for item in needs)
    referred = work.referrals.for_needs(stored)
    made = []
    for item in _emergency_first(needs, case.emergency):
        need = stored.setdefault(item.need_id, Need(item.need_id, case.case_id, item.service_type))
        if item.consented and need.consent is not ConsentState.GIVEN:
            need.give(item.consent_id, item.sectors, item.expires_at, at_registration=True)
        work.cases.save_need(need)
        earlier = referred.setdefault(need.need_id, [])
        if _routable(case, need, now) and _unserved(earlier):
            routed = _route(work, policy, case, need, now, earlier, previous=earlier[-1] if earlier else None)
            earlier.append(routed)  # a need listed twice is routed once
            made.append(routed)
    return made


@retry_on_conflict
def route_case(cmd: commands.RouteCase, uow: UowFactory, policy: Policy) -> list[Referral]:
    """A new case: each consented need goes to the nearest suitable provider."""
    with uow() as work:
        made = _register_needs(work, policy, cmd, list(cmd.needs))
        work.commit()
    return made


@retry_on_conflict
def add_need(cmd: commands.AddNeed, uow: UowFactory, policy: Policy) -> list[Referral]:
    with uow() as work:
        made = _register_needs(work, policy, cmd, [cmd.need])
        work.commit()
    return made


@retry_on_conflict
def update_risk(cmd: commands.UpdateRisk, uow: UowFactory, policy: Policy) -> None:
    """Risk rose (or a child's 12-hour deadline started): open referrals' deadlines come forward."""
    now = policy.clock()
    with uow() as work:
        case = work.cases.get(cmd.case_id, for_update=True)
        if case is None or case.state is not CaseState.OPEN:
            work.commit()
            return
        case.risk_level, case.emergency = cmd.risk_level, cmd.emergency
        if cmd.child_deadline is not None:
            case.child_deadline = min(case.child_deadline or cmd.child_deadline, cmd.child_deadline)
        work.cases.save(case)
        accept_by, start_by = policy.sla.deadlines(case, now)
        for referral in work.referrals.for_case(case.case_id):
            if referral.status in NOT_STARTED and referral.tighten(accept_by, start_by, case.emergency, now):
                work.referrals.save(referral)
        work.commit()


@retry_on_conflict
def give_consent(cmd: commands.GiveConsent, uow: UowFactory, policy: Policy) -> Referral | None:
    now = policy.clock()
    with uow() as work:
        case = work.cases.get(cmd.case_id, for_update=True)
        need = work.cases.need(cmd.need_id) or Need(cmd.need_id, cmd.case_id, cmd.service_type)
        given = need.give(cmd.consent_id, cmd.sectors, cmd.expires_at)
        work.cases.save_need(need)
        earlier = work.referrals.for_need(need.need_id)
        made = None
        if given and _routable(case, need, now) and _unserved(earlier):
            assert case is not None
            made = _route(work, policy, case, need, now, earlier, previous=earlier[-1] if earlier else None)
        work.commit()
    return made


@retry_on_conflict
def withdraw_consent(cmd: commands.WithdrawConsent, uow: UowFactory, policy: Policy) -> None:
    """Routing stops for the need, and what has not started is cancelled (its bed released)."""
    now = policy.clock()
    with uow() as work:
        need = work.cases.need(cmd.need_id)
        if need is None and cmd.service_type is not None:
            # A withdrawal that overtakes the need's registration is kept: the need is never routed.
            need = Need(cmd.need_id, cmd.case_id, cmd.service_type)
        if need is not None and not need.withdraw(cmd.consent_id):
            work.commit()
            return  # it withdrew an older consent than the one now on record
        if need is not None:
            work.cases.save_need(need)
        for referral in work.referrals.for_need(cmd.need_id):
            if referral.status in NOT_STARTED:
                _leave(work, referral, Status.CANCELLED, ReferralReason.CONSENT_WITHDRAWN, now)
        work.commit()


@retry_on_conflict
def close_case(cmd: commands.CloseCase, uow: UowFactory, policy: Policy) -> None:
    now = policy.clock()
    with uow() as work:
        case = work.cases.get(cmd.case_id, for_update=True)
        if case is not None and case.state is CaseState.OPEN:
            case.state = CaseState.CLOSED
            work.cases.save(case)
            for referral in work.referrals.for_case(cmd.case_id):
                if referral.status in NOT_STARTED:
                    _leave(work, referral, Status.CANCELLED, ReferralReason.CASE_CLOSED, now)
        work.commit()


@retry_on_conflict
def erase_case(cmd: commands.EraseCase, uow: UowFactory, policy: Policy) -> None:
    """Everything open is cancelled and its beds released; what routing knew of the survivor goes."""
    now = policy.clock()
    with uow() as work:
        # An erasure that overtakes the registration still leaves a tombstone: the case is never routed.
        case = work.cases.get(cmd.case_id, for_update=True) or Case(cmd.case_id, "", "", Survivor(), RiskLevel.LOW,
                                                                    emergency=False, case_worker_id="")
        for referral in work.referrals.for_case(cmd.case_id):
            if referral.open:
                _leave(work, referral, Status.CANCELLED, ReferralReason.CASE_ERASED, now)
        case.erase()
        work.cases.save(case)
        for need in work.cases.needs(cmd.case_id):
            need.consent, need.sectors = ConsentState.WITHDRAWN, frozenset()
            need.withdrawn_consent_id = max(need.consent_id, need.withdrawn_consent_id)
            work.cases.save_need(need)
        work.commit()


# --- shelter's bed events ----------------------------------------------------------------------


def _bed_referral(work: ReferralUnitOfWork, referral_id: str, shelter_id: str) -> Referral | None:
    referral = work.referrals.get(referral_id, for_update=True)
    return referral if referral is not None and referral.shelter_id == shelter_id else None


def _asked_pools(work: ReferralUnitOfWork, referral: Referral) -> tuple[TargetGroup, ...]:
    """The pools the referral's bed request could take from; none if the survivor is no longer known."""
    provider = work.directory.get(referral.provider_id)
    case = work.cases.get(referral.case_id)
    if provider is None or case is None or case.state is CaseState.ERASED:
        return ()
    return provider.bed_pools(case.survivor)


@retry_on_conflict
def record_bed_reserved(cmd: commands.RecordBedReserved, uow: UowFactory, policy: Policy) -> None:
    now = policy.clock()
    with uow() as work:
        if cmd.target_group is not None:
            work.beds.set(cmd.shelter_id, cmd.target_group, cmd.free_after, now)
        referral = _bed_referral(work, cmd.referral_id, cmd.shelter_id)
        if referral is not None and referral.bed is BedState.REQUESTED:
            referral.bed = BedState.HELD
            referral.touch(now)
            work.referrals.save(referral)
        work.commit()


@retry_on_conflict
def record_bed_rejected(cmd: commands.RecordBedRejected, uow: UowFactory, policy: Policy) -> None:
    """No bed: the referral is rejected with shelter's reason and the next shelter is tried."""
    now = policy.clock()
    with uow() as work:
        referral = _bed_referral(work, cmd.referral_id, cmd.shelter_id)
        if cmd.reason == BedRejectionReason.NO_CAPACITY and referral is not None:
            # Every pool the request could take from is full (the event names none).
            for group in _asked_pools(work, referral):
                work.beds.set(cmd.shelter_id, group, 0, now)
        if referral is not None and referral.bed is BedState.REQUESTED:
            referral.bed = BedState.REJECTED
            if referral.status is Status.REQUESTED:
                _transition(work, referral, Status.REJECTED, cmd.reason or BedRejectionReason.NO_CAPACITY, now)
                _reroute(work, policy, referral, now)
            else:
                referral.touch(now)
                work.referrals.save(referral)
                log.warning("bed rejected after acceptance", extra={"fields": _ids(referral)})
        work.commit()


@retry_on_conflict
def record_hold_expired(cmd: commands.RecordHoldExpired, uow: UowFactory, policy: Policy) -> None:
    """The survivor did not arrive while the bed was held."""
    now = policy.clock()
    with uow() as work:
        if cmd.target_group is not None:
            work.beds.adjust(cmd.shelter_id, cmd.target_group, +1, now)
        referral = _bed_referral(work, cmd.referral_id, cmd.shelter_id)
        if referral is not None and referral.bed is BedState.HELD:
            referral.bed = BedState.RELEASED  # shelter has freed it already
            if referral.status is Status.REQUESTED:
                _escalate(work, policy, referral, ReferralReason.HOLD_EXPIRED, "", now)
            elif referral.status is Status.ACCEPTED:
                _transition(work, referral, Status.FAILED, ReferralReason.HOLD_EXPIRED, now)
            else:
                referral.touch(now)
                work.referrals.save(referral)
        work.commit()


@retry_on_conflict
def record_bed_released(cmd: commands.RecordBedReleased, uow: UowFactory, policy: Policy) -> None:
    now = policy.clock()
    with uow() as work:
        if cmd.target_group is not None:
            work.beds.adjust(cmd.shelter_id, cmd.target_group, +1, now)
        referral = _bed_referral(work, cmd.referral_id, cmd.shelter_id)
        if referral is not None and referral.bed is not BedState.RELEASED:
            referral.bed = BedState.RELEASED
            referral.touch(now)
            work.referrals.save(referral)
        work.commit()


@retry_on_conflict
def record_bed_occupied(cmd: commands.RecordBedOccupied, uow: UowFactory, policy: Policy) -> None:
    """The survivor arrived: the shelter's referral is in service (accepted on the way if need be)."""
    now = policy.clock()
    with uow() as work:
        referral = _bed_referral(work, cmd.referral_id, cmd.shelter_id)
        if referral is not None:
            referral.bed = BedState.OCCUPIED
            if referral.status is Status.REQUESTED:
                _transition(work, referral, Status.ACCEPTED, ReferralReason.SURVIVOR_ARRIVED, now)
            if referral.status is Status.ACCEPTED:
                _transition(work, referral, Status.IN_SERVICE, ReferralReason.SURVIVOR_ARRIVED, now)
            else:
                referral.touch(now)
                work.referrals.save(referral)
        work.commit()


def record_capacity(cmd: commands.RecordCapacity, uow: UowFactory, policy: Policy) -> None:
    with uow() as work:
        work.beds.set(cmd.shelter_id, cmd.target_group, cmd.capacity - cmd.reserved - cmd.occupied, policy.clock(),
                      capacity=cmd.capacity)
        work.commit()


# --- the SLA timer -----------------------------------------------------------------------------


def expire_overdue(cmd: commands.ExpireOverdue, uow: UowFactory, policy: Policy) -> int:
    """Every referral past its deadline expires, is escalated and re-routed, each in its own transaction
    (so several workers can run this at once: a referral another one took is skipped)."""
    now = cmd.now or policy.clock()
    with uow() as work:
        due = work.referrals.due(now, cmd.limit)
    expired = 0
    for referral_id in due:
        try:
            with uow() as work:
                referral = work.referrals.get(referral_id, for_update=True)
                if referral is None or referral.due_at is None or referral.due_at > now:
                    continue
                sla, reason = referral.missed_sla
                _escalate(work, policy, referral, reason, sla, now)
                work.commit()
                expired += 1
            metrics.sla_breached(referral.province_code, sla or "none")
            metrics.escalated(referral.province_code, reason)
        except Conflict:
            continue
        except Exception:
            # One bad row must not hold up every other overdue referral; the next run tries it again.
            log.exception("could not expire a referral", extra={"fields": {"referral_id": referral_id}})
    return expired


# --- the partner agencies' API -----------------------------------------------------------------


def _caller_key(caller: Caller) -> str:
    """Whose request ids these are: an agency's are the agency's (its system and its staff share them, so a
    change retried from another desk is still done once); anyone else's are their own."""
    if caller.role is Role.AGENCY:
        return f"{caller.role}:{caller.organisation_id}"
    return f"{caller.role}:{caller.subject_id}"


def _actor(caller: Caller) -> str:
    """Who acted, for the referral's history: the person (or the machine), never only their agency."""
    return caller.audit_name[:120]


def _not_found(referral_id: str) -> NotFound:
    # One answer for a made-up id and for a referral outside the caller's remit: nothing is learned.
    return NotFound(f"referral {referral_id} not found")


def _in_scope(scope: Scope, caller: Caller, referral: Referral) -> bool:
    return scope.allows(caller, province_code=referral.province_code, provider_id=referral.provider_id)


def _referral_for(work: ReferralUnitOfWork, caller: Caller, method: str, referral_id: str, for_update: bool = False
                  ) -> Referral:
    """The referral, if `method`'s rule lets the caller see it; else exactly what a made-up id gets."""
    scope = authorize(method, caller)
    referral = work.referrals.get(referral_id, for_update=for_update) if referral_id else None
    if referral is None or not _in_scope(scope, caller, referral):
        raise _not_found(referral_id)
    return referral


def _required_request_id(request_id: str) -> None:
    if not request_id:
        raise InvalidArgument("request_id", "required: choose one per change and repeat it on a retry")
    if len(request_id) > 100:
        raise InvalidArgument("request_id", "at most 100 characters")


def _idempotent(work: ReferralUnitOfWork, caller: Caller, request_id: str, operation: str, referral_id: str,
                now: datetime) -> bool:
    """True if this request was already carried out (then nothing must change); else records it."""
    seen = work.requests.get(_caller_key(caller), request_id)
    if seen is None:
        work.requests.add(_caller_key(caller), request_id, operation, referral_id, now)
        return False
    if seen != (operation, referral_id):
        raise InvalidArgument("request_id", "already used for a different change")
    return True


# A change to a referral: the unit of work, the referral, the time, and who acted (for the history).
Change = Callable[[ReferralUnitOfWork, Referral, datetime, str], None]


def _agency_change(caller: Caller, method: str, referral_id: str, request_id: str, operation: str, uow: UowFactory,
                   policy: Policy, change: Change) -> Referral:
    authorize(method, caller)
    _required_request_id(request_id)
    with uow() as work:
        now = policy.clock()
        referral = _referral_for(work, caller, method, referral_id, for_update=True)
        if _idempotent(work, caller, request_id, operation, referral.referral_id, now):
            return referral
        change(work, referral, now, _actor(caller))
        work.commit()
    log.info("agency changed a referral", extra={"fields": {**_ids(referral), "operation": operation}})
    return referral


@retry_on_conflict
def accept_referral(cmd: commands.AcceptReferral, uow: UowFactory, policy: Policy) -> Referral:
    authorize("AcceptReferral", cmd.caller)
    if cmd.provider_id and cmd.provider_id != cmd.caller.organisation_id:
        raise PermissionDenied("provider_id must be your own agency's (or left empty): your identity says which")
    return _agency_change(cmd.caller, "AcceptReferral", cmd.referral_id, cmd.request_id, "accept", uow, policy,
                          lambda work, r, now, actor: _transition(work, r, Status.ACCEPTED, None, now, actor))


@retry_on_conflict
def decline_referral(cmd: commands.DeclineReferral, uow: UowFactory, policy: Policy) -> Referral:
    """Declined with a coded reason; unless the survivor said no or it is a duplicate, the next provider is tried."""
    reason = cmd.reason
    if reason is None:
        raise InvalidArgument("reason", "choose a decline reason")

    def decline(work: ReferralUnitOfWork, referral: Referral, now: datetime, actor: str) -> None:
        if referral.status is not Status.REQUESTED:
            raise FailedPrecondition(f"referral {referral.referral_id} is {referral.status}; only a requested "
                                     "referral can be declined")
        _leave(work, referral, Status.REJECTED, reason, now, actor)
        if reroutes(reason):
            _reroute(work, policy, referral, now)

    return _agency_change(cmd.caller, "DeclineReferral", cmd.referral_id, cmd.request_id, "decline", uow, policy,
                          decline)


@retry_on_conflict
def start_service(cmd: commands.StartService, uow: UowFactory, policy: Policy) -> Referral:
    return _agency_change(cmd.caller, "StartService", cmd.referral_id, cmd.request_id, "start", uow, policy,
                          lambda work, r, now, actor: _transition(work, r, Status.IN_SERVICE, None, now, actor))


@retry_on_conflict
def report_progress(cmd: commands.ReportProgress, uow: UowFactory, policy: Policy) -> Referral:
    progress = cmd.progress
    if progress is None:
        raise InvalidArgument("progress", "choose a progress code")

    def report(work: ReferralUnitOfWork, referral: Referral, now: datetime, actor: str) -> None:
        if referral.status not in (Status.ACCEPTED, Status.IN_SERVICE):
            raise FailedPrecondition(f"referral {referral.referral_id} is {referral.status}; progress is reported "
                                     "on an accepted referral")
        referral.progress = progress
        referral.touch(now)
        work.referrals.save(referral)
        work.referrals.record(referral.referral_id, now, referral.status, referral.status, f"progress:{progress}",
                              actor)
        work.emit(events.ReferralProgressReported(referral, progress, now))

    return _agency_change(cmd.caller, "ReportProgress", cmd.referral_id, cmd.request_id, "progress", uow, policy,
                          report)


@retry_on_conflict
def complete_referral(cmd: commands.CompleteReferral, uow: UowFactory, policy: Policy) -> Referral:
    outcome = cmd.outcome
    if outcome is None:
        raise InvalidArgument("outcome", "choose an outcome")
    return _agency_change(cmd.caller, "CompleteReferral", cmd.referral_id, cmd.request_id, "complete", uow, policy,
                          lambda work, r, now, actor: _transition(work, r, Status.COMPLETED, outcome, now, actor))


@retry_on_conflict
def report_failure(cmd: commands.ReportFailure, uow: UowFactory, policy: Policy) -> Referral:
    reason = cmd.reason
    if reason is None:
        raise InvalidArgument("reason", "choose a failure reason")
    return _agency_change(cmd.caller, "ReportFailure", cmd.referral_id, cmd.request_id, "fail", uow, policy,
                          lambda work, r, now, actor: _leave(work, r, Status.FAILED, reason, now, actor))


def get_survivor_contact(cmd: commands.GetSurvivorContact, uow: UowFactory, policy: Policy,
                         contacts: ContactReader) -> SurvivorContact:
    """Only the assigned agency, only after it accepted, only while consent holds; intake then returns the
    fields the consent covers and audits the read."""
    now = policy.clock()
    with uow() as work:
        referral = _referral_for(work, cmd.caller, "GetSurvivorContact", cmd.referral_id)
        if referral.status not in (Status.ACCEPTED, Status.IN_SERVICE):
            raise FailedPrecondition("contact details are shared only once you have accepted the referral "
                                     f"(it is {referral.status})")
        case = work.cases.get(referral.case_id)
        need = work.cases.need(referral.need_id)
        provider = work.directory.get(referral.provider_id)
        if not _routable(case, need, now) or (provider is not None and need is not None
                                               and not provider.covered_by(need.sectors)):
            raise FailedPrecondition("the survivor's consent does not cover sharing her contact details with you")
    contact = contacts.read(case_id=referral.case_id, referral_id=referral.referral_id,
                            recipient_id=referral.provider_id, recipient_sector=provider.sector if provider else "",
                            service_type=referral.service_type, purpose="provider_accepted_referral")
    log.info("survivor contact read", extra={"fields": {**_ids(referral), "categories": list(contact.categories)}})
    return contact


def _page_size(size: int) -> int:
    if size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    return min(size or MAX_PAGE, MAX_PAGE)


def _provinces(caller: Caller) -> frozenset[str] | None:
    """A list's province filter for the caller: None for the national line (every province)."""
    return None if caller.national else caller.provinces


def list_referrals(cmd: commands.ListReferrals, uow: UowFactory) -> tuple[list[Referral], str]:
    """Agencies: their own referrals. Operators, supervisors and ops: one case's referrals, in their provinces.
    What is outside the caller's remit is simply not listed."""
    size = _page_size(cmd.page_size)
    scope = authorize("ListReferrals", cmd.caller)
    provider_id: str | None = None
    provinces: frozenset[str] | None = None
    if scope is Scope.OWN_AGENCY:
        if not cmd.caller.organisation_id or (cmd.provider_id and cmd.provider_id != cmd.caller.organisation_id):
            return [], ""  # another agency's list reads as an empty one
        provider_id = cmd.caller.organisation_id
    else:
        if not cmd.case_id:
            raise InvalidArgument("case_id", "required: list one case's referrals")
        provinces = _provinces(cmd.caller) if scope is Scope.PROVINCE else None
        if provinces is not None and not provinces:
            return [], ""
    with uow() as work:
        found = work.referrals.page(provider_id=provider_id, case_id=cmd.case_id, statuses=cmd.statuses,
                                    after_id=cmd.page_token, limit=size + 1, provinces=provinces)
    return found[:size], found[size - 1].referral_id if len(found) > size else ""


def changed_referrals(cmd: commands.ChangedReferrals, uow: UowFactory) -> list[Referral]:
    authorize("WatchReferrals", cmd.caller)
    if not cmd.caller.organisation_id:
        return []
    with uow() as work:
        return work.referrals.changed_since(cmd.caller.organisation_id, cmd.since, cmd.after_id, cmd.limit,
                                            OPEN if cmd.open_only else ())


def get_referral(cmd: commands.GetReferral, uow: UowFactory) -> Referral:
    with uow() as work:
        return _referral_for(work, cmd.caller, "GetReferral", cmd.referral_id)


# --- supervisors -------------------------------------------------------------------------------


def list_escalations(cmd: commands.ListEscalations, uow: UowFactory
                     ) -> tuple[list[tuple[Referral, Referral | None]], str]:
    """A province's escalated referrals, each with the referral that replaced it (if any); a province outside the
    caller's remit has none to show."""
    scope = authorize("ListEscalations", cmd.caller)
    try:
        province = geo.resolve_province(cmd.province_code).code
    except geo.GeoError as exc:
        raise InvalidArgument("province_code", exc.problem) from None
    size = _page_size(cmd.page_size)
    if not scope.allows(cmd.caller, province_code=province):
        return [], ""
    with uow() as work:
        found = work.referrals.escalations(province, cmd.unresolved_only, cmd.page_token, size + 1)
        page = [(r, work.referrals.successor(r.referral_id)) for r in found[:size]]
    return page, found[size - 1].referral_id if len(found) > size else ""


@retry_on_conflict
def assign_provider(cmd: commands.AssignProvider, uow: UowFactory, policy: Policy) -> Referral:
    """A supervisor of the case's province sends an escalated referral's need to a provider of their choice that
    serves the case's area."""
    authorize("AssignProvider", cmd.caller)
    _required_request_id(cmd.request_id)
    now = policy.clock()
    with uow() as work:
        escalated = _referral_for(work, cmd.caller, "AssignProvider", cmd.referral_id, for_update=True)
        seen = work.requests.get(_caller_key(cmd.caller), cmd.request_id)
        if seen is not None:
            if seen[0] != "assign":
                raise InvalidArgument("request_id", "already used for a different change")
            done = work.referrals.get(seen[1])
            assert done is not None
            return done
        if escalated.status is not Status.ESCALATED or work.referrals.successor(escalated.referral_id):
            raise FailedPrecondition(f"referral {escalated.referral_id} is not an unresolved escalation")
        provider = work.directory.get(cmd.provider_id) if cmd.provider_id else None
        if provider is None or not provider.active:
            raise InvalidArgument("provider_id", f"no active provider {cmd.provider_id!r} in the directory")
        if provider.service_type is not escalated.service_type:
            raise InvalidArgument("provider_id", f"{provider.provider_id} does not deliver {escalated.service_type}")
        case = work.cases.get(escalated.case_id)
        need = work.cases.need(escalated.need_id)
        if not _routable(case, need, now):
            raise FailedPrecondition("no valid consent for this need (or the case is closed): no referral")
        assert case is not None and need is not None
        if area_rank(provider, case.province_code, case.commune_code) is None:
            # Routing's own reach: her commune, her province, a neighbouring province or a declared service area.
            raise InvalidArgument("provider_id", f"{provider.provider_id} does not serve the case's area")
        if not _unserved(work.referrals.for_need(need.need_id)):
            raise FailedPrecondition("the need is already with a provider")
        made = _request(work, policy, case, need, provider, now, escalated,
                        attempt=len(work.referrals.for_need(need.need_id)) + 1, actor=_actor(cmd.caller))
        work.requests.add(_caller_key(cmd.caller), cmd.request_id, "assign", made.referral_id, now)
        work.commit()
    return made


# --- the directory -----------------------------------------------------------------------------


def _entries(work: ReferralUnitOfWork, providers: list[Provider], now: datetime, survivor: Survivor | None = None
             ) -> list[DirectoryEntry]:
    """With a survivor, a shelter shows the pools she could be placed in (what ranking used); without one,
    the pools of the groups it takes (all its pools if the directory does not say)."""
    figures = work.beds.figures(p.shelter_id for p in providers)
    out = []
    for p in providers:
        free, capacity = None, None
        if p.is_shelter:
            groups = p.bed_pools(survivor) if survivor else (p.target_groups or tuple(TargetGroup))
            known = p.known_pools(groups, figures)
            free, capacity = ((sum(f for f, _ in known), sum(c for _, c in known)) if known
                              else (None, p.beds_capacity))
        out.append(DirectoryEntry(p, open_now=p.is_open(now) is True, beds_free=free, beds_capacity=capacity))
    return out


def list_providers(cmd: commands.ListProviders, uow: UowFactory, policy: Policy) -> list[DirectoryEntry]:
    if not cmd.province_code:
        raise InvalidArgument("province_code", "required")
    with uow() as work:
        return _entries(work, work.directory.in_province(cmd.province_code, cmd.service_type), policy.clock())


def get_provider(cmd: commands.GetProvider, uow: UowFactory, policy: Policy) -> DirectoryEntry:
    with uow() as work:
        provider = work.directory.get(cmd.provider_id) if cmd.provider_id else None
        if provider is None:
            raise NotFound(f"provider {cmd.provider_id} not found")
        return _entries(work, [provider], policy.clock())[0]


def rank_for(cmd: commands.RankProviders, uow: UowFactory, policy: Policy) -> list[DirectoryEntry]:
    """What routing would try, in order, for a survivor like this (no consent check: nothing is sent)."""
    if cmd.service_type is None:
        raise InvalidArgument("service_type", "required")
    try:
        location = geo.resolve_location(cmd.province_code, cmd.commune_code or None)
    except geo.GeoError as exc:
        raise InvalidArgument(exc.field, exc.problem) from None
    now = policy.clock()
    case = Case("", location.province.code, location.commune.code if location.commune else "", cmd.survivor,
                cmd.risk_level, cmd.emergency, "")
    with uow() as work:
        pool = _candidates(work, case, cmd.service_type)
        accept_by, _ = policy.sla.deadlines(case, now)
        ranked = rank_providers(pool, RoutingRequest(cmd.service_type, case.province_code, case.commune_code,
                                                     case.survivor, now, accept_by),
                                work.beds.free(p.shelter_id for p in pool))
        entries = _entries(work, [c.provider for c in ranked], now, case.survivor)
    return [DirectoryEntry(e.provider, e.open_now, e.beds_free, e.beds_capacity,
                           area_rank(e.provider, case.province_code, case.commune_code)) for e in entries]


def load_directory(cmd: commands.LoadDirectory, uow: UowFactory, policy: Policy) -> int:
    now = policy.clock()
    with uow() as work:
        written = 0
        for provider in cmd.providers:
            written += work.directory.save(provider, cmd.update_existing)
            # The directory's capacity names no pool: it stands for the one group a shelter takes. A shelter
            # listed for several groups (or none) has no figure until shelter reports its pools.
            if provider.is_shelter and provider.beds_capacity is not None and len(provider.target_groups) == 1:
                [group] = provider.target_groups
                work.beds.seed(provider.shelter_id, group, provider.beds_capacity, now)
        work.commit()
    log.info("directory loaded", extra={"fields": {"providers": len(cmd.providers), "written": written}})
    return written


def export_directory(cmd: commands.ExportDirectory, uow: UowFactory, policy: Policy) -> list[DirectoryEntry]:
    with uow() as work:
        return _entries(work, work.directory.all(), policy.clock())
