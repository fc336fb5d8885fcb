"""The partner agencies' API: an agency accepts, declines, starts, reports progress on, completes or fails its
referral; each change is done once per request id and recorded with who made it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from referral.domain import commands, events
from referral.domain.model import (
    Referral,
    SmsAnswer,
    SmsAnswerProblem,
    Status,
    reroutes,
    short_reference_code,
)
from referral.service_layer.authorization import authorize
from referral.service_layer.handlers.access import actor_of, idempotent, referral_for, required_request_id
from referral.service_layer.handlers.common import Policy, UowFactory, ids, retry_on_conflict
from referral.service_layer.handlers.routing import leave, reroute, transition
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from refnet_platform.phone import normalise_phone
from refnet_platform.vocabulary import StatusReason

log = logging.getLogger(__name__)

# A change to a referral: the unit of work, the referral, the time, and who acted (for the history).
Change = Callable[[ReferralUnitOfWork, Referral, datetime, str], None]


def _agency_change(caller: Caller, method: str, referral_id: str, request_id: str, operation: str, uow: UowFactory,
                   policy: Policy, change: Change) -> Referral:
    authorize(method, caller)
    required_request_id(request_id)
    with uow() as work:
        now = policy.clock()
        referral = referral_for(work, caller, method, referral_id, for_update=True)
        if idempotent(work, caller, request_id, operation, referral.referral_id, now):
            return referral
        change(work, referral, now, actor_of(caller))
        work.commit()
    log.info("agency changed a referral", extra={"fields": {**ids(referral), "operation": operation}})
    return referral


def _moves_to(status: Status, reason: StatusReason | None = None) -> Change:
    """A change that is one lifecycle step."""
    return lambda work, referral, now, actor: transition(work, referral, status, reason, now, actor)


@retry_on_conflict
def accept_referral(cmd: commands.AcceptReferral, uow: UowFactory, policy: Policy) -> Referral:
    authorize("AcceptReferral", cmd.caller)
    if cmd.provider_id and cmd.provider_id != cmd.caller.organisation_id:
        raise PermissionDenied("provider_id must be your own agency's (or left empty): your identity says which")
    return _agency_change(cmd.caller, "AcceptReferral", cmd.referral_id, cmd.client_request_id, "accept", uow, policy,
                          _moves_to(Status.ACCEPTED))


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
        leave(work, referral, Status.REJECTED, reason, now, actor)
        if reroutes(reason):
            reroute(work, policy, referral, now)

    return _agency_change(cmd.caller, "DeclineReferral", cmd.referral_id, cmd.client_request_id, "decline", uow, policy,
                          decline)


@retry_on_conflict
def start_service(cmd: commands.StartService, uow: UowFactory, policy: Policy) -> Referral:
    return _agency_change(cmd.caller, "StartService", cmd.referral_id, cmd.client_request_id, "start", uow, policy,
                          _moves_to(Status.IN_SERVICE))


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

    return _agency_change(cmd.caller, "ReportProgress", cmd.referral_id, cmd.client_request_id, "progress", uow, policy,
                          report)


@retry_on_conflict
def complete_referral(cmd: commands.CompleteReferral, uow: UowFactory, policy: Policy) -> Referral:
    outcome = cmd.outcome
    if outcome is None:
        raise InvalidArgument("outcome", "choose an outcome")
    return _agency_change(cmd.caller, "CompleteReferral", cmd.referral_id, cmd.client_request_id, "complete", uow,
                          policy, _moves_to(Status.COMPLETED, outcome))


@retry_on_conflict
def report_failure(cmd: commands.ReportFailure, uow: UowFactory, policy: Policy) -> Referral:
    reason = cmd.reason
    if reason is None:
        raise InvalidArgument("reason", "choose a failure reason")
    return _agency_change(cmd.caller, "ReportFailure", cmd.referral_id, cmd.client_request_id, "fail", uow, policy,
                          lambda work, r, now, actor: leave(work, r, Status.FAILED, reason, now, actor))


# The SMS door (services/notifications) calls as refnet service "notifications".
SMS_DOOR = "notifications"


def answer_by_sms(cmd: commands.AnswerBySms, uow: UowFactory, policy: Policy) -> SmsAnswer:
    """A text from a provider's duty phone: the phone decides the provider, then the answer is that agency's
    AcceptReferral or DeclineReferral (same rules, same history, done once per gateway message id)."""
    authorize("AnswerBySms", cmd.caller)
    if cmd.caller.subject_id != SMS_DOOR:
        raise PermissionDenied(f"AnswerBySms is the SMS door's, not {cmd.caller.subject_id}'s")
    phone = normalise_phone(cmd.sender_phone)
    with uow() as work:
        duty = work.directory.duty_phone(phone) if phone else None
        code = short_reference_code(cmd.reference)
        found = work.referrals.by_short_reference(duty.provider_id, code) if duty and code else []
    if duty is None:
        raise NotFound("no provider's duty contact holds this phone")
    if not cmd.reference:
        return SmsAnswer(duty.provider_id, duty.language)
    if not found:
        return SmsAnswer(duty.provider_id, duty.language, problem=SmsAnswerProblem.UNKNOWN_REFERENCE)
    # Should two of its referrals share a reference, the one still waiting for an answer.
    referral = next((r for r in found if r.status is Status.REQUESTED), found[0])
    as_agency = Caller("sms", Role.AGENCY, organisation_id=duty.provider_id)
    request_id = f"sms:{cmd.client_request_id}"[:100]
    try:
        if cmd.accept:
            done = accept_referral(commands.AcceptReferral(as_agency, referral.referral_id, request_id), uow, policy)
        else:
            done = decline_referral(commands.DeclineReferral(as_agency, referral.referral_id, request_id, cmd.reason),
                                    uow, policy)
    except FailedPrecondition:
        return SmsAnswer(duty.provider_id, duty.language, referral, SmsAnswerProblem.NOT_OPEN)
    return SmsAnswer(duty.provider_id, duty.language, done)
