"""Who may see and change a referral, and requests carried out once: the rules every api handler applies."""

from __future__ import annotations

from datetime import datetime

from referral.domain.model import Referral
from referral.service_layer.authorization import Scope, authorize
from referral.service_layer.unit_of_work import ReferralUnitOfWork
from refnet_platform.caller import Caller, Role
from refnet_platform.errors import NotFound
from refnet_platform.requests import require_request_id


def caller_key(caller: Caller) -> str:
    """Whose request ids these are: an agency's are the agency's (its system and its staff share them, so a
    change retried from another desk is still done once); anyone else's are their own."""
    if caller.role is Role.AGENCY:
        return f"{caller.role}:{caller.organisation_id}"
    return f"{caller.role}:{caller.subject_id}"


def actor_of(caller: Caller) -> str:
    """Who acted, for the referral's history: the person (or the machine), never only their agency."""
    return caller.audit_name[:120]


def _not_found(referral_id: str) -> NotFound:
    # One answer for a made-up id and for a referral outside the caller's remit: nothing is learned.
    return NotFound(f"referral {referral_id} not found")


def _in_scope(scope: Scope, caller: Caller, referral: Referral) -> bool:
    return scope.allows(caller, province_code=referral.province_code, provider_id=referral.provider_id)


def referral_for(work: ReferralUnitOfWork, caller: Caller, method: str, referral_id: str, for_update: bool = False
                 ) -> Referral:
    """The referral, if `method`'s rule lets the caller see it; else exactly what a made-up id gets."""
    scope = authorize(method, caller)
    referral = work.referrals.get(referral_id, for_update=for_update) if referral_id else None
    if referral is None or not _in_scope(scope, caller, referral):
        raise _not_found(referral_id)
    return referral


def required_request_id(request_id: str) -> None:
    require_request_id(request_id)


def idempotent(work: ReferralUnitOfWork, caller: Caller, request_id: str, operation: str, referral_id: str,
               now: datetime) -> bool:
    """True if this request was already carried out (then nothing must change); else records it. An id used
    for another operation or referral is ALREADY_EXISTS naming client_request_id."""
    if work.requests.check(caller_key(caller), request_id, operation, referral_id) is not None:
        return True
    work.requests.add(caller_key(caller), request_id, operation, referral_id, referral_id, now)
    return False
