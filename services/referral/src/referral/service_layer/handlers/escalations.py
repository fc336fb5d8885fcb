"""Escalations: the SLA timer expires what is overdue (the province's supervisor is told and the need goes on),
and a supervisor sends an escalated referral's need to a provider of their choice."""

from __future__ import annotations

import logging

from referral.adapters.repository import Conflict
from referral.domain import commands
from referral.domain.model import Referral, Status
from referral.domain.routing import area_rank
from referral.service_layer.authorization import authorize
from referral.service_layer.handlers.access import actor_of, caller_key, referral_for, required_request_id
from referral.service_layer.handlers.common import Policy, UowFactory, retry_on_conflict
from referral.service_layer.handlers.routing import escalate, log_requested, request, routable, unserved
from refnet_platform import metrics
from refnet_platform.errors import FailedPrecondition, InvalidArgument

log = logging.getLogger(__name__)


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
                escalate(work, policy, referral, reason, sla, now)
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


@retry_on_conflict
def assign_provider(cmd: commands.AssignProvider, uow: UowFactory, policy: Policy) -> Referral:
    """A supervisor of the case's province sends an escalated referral's need to a provider of their choice that
    serves the case's area."""
    authorize("AssignProvider", cmd.caller)
    required_request_id(cmd.client_request_id)
    now = policy.clock()
    with uow() as work:
        escalated = referral_for(work, cmd.caller, "AssignProvider", cmd.referral_id, for_update=True)
        seen = work.requests.check(caller_key(cmd.caller), cmd.client_request_id, "assign", escalated.referral_id)
        if seen is not None:
            done = work.referrals.get(seen.result_id)
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
        if not routable(case, need, now):
            raise FailedPrecondition("no valid consent for this need (or the case is closed): no referral")
        assert case is not None and need is not None
        if area_rank(provider, case.province_code, case.commune_code) is None:
            # Routing's own reach: her commune, her province, a neighbouring province or a declared service area.
            raise InvalidArgument("provider_id", f"{provider.provider_id} does not serve the case's area")
        if not unserved(work.referrals.for_need(need.need_id)):
            raise FailedPrecondition("the need is already with a provider")
        made = request(work, policy, case, need, provider, now, escalated,
                        attempt=len(work.referrals.for_need(need.need_id)) + 1, actor=actor_of(cmd.caller))
        work.requests.add(caller_key(cmd.caller), cmd.client_request_id, "assign", escalated.referral_id,
                          made.referral_id, now)
        work.commit()
    log_requested([made], logging.INFO)  # a supervisor's choice, not routine routing
    return made
