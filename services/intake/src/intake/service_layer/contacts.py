"""Personal data, for other refnet services: a survivor's contact details for the recipient of an accepted
referral, only as far as consent and the calling service's purpose allow, every read and refusal audited."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from intake.domain import commands
from intake.domain.contact_reads import (
    CONTACT_PURPOSES,
    AuditEntry,
    consent_for_contact,
    readable,
    require_referral_status,
    unseen_referral,
)
from intake.domain.model import RECIPIENT_SECTORS, Contact
from intake.domain.validation import require_code
from intake.service_layer.authorization import authorize
from intake.service_layer.handlers import UowFactory, case_not_found, require_ids
from refnet_platform.clock import Clock
from refnet_platform.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

log = logging.getLogger(__name__)
# The SMS door (services/notifications) calls as refnet service "notifications".
SMS_DOOR = "notifications"


@dataclass(frozen=True)
class SmsPreference:
    changed: list[str]  # the cases this text changed (none: already so; nothing is confirmed again)
    case_ids: list[str]  # every case holding the number


def get_case_contact(cmd: commands.GetCaseContact, uow: UowFactory, clock: Clock
                     ) -> tuple[Contact, tuple[str, ...]]:
    """Her contact, for a referral intake's own record shows accepted by that recipient: only the fields
    both the consent (for the service and the recipient's sector) and the calling service's purpose
    allow. An unknown service or purpose, and a referral not on record for this case, service and
    recipient, answer exactly as a missing case. Every read is audited, and so is every refusal on an
    existing case (that row is committed before the refusal is raised, with the true reason)."""
    authorize("GetCaseContact", cmd.caller)
    require_ids(cmd, "case_id", "referral_id", "recipient_id")
    if cmd.service_type is None:
        raise InvalidArgument("service_type", "is required")
    if cmd.recipient_sector and cmd.recipient_sector not in RECIPIENT_SECTORS:
        raise InvalidArgument("recipient_sector", f"must be one of {', '.join(RECIPIENT_SECTORS)}")
    require_code(cmd.purpose, "purpose")
    service_type = cmd.service_type
    with uow() as work:
        now = clock()
        case = work.cases.get(cmd.case_id)
        if case is None:
            raise case_not_found(cmd.case_id)
        need = case.need_for(service_type)

        def audit(action: str, detail: str) -> None:
            work.audit.append(AuditEntry(
                actor=cmd.caller, action=action, case_id=case.case_id, at=now, purpose=cmd.purpose,
                need_id=need.need_id if need else "", referral_id=cmd.referral_id, recipient_id=cmd.recipient_id,
                detail=detail))

        purpose = CONTACT_PURPOSES.get(cmd.caller.subject_id, {}).get(cmd.purpose)
        record = work.referrals.get(cmd.referral_id)
        unseen = (f"{cmd.caller.subject_id} has no purpose {cmd.purpose}" if purpose is None
                  else unseen_referral(case, record, purpose, service_type, cmd.recipient_id))
        if unseen:
            audit("contact_refused", f"not found: {unseen}")
            work.commit()
            raise case_not_found(cmd.case_id)
        assert purpose is not None and record is not None
        try:
            require_referral_status(record, purpose)
            consent = consent_for_contact(case, service_type, cmd.recipient_sector, now)
            categories = readable(consent.data_categories, purpose)
            if not categories:
                raise PermissionDenied(f"consent for {service_type} covers nothing the {cmd.purpose} purpose reads")
            personal = work.cases.read_personal_data(case.case_id)
            if personal is None:
                raise FailedPrecondition(f"case {case.case_id} has no readable personal data")
            stopped = work.cases.sms_stopped(case.case_id)
        except DomainError as refusal:
            audit("contact_refused", str(refusal))
            work.commit()
            raise
        audit("contact_read", ",".join(categories))
        work.commit()
    log.info("case contact read", extra={"fields": {"case_id": case.case_id, "referral_id": cmd.referral_id,
                                                    "recipient_id": cmd.recipient_id, "purpose": cmd.purpose}})
    return replace(personal[0], sms_stopped=stopped).only(categories), categories


def set_sms_preference(cmd: commands.SetSmsPreference, uow: UowFactory, clock: Clock) -> SmsPreference:
    """A survivor texted STOP (or START) from a number: every case holding it (by its keyed hash) records that no
    SMS may go to her (or may again). Only the SMS door asks; the number is hashed and forgotten. Audited."""
    authorize("SetSmsPreference", cmd.caller)
    if cmd.caller.subject_id != SMS_DOOR:
        raise PermissionDenied(f"SetSmsPreference is the SMS door's, not {cmd.caller.subject_id}'s")
    with uow() as work:
        now = clock()
        case_ids = work.cases.with_phone(cmd.sender_phone)
        if not case_ids:
            raise NotFound("no case holds this number")
        changed = work.cases.stop_sms(case_ids, now) if cmd.stop else work.cases.start_sms(case_ids)
        action = "sms_stopped" if cmd.stop else "sms_started"
        for case_id in changed:
            work.audit.append(AuditEntry(actor=cmd.caller, action=action, case_id=case_id, at=now,
                                         purpose="survivor_texted"))
        work.commit()
    log.info("sms preference", extra={"fields": {"action": action, "cases": len(case_ids), "changed": len(changed)}})
    return SmsPreference(changed, case_ids)


