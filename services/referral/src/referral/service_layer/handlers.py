from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from referral.domain import commands, events
from referral.domain.model import Provider, Referral, Status, rank_providers
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform.envelope import new_event_id
from refnet_platform.errors import NotFound
from refnet_platform.vocabulary import ServiceType

log = logging.getLogger(__name__)

UowFactory = Callable[[], ReferralUnitOfWork]


def route_case(cmd: commands.RouteCase, uow: UowFactory, bed_hold: timedelta) -> list[Referral]:
    """Turns each consented need of a new case into a referral to the nearest suitable provider."""
    made: list[Referral] = []
    with uow() as work:
        for need in cmd.needs:
            if not need.consented:
                continue  # no consent, no referral
            if work.referrals.for_need(need.need_id):
                continue
            ranked = rank_providers(work.directory.in_province(cmd.province_code, need.service_type),
                                    need.service_type, cmd.province_code, cmd.commune_code)
            provider = ranked[0] if ranked else None
            referral = _new_referral(cmd, need, provider)
            work.referrals.add(referral)
            work.emit(events.ReferralRequested(referral))
            if provider is None:
                # Nothing is silently dropped: the province's supervisor must find a provider.
                previous = referral.move_to(Status.EXPIRED, "no_provider")
                referral.move_to(Status.ESCALATED, "no_provider")
                work.referrals.save_status(referral)
                work.emit(events.ReferralStatusChanged(referral, previous))
            elif need.service_type is ServiceType.SHELTER and provider.shelter_id:
                work.emit(events.BedRequested(referral, datetime.now(UTC) + bed_hold))
            made.append(referral)
        work.commit()
    for referral in made:
        log.info("referral requested", extra={"fields": {"referral_id": referral.referral_id,
                                                         "case_id": referral.case_id,
                                                         "provider_id": referral.provider_id}})
    return made


def _new_referral(cmd: commands.RouteCase, need: commands.NeedToRoute, provider: Provider | None) -> Referral:
    return Referral(
        referral_id=new_event_id(), case_id=cmd.case_id, need_id=need.need_id, service_type=need.service_type,
        provider_id=provider.provider_id if provider else "", province_code=cmd.province_code,
        status=Status.REQUESTED, emergency=cmd.emergency, risk_level=cmd.risk_level,
        case_worker_id=cmd.case_worker_id, requested_at=datetime.now(UTC),
        shelter_id=provider.shelter_id if provider else "",
    )


def record_bed_decision(cmd: commands.RecordBedDecision, uow: UowFactory) -> None:
    with uow() as work:
        referral = work.referrals.get(cmd.referral_id)
        if referral is not None and not cmd.reserved and referral.status is Status.REQUESTED:
            previous = referral.move_to(Status.REJECTED, cmd.reason or "no_capacity")
            work.referrals.save_status(referral)
            work.emit(events.ReferralStatusChanged(referral, previous))
        work.commit()


def accept_referral(cmd: commands.AcceptReferral, uow: UowFactory) -> Referral:
    with uow() as work:
        referral = _assigned(work, cmd.referral_id, cmd.provider_id)
        if referral.status is Status.ACCEPTED:
            return referral  # a repeated accept changes nothing
        previous = referral.move_to(Status.ACCEPTED)
        work.referrals.save_status(referral)
        work.emit(events.ReferralStatusChanged(referral, previous))
        work.commit()
    return referral


def get_referral(cmd: commands.GetReferral, uow: UowFactory) -> Referral:
    with uow() as work:
        referral = work.referrals.get(cmd.referral_id)
    if referral is None:
        raise NotFound(f"referral {cmd.referral_id} not found")
    return referral


def list_referrals(cmd: commands.ListReferrals, uow: UowFactory) -> list[Referral]:
    with uow() as work:
        return work.referrals.assigned_to(cmd.provider_id, cmd.case_id)


def list_providers(cmd: commands.ListProviders, uow: UowFactory) -> list[Provider]:
    with uow() as work:
        return work.directory.in_province(cmd.province_code, cmd.service_type)


def load_directory(cmd: commands.LoadDirectory, uow: UowFactory) -> int:
    with uow() as work:
        added = sum(work.directory.upsert(p) for p in cmd.providers)
        work.commit()
    log.info("directory loaded", extra={"fields": {"providers": len(cmd.providers), "added": added}})
    return added


def _assigned(work: ReferralUnitOfWork, referral_id: str, provider_id: str) -> Referral:
    referral = work.referrals.get(referral_id)
    if referral is None:
        raise NotFound(f"referral {referral_id} not found")
    if referral.provider_id != provider_id:
        # The same answer as a missing referral: another agency learns nothing.
        raise NotFound(f"referral {referral_id} not found")
    return referral


