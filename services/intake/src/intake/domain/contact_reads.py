"""Who may read a survivor's contact, for what. Intake trusts its own record of the referral, not the caller's
word: a service reads only for a referral intake saw accepted, only what its purpose needs and her consent
allows, and every read is audited. No I/O, no protobuf."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from intake.domain.model import DATA_CATEGORIES, SAFE_TIMES, Case, CaseStatus, Consent, ConsentStatus
from refnet_platform.caller import Caller
from refnet_platform.errors import FailedPrecondition, PermissionDenied, Unavailable
from refnet_platform.vocabulary import ReferralStatus, ServiceType


def consent_for_contact(case: Case, service_type: ServiceType, sector: str, now: datetime) -> Consent:
    """The consent that lets a recipient in `sector` ("" when not given) read the contact for
    `service_type`; raises why not."""
    if case.status is CaseStatus.ERASED:
        raise FailedPrecondition(f"case {case.case_id} was erased: its personal data no longer exists")
    if case.status is CaseStatus.CLOSED:
        raise FailedPrecondition(f"case {case.case_id} is closed")
    need = case.need_for(service_type)
    consent = need.consent if need else None
    if consent is None:
        raise PermissionDenied(f"no consent covers {service_type} for case {case.case_id}")
    status = consent.status(now)
    if status is ConsentStatus.WITHDRAWN:
        raise FailedPrecondition(f"consent for {service_type} was withdrawn")
    if status is ConsentStatus.EXPIRED:
        raise FailedPrecondition(f"consent for {service_type} expired at {consent.expires_at.isoformat()}")
    if consent.recipient_sectors and not sector:
        raise PermissionDenied(f"consent for {service_type} covers only {', '.join(consent.recipient_sectors)}: "
                               "recipient_sector is required")
    if not consent.covers(sector):
        raise PermissionDenied(f"consent for {service_type} does not cover the {sector} sector")
    return consent


# Referral statuses as intake records them from referral's events: ReferralStatus names in lower case,
# the same words as referral's own Status.
REFERRAL_STATUSES = tuple(str(s) for s in ReferralStatus)
REFERRAL_REQUESTED = "requested"
ACCEPTED = frozenset({"accepted", "in_service"})
# An accepted referral that ended without being delivered (referral's ALLOWED: accepted or in service
# to cancelled, failed or expired; expired on to escalated).
FELL_THROUGH = frozenset({"cancelled", "failed", "expired", "escalated"})


@dataclass(frozen=True)
class ContactPurpose:
    """What a calling service may read for one purpose (at most: the consent may allow less), and on
    which referrals: one its provider accepted, now in one of `statuses`; `for_provider`: recipient_id
    must be that provider."""

    categories: frozenset[str]
    statuses: frozenset[str]
    for_provider: bool


# Calling service (its certificate CN) -> purpose code -> what it may read. Anything else reads nothing.
CONTACT_PURPOSES: dict[str, dict[str, ContactPurpose]] = {
    # GetSurvivorContact: the agency that accepted the referral, while it is accepted or in service.
    "referral": {"provider_accepted_referral": ContactPurpose(
        frozenset({"name", "phone", "address", "safe_contact"}), ACCEPTED, for_provider=True)},
    # A text to her own safe phone, inside her safe times: "confirmed" once accepted, "changed" when an
    # accepted referral falls through. It needs neither who she is, nor where she lives, nor her note.
    "notifications": {"survivor_notice": ContactPurpose(
        frozenset({"phone", SAFE_TIMES}), ACCEPTED | FELL_THROUGH, for_provider=False)},
}


@dataclass(frozen=True)
class ReferralRecord:
    """A referral made for one of intake's cases, as referral's events reported it."""

    referral_id: str
    case_id: str
    need_id: str
    provider_id: str
    status: str
    accepted: bool  # its provider accepted it at some point (it may have ended since)


def unseen_referral(case: Case, record: ReferralRecord | None, purpose: ContactPurpose, service_type: ServiceType,
                    recipient_id: str) -> str:
    """Why intake's record does not show this referral, for this service and recipient ("" if it does).
    The caller is told only "not found"; the reason goes to the audit log."""
    if record is None or record.case_id != case.case_id:
        return "no such referral on this case"
    need = case.need(record.need_id)
    if need is None or need.service_type is not service_type:
        return f"the referral is not for {service_type}"
    if purpose.for_provider and record.provider_id != recipient_id:
        return "the recipient is not the referral's provider"
    return ""


def require_referral_status(record: ReferralRecord, purpose: ContactPurpose) -> None:
    if record.accepted and record.status in purpose.statuses:
        return
    if record.status == REFERRAL_REQUESTED:
        # Most likely accepted a moment ago and its event is still on its way here: ask again shortly.
        raise Unavailable(f"referral {record.referral_id} is not accepted on intake's record yet: try again shortly")
    state = record.status if record.accepted else f"{record.status}, never accepted"
    raise FailedPrecondition(f"referral {record.referral_id} is {state}: no contact details are read for it")


def readable(consented: tuple[str, ...], purpose: ContactPurpose) -> tuple[str, ...]:
    """What a purpose reads: the categories both the consent and the purpose allow."""
    read = [c for c in DATA_CATEGORIES if c in consented and c in purpose.categories]
    if "safe_contact" in consented and "safe_contact" not in purpose.categories and SAFE_TIMES in purpose.categories:
        read.append(SAFE_TIMES)
    return tuple(read)


@dataclass(frozen=True)
class AuditEntry:
    """One row of the append-only audit log: who did what to whose data, when and why. Codes and ids
    only (and a legal basis as cited)."""

    actor: Caller
    action: str
    case_id: str
    at: datetime
    purpose: str = ""
    need_id: str = ""
    referral_id: str = ""
    recipient_id: str = ""
    detail: str = ""
