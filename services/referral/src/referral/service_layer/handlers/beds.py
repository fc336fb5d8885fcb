"""Shelter's bed events: the live bed figures routing ranks by, and each answer about a referral's bed applied
through the bed's state machine (referral.domain.model.BED_MOVES)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from referral.domain import commands
from referral.domain.model import BedAnswer, CaseState, Referral, Status
from referral.service_layer.handlers.common import Policy, UowFactory, ids, retry_on_conflict
from referral.service_layer.handlers.routing import escalate, reroute, transition
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform.vocabulary import BedRejectionReason, ReferralReason, StatusReason, TargetGroup

log = logging.getLogger(__name__)

# Updates the shelter's figures before the answer is applied: the unit of work, the referral (None when the
# event names none referral knows at that shelter) and the time.
Figures = Callable[[ReferralUnitOfWork, Referral | None, datetime], None]


def _no_figures(work: ReferralUnitOfWork, referral: Referral | None, now: datetime) -> None:
    return None


def _answered(uow: UowFactory, policy: Policy, referral_id: str, shelter_id: str, answer: BedAnswer,
              reason: StatusReason | None, figures: Figures = _no_figures) -> None:
    """Applies one of shelter's answers: the bed moves, then the lifecycle steps the state machine names follow;
    a referral that ends rejected or escalated goes on to the next provider."""
    now = policy.clock()
    with uow() as work:
        referral = work.referrals.get(referral_id, for_update=True)
        if referral is not None and referral.shelter_id != shelter_id:
            referral = None
        figures(work, referral, now)
        steps = referral.answer_bed(answer, now) if referral is not None else None
        if referral is not None and steps is not None:
            if not steps:
                work.referrals.save(referral)  # answer_bed touched it
                if answer is BedAnswer.REJECTED:
                    log.warning("bed rejected after acceptance", extra={"fields": ids(referral)})
            elif steps[-1] is Status.ESCALATED:
                assert isinstance(reason, ReferralReason)
                escalate(work, policy, referral, reason, "", now)
            else:
                for status in steps:
                    transition(work, referral, status, reason, now)
                if referral.status is Status.REJECTED:
                    reroute(work, policy, referral, now)
        work.commit()


def _asked_pools(work: ReferralUnitOfWork, referral: Referral) -> tuple[TargetGroup, ...]:
    """The pools the referral's bed request could take from; none if the survivor is no longer known."""
    provider = work.directory.get(referral.provider_id)
    case = work.cases.get(referral.case_id)
    if provider is None or case is None or case.state is CaseState.ERASED:
        return ()
    return provider.bed_pools(case.survivor)


@retry_on_conflict
def record_bed_reserved(cmd: commands.RecordBedReserved, uow: UowFactory, policy: Policy) -> None:
    def figures(work: ReferralUnitOfWork, referral: Referral | None, now: datetime) -> None:
        if cmd.target_group is not None:
            work.beds.set(cmd.shelter_id, cmd.target_group, cmd.free_after, now)

    _answered(uow, policy, cmd.referral_id, cmd.shelter_id, BedAnswer.RESERVED, None, figures)


@retry_on_conflict
def record_bed_rejected(cmd: commands.RecordBedRejected, uow: UowFactory, policy: Policy) -> None:
    """No bed: the referral is rejected with shelter's reason and the next shelter is tried."""
    def figures(work: ReferralUnitOfWork, referral: Referral | None, now: datetime) -> None:
        if cmd.reason == BedRejectionReason.NO_CAPACITY and referral is not None:
            # Every pool the request could take from is full (the event names none).
            for group in _asked_pools(work, referral):
                work.beds.set(cmd.shelter_id, group, 0, now)

    _answered(uow, policy, cmd.referral_id, cmd.shelter_id, BedAnswer.REJECTED,
              cmd.reason or BedRejectionReason.NO_CAPACITY, figures)


def _freed(cmd: commands.RecordHoldExpired | commands.RecordBedReleased) -> Figures:
    def figures(work: ReferralUnitOfWork, referral: Referral | None, now: datetime) -> None:
        if cmd.target_group is not None:
            work.beds.adjust(cmd.shelter_id, cmd.target_group, +1, now)

    return figures


@retry_on_conflict
def record_hold_expired(cmd: commands.RecordHoldExpired, uow: UowFactory, policy: Policy) -> None:
    """The survivor did not arrive while the bed was held."""
    _answered(uow, policy, cmd.referral_id, cmd.shelter_id, BedAnswer.HOLD_EXPIRED, ReferralReason.HOLD_EXPIRED,
              _freed(cmd))


@retry_on_conflict
def record_bed_released(cmd: commands.RecordBedReleased, uow: UowFactory, policy: Policy) -> None:
    _answered(uow, policy, cmd.referral_id, cmd.shelter_id, BedAnswer.RELEASED, None, _freed(cmd))


@retry_on_conflict
def record_bed_occupied(cmd: commands.RecordBedOccupied, uow: UowFactory, policy: Policy) -> None:
    """The survivor arrived: the shelter's referral is in service (accepted on the way if need be)."""
    _answered(uow, policy, cmd.referral_id, cmd.shelter_id, BedAnswer.OCCUPIED, ReferralReason.SURVIVOR_ARRIVED)


def record_capacity(cmd: commands.RecordCapacity, uow: UowFactory, policy: Policy) -> None:
    with uow() as work:
        work.beds.set(cmd.shelter_id, cmd.target_group, cmd.capacity - cmd.reserved - cmd.occupied, policy.clock(),
                      capacity=cmd.capacity)
        work.commit()
