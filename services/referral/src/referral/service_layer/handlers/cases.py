"""Intake's case events: a case and its needs are remembered, consented needs routed, deadlines brought forward,
and what has not started is cancelled when consent goes or the case closes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from referral.domain import commands
from referral.domain.model import NOT_STARTED, OPEN, Case, CaseState, ConsentState, Need, Referral, Status, Survivor
from referral.service_layer.handlers.common import Policy, UowFactory, retry_on_conflict
from referral.service_layer.handlers.routing import leave, log_requested, routable, route, unserved
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform.vocabulary import ReferralReason, RiskLevel, ServiceType

# Emergencies send police protection and a shelter bed first, in the same transaction as the rest.
EMERGENCY_ORDER = (ServiceType.POLICE_PROTECTION, ServiceType.SHELTER)


def _emergency_first(needs: Iterable[commands.NeedToRoute], emergency: bool) -> list[commands.NeedToRoute]:
    if not emergency:
        return list(needs)
    return sorted(needs, key=lambda n: EMERGENCY_ORDER.index(n.service_type)
                  if n.service_type in EMERGENCY_ORDER else len(EMERGENCY_ORDER))


def _case_from(cmd: commands.RouteCase | commands.AddNeed, known: Case | None) -> Case:
    # Her accessibility needs come from intake's assessment (CaseAssessed), not from this event: kept.
    survivor = replace(cmd.survivor, accessibility_needs=known.survivor.accessibility_needs) if known else cmd.survivor
    case = Case(case_id=cmd.case_id, province_code=cmd.province_code, commune_code=cmd.commune_code,
                survivor=survivor, risk_level=cmd.risk_level, emergency=cmd.emergency,
                case_worker_id=cmd.case_worker_id)
    deadlines = [d for d in (known.child_deadline if known else None,
                             cmd.child_deadline if isinstance(cmd, commands.RouteCase) else None) if d]
    case.child_deadline = min(deadlines, default=None)
    return case


def _register_needs(work: ReferralUnitOfWork, policy: Policy, cmd: commands.RouteCase | commands.AddNeed,
                    needs: list[commands.NeedToRoute]) -> list[Referral]:
    now = policy.clock()
    case = _case_from(cmd, None)
    # A registration is most often of a case not stored yet: one insert then, no read first; and its needs
    # inserted as the event gives them, no read first either, unless one was stored before (a consent event
    # overtook the registration). A case not stored yet has no referral.
    fresh = isinstance(cmd, commands.RouteCase) and work.cases.insert_new(case)
    if fresh and work.cases.insert_new_needs((given := _given(case, needs)).values()):
        return _route_needs(work, policy, case, needs, given, {}, now, saved=True)
    if not fresh:
        known = work.cases.get(cmd.case_id, for_update=True)
        if known is not None and known.state is not CaseState.OPEN:
            return []  # closed or erased before this event arrived
        case = _case_from(cmd, known)
        work.cases.save(case)
    # Every need's row and referrals in one read each (a need never stored has no referral).
    stored = work.cases.needs_by_id(item.need_id for item in needs)
    return _route_needs(work, policy, case, needs, stored, work.referrals.for_needs(stored), now, saved=False)


def _given(case: Case, needs: list[commands.NeedToRoute]) -> dict[str, Need]:
    """The needs as this event states them, none stored before: consent given where it says so."""
    made: dict[str, Need] = {}
    for item in needs:
        _give_if_consented(made.setdefault(item.need_id, Need(item.need_id, case.case_id, item.service_type)), item)
    return made


def _give_if_consented(need: Need, item: commands.NeedToRoute) -> None:
    if item.consented and need.consent is not ConsentState.GIVEN:
        need.give(item.consent_id, item.sectors, item.expires_at, at_registration=True)


def _route_needs(work: ReferralUnitOfWork, policy: Policy, case: Case, needs: list[commands.NeedToRoute],
                 stored: dict[str, Need], referred: dict[str, list[Referral]], now: datetime, saved: bool
                 ) -> list[Referral]:
    """Each consented need not yet served is routed, emergencies' police and shelter first. `saved`: the needs
    are stored as `stored` has them already."""
    made = []
    for item in _emergency_first(needs, case.emergency):
        need = stored.setdefault(item.need_id, Need(item.need_id, case.case_id, item.service_type))
        if not saved:
            _give_if_consented(need, item)
            work.cases.save_need(need)
        earlier = referred.setdefault(need.need_id, [])
        if routable(case, need, now) and unserved(earlier):
            routed = route(work, policy, case, need, now, earlier, previous=earlier[-1] if earlier else None)
            earlier.append(routed)  # a need listed twice is routed once
            made.append(routed)
    return made


def _cancel(work: ReferralUnitOfWork, referrals: Iterable[Referral], statuses: frozenset[Status],
            reason: ReferralReason, now: datetime) -> None:
    """Those of `referrals` in one of `statuses` are cancelled, their beds given back."""
    for referral in referrals:
        if referral.status in statuses:
            leave(work, referral, Status.CANCELLED, reason, now)


@retry_on_conflict
def route_case(cmd: commands.RouteCase, uow: UowFactory, policy: Policy) -> list[Referral]:
    """A new case: each consented need goes to the nearest suitable provider."""
    with uow() as work:
        made = _register_needs(work, policy, cmd, list(cmd.needs))
        work.commit()
    log_requested(made)
    return made


@retry_on_conflict
def add_need(cmd: commands.AddNeed, uow: UowFactory, policy: Policy) -> list[Referral]:
    with uow() as work:
        made = _register_needs(work, policy, cmd, [cmd.need])
        work.commit()
    log_requested(made)
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
        if given and routable(case, need, now) and unserved(earlier):
            assert case is not None
            made = route(work, policy, case, need, now, earlier, previous=earlier[-1] if earlier else None)
        work.commit()
    log_requested([made] if made else [])
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
        _cancel(work, work.referrals.for_need(cmd.need_id), NOT_STARTED, ReferralReason.CONSENT_WITHDRAWN, now)
        work.commit()


@retry_on_conflict
def close_case(cmd: commands.CloseCase, uow: UowFactory, policy: Policy) -> None:
    now = policy.clock()
    with uow() as work:
        case = work.cases.get(cmd.case_id, for_update=True)
        if case is not None and case.state is CaseState.OPEN:
            case.state = CaseState.CLOSED
            work.cases.save(case)
            _cancel(work, work.referrals.for_case(cmd.case_id), NOT_STARTED, ReferralReason.CASE_CLOSED, now)
        work.commit()


def note_accessibility(cmd: commands.NoteAccessibility, uow: UowFactory, policy: Policy) -> None:
    """What she needs to reach and use a shelter: routing matches it from her next need on."""
    with uow() as work:
        case = work.cases.get(cmd.case_id, for_update=True)
        if case is not None and case.state is CaseState.OPEN:
            case.survivor = replace(case.survivor, accessibility_needs=cmd.accessibility_needs)
            work.cases.save(case)
        work.commit()


def reassign_case_worker(cmd: commands.ReassignCaseWorker, uow: UowFactory, policy: Policy) -> None:
    with uow() as work:
        case = work.cases.get(cmd.case_id, for_update=True)
        if case is not None and case.state is CaseState.OPEN and cmd.case_worker_id:
            case.case_worker_id = cmd.case_worker_id
            work.cases.save(case)
        work.commit()


@retry_on_conflict
def erase_case(cmd: commands.EraseCase, uow: UowFactory, policy: Policy) -> None:
    """Everything open is cancelled and its beds released; what routing knew of the survivor goes."""
    now = policy.clock()
    with uow() as work:
        # An erasure that overtakes the registration still leaves a tombstone: the case is never routed.
        case = work.cases.get(cmd.case_id, for_update=True) or Case(cmd.case_id, "", "", Survivor(), RiskLevel.LOW,
                                                                    emergency=False, case_worker_id="")
        _cancel(work, work.referrals.for_case(cmd.case_id), OPEN, ReferralReason.CASE_ERASED, now)
        case.erase()
        work.cases.save(case)
        for need in work.cases.needs(cmd.case_id):
            need.consent, need.sectors = ConsentState.WITHDRAWN, frozenset()
            need.withdrawn_consent_id = max(need.consent_id, need.withdrawn_consent_id)
            work.cases.save_need(need)
        work.commit()
