"""What only reads (cosmicpython's views): referrals, escalations, the directory and, through intake, a survivor's
contact details. Each opens a unit of work, reads, and commits nothing."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

import refnet_geo as geo
from referral.domain import commands
from referral.domain.model import OPEN, Case, Referral, Status, Survivor, SurvivorContact
from referral.domain.providers import DirectoryEntry, Provider
from referral.domain.routing import RoutingRequest, area_rank, rank_providers
from referral.service_layer.authorization import Scope, authorize
from referral.service_layer.handlers.access import referral_for
from referral.service_layer.handlers.common import Policy, UowFactory, ids
from referral.service_layer.handlers.routing import candidates, routable
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform.caller import Caller
from refnet_platform.errors import FailedPrecondition, InvalidArgument, NotFound
from refnet_platform.vocabulary import ServiceType, TargetGroup

log = logging.getLogger(__name__)

MAX_PAGE = 500


class ContactReader(Protocol):
    """Intake's internal contact API: checks consent and acceptance again, audits every read."""

    def read(self, *, case_id: str, referral_id: str, recipient_id: str, recipient_sector: str,
             service_type: ServiceType, purpose: str) -> SurvivorContact: ...


# --- referrals ---------------------------------------------------------------------------------


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
        return referral_for(work, cmd.caller, "GetReferral", cmd.referral_id)


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


def get_survivor_contact(cmd: commands.GetSurvivorContact, uow: UowFactory, policy: Policy,
                         contacts: ContactReader) -> SurvivorContact:
    """Only the assigned agency, only after it accepted, only while consent holds; intake then returns the
    fields the consent covers and audits the read."""
    now = policy.clock()
    with uow() as work:
        referral = referral_for(work, cmd.caller, "GetSurvivorContact", cmd.referral_id)
        if referral.status not in (Status.ACCEPTED, Status.IN_SERVICE):
            raise FailedPrecondition("contact details are shared only once you have accepted the referral "
                                     f"(it is {referral.status})")
        case = work.cases.get(referral.case_id)
        need = work.cases.need(referral.need_id)
        provider = work.directory.get(referral.provider_id)
        if not routable(case, need, now) or (provider is not None and need is not None
                                               and not provider.covered_by(need.sectors)):
            raise FailedPrecondition("the survivor's consent does not cover sharing her contact details with you")
    contact = contacts.read(case_id=referral.case_id, referral_id=referral.referral_id,
                            recipient_id=referral.provider_id, recipient_sector=provider.sector if provider else "",
                            service_type=referral.service_type, purpose="provider_accepted_referral")
    log.info("survivor contact read", extra={"fields": {**ids(referral), "categories": list(contact.categories)}})
    return contact


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
        pool = candidates(work, case, cmd.service_type)
        accept_by, _ = policy.sla.deadlines(case, now)
        ranked = rank_providers(pool, RoutingRequest(cmd.service_type, case.province_code, case.commune_code,
                                                     case.survivor, now, accept_by),
                                work.beds.free(p.shelter_id for p in pool))
        entries = _entries(work, [c.provider for c in ranked], now, case.survivor)
    return [DirectoryEntry(e.provider, e.open_now, e.beds_free, e.beds_capacity,
                           area_rank(e.provider, case.province_code, case.commune_code)) for e in entries]


def export_directory(cmd: commands.ExportDirectory, uow: UowFactory, policy: Policy) -> list[DirectoryEntry]:
    with uow() as work:
        return _entries(work, work.directory.all(), policy.clock())
