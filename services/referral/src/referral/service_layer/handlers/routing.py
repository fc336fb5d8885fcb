"""Routing and the lifecycle's steps every handler takes: choosing a provider, requesting, moving a referral on
(saved, recorded and published in the caller's transaction), giving a bed back, escalating and re-routing."""

from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache
from typing import TypeAlias

import refnet_geo as geo
from referral.domain import events
from referral.domain.model import OPEN, BedState, Case, CaseState, Need, Referral, Status
from referral.domain.providers import Provider
from referral.domain.routing import RoutingRequest, rank_providers
from referral.service_layer.handlers.common import SYSTEM, Policy, ids
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform.envelope import new_event_id
from refnet_platform.vocabulary import DeclineReason, FailureReason, ReferralReason, ServiceType, StatusReason

log = logging.getLogger(__name__)

# Why a referral leaves its provider in a way that gives a bed back: referral's own reasons, an agency's decline
# or failure. The code goes on the status change and on the ReleaseBed command alike.
LeaveReason: TypeAlias = ReferralReason | DeclineReason | FailureReason


@lru_cache(maxsize=1024)
def _neighbours(province_code: str) -> tuple[str, ...]:
    # Remembered, as domain.routing's distances: on today's map the answer depends on the code alone.
    try:
        return geo.neighbours(province_code)
    except geo.GeoError:
        return ()


def candidates(work: ReferralUnitOfWork, case: Case, need_type: ServiceType) -> tuple[Provider, ...]:
    areas = (case.province_code, case.commune_code) if case.commune_code else (case.province_code,)
    return work.directory.reachable(need_type, (case.province_code, *_neighbours(case.province_code)), areas)


def routable(case: Case | None, need: Need | None, now: datetime) -> bool:
    """No consent, no referral: and nothing for a closed or erased case."""
    return case is not None and case.state is CaseState.OPEN and need is not None and need.consent_valid(now)


def unserved(referrals: list[Referral]) -> bool:
    """Nothing is under way or done for the need."""
    return not any(r.status in OPEN or r.status is Status.COMPLETED for r in referrals)


def route(work: ReferralUnitOfWork, policy: Policy, case: Case, need: Need, now: datetime,
          earlier: list[Referral], previous: Referral | None) -> Referral:
    """Sends the need to the best provider not tried yet (`earlier`: the need's referrals so far); with none,
    escalates at once."""
    deadlines = policy.sla.deadlines(case, now)
    pool = candidates(work, case, need.service_type)
    # Providers that declined, missed a deadline or failed are not asked again; one whose referral was
    # cancelled (consent withdrawn, case closed) may be.
    tried = frozenset(r.provider_id for r in earlier if r.provider_id and r.status is not Status.CANCELLED)
    routing = RoutingRequest(need.service_type, case.province_code, case.commune_code, case.survivor, now,
                             deadlines[0], need.sectors, tried)
    ranked = rank_providers(pool, routing, work.beds.free(p.shelter_id for p in pool))
    return request(work, policy, case, need, ranked[0].provider if ranked else None, now, previous,
                   attempt=len(earlier) + 1, deadlines=deadlines)


def request(work: ReferralUnitOfWork, policy: Policy, case: Case, need: Need, provider: Provider | None,
            now: datetime, previous: Referral | None, attempt: int, actor: str = SYSTEM,
            deadlines: tuple[datetime, datetime] | None = None) -> Referral:
    """`deadlines`: the SLA's (accept_by, start_by) for the case now, if the caller has them already."""
    accept_by, start_by = deadlines or policy.sla.deadlines(case, now)
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
    work.emit(events.ReferralRequested(referral, provider.sector if provider else ""))
    if provider is None:
        # Nothing is silently dropped: the province's supervisor must find a provider.
        transition(work, referral, Status.EXPIRED, ReferralReason.NO_PROVIDER, now)
        transition(work, referral, Status.ESCALATED, ReferralReason.NO_PROVIDER, now)
        work.emit(events.ReferralEscalated(referral, ReferralReason.NO_PROVIDER, sla="", deadline=None,
                                           rerouted=None))
        log.warning("no provider: escalated", extra={"fields": ids(referral)})
    elif provider.is_shelter:
        work.emit(events.BedRequested(referral, now + policy.bed_hold, provider.bed_group(case.survivor)))
    return referral


def log_requested(made: list[Referral], level: int = logging.DEBUG) -> None:
    """One line for the referrals one event made. Routine routing logs it at DEBUG: at INFO it was 7 % of the
    worker's CPU per case, and each referral is already in its ReferralRequested event and its history."""
    if made and log.isEnabledFor(level):
        log.log(level, "referrals requested", extra={"fields": {
            "case_id": made[0].case_id, "referral_ids": [r.referral_id for r in made],
            "provider_ids": [r.provider_id for r in made], "attempts": [r.attempt for r in made]}})


def transition(work: ReferralUnitOfWork, referral: Referral, status: Status, reason: StatusReason | None,
               now: datetime, actor: str = SYSTEM) -> None:
    """One lifecycle step: saved, recorded in the history and published, in the caller's transaction."""
    previous = referral.move_to(status, reason, now)
    work.referrals.save(referral)
    work.referrals.record(referral.referral_id, now, previous, status, referral.reason, actor)
    work.emit(events.ReferralStatusChanged(referral, previous))


def leave(work: ReferralUnitOfWork, referral: Referral, status: Status, reason: LeaveReason, now: datetime,
          actor: str = SYSTEM) -> None:
    """A transition that ends the provider's part: a bed asked for or held goes back to the shelter."""
    if referral.give_bed_back():
        work.emit(events.BedReleaseRequested(referral, reason))
    transition(work, referral, status, reason, now, actor)


def escalate(work: ReferralUnitOfWork, policy: Policy, referral: Referral, reason: ReferralReason, sla: str,
             now: datetime) -> None:
    """Expired: the province's supervisor is told and the need goes on to the next provider."""
    deadline = referral.due_at if sla else None
    leave(work, referral, Status.EXPIRED, reason, now)
    transition(work, referral, Status.ESCALATED, reason, now)
    rerouted = reroute(work, policy, referral, now)
    work.emit(events.ReferralEscalated(referral, reason, sla, deadline, rerouted))
    log.warning("referral escalated", extra={"fields": {**ids(referral), "reason": reason,
                                                        "rerouted_to": rerouted.referral_id if rerouted else ""}})


def reroute(work: ReferralUnitOfWork, policy: Policy, referral: Referral, now: datetime) -> Referral | None:
    case = work.cases.get(referral.case_id)
    need = work.cases.need(referral.need_id)
    if not routable(case, need, now):
        return None
    earlier = work.referrals.for_need(referral.need_id)
    if not unserved(earlier):
        return None
    assert case is not None and need is not None
    rerouted = route(work, policy, case, need, now, earlier, previous=referral)
    log_requested([rerouted])
    return rerouted
