"""Validation of what a request asks for, against intake's model (intake.domain.model): ids and codes, places,
the survivor and her contact, needs and consent terms, calls.

Each failure names the request field (InvalidArgument(field, problem)) and never echoes personal data back: the
message travels to the caller, to span status and possibly to logs.
"""

from __future__ import annotations

import re
from datetime import datetime

import refnet_geo as geo
from intake.domain.model import (
    ADULT_AGE,
    AGE_BANDS,
    CASE_OUTCOMES,
    CHILD_AGE_BANDS,
    CLOCK_SKEW,
    DATA_CATEGORIES,
    DEFAULT_CONSENT_VALIDITY,
    IMPLIED_DATA_CATEGORIES,
    LIMITS,
    MAX_AGE,
    MAX_CALL_SECONDS,
    MAX_ID,
    MAX_SAFE_TIMES,
    RECIPIENT_SECTORS,
    CallDetails,
    CallOutcome,
    Consent,
    ConsentGiver,
    ConsentTerms,
    Contact,
    LegalBasis,
    NeedSpec,
    Place,
    SafeTime,
    Survivor,
)
from refnet_platform.errors import InvalidArgument
from refnet_platform.vocabulary import ServiceType

_PHONE = re.compile(r"^\+?[0-9][0-9 .()-]{2,24}$")
_HH_MM = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
WHOLE_DAY_END = "24:00"
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def require_id(value: str, field: str) -> None:
    if not value.strip():
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_ID:
        raise InvalidArgument(field, f"at most {MAX_ID} characters")


def require_code(value: str, field: str) -> None:
    if not _CODE.match(value):
        raise InvalidArgument(field, "a lower-case code such as provider_accepted_referral is required")


def resolve_place(place: Place, recorded_at: datetime, prefix: str = "") -> Place:
    """The place on the 2025 map: old codes map to their successors; unknown codes, a commune outside
    its province and a district named after 1 July 2025 are refused, naming the field."""
    fields = (f"{prefix}province_code", f"{prefix}commune_code", f"{prefix}district_code")
    if not place.province_code.strip():
        raise InvalidArgument(fields[0], "is required")
    try:
        location = geo.resolve_location(place.province_code, place.commune_code, place.district_code,
                                        on=recorded_at, fields=fields)
    except geo.GeoError as err:
        raise InvalidArgument(err.field, err.problem) from None
    return Place(location.province.code, location.commune.code if location.commune else "")


def validate_survivor(survivor: Survivor) -> None:
    band = survivor.age_band_given
    if band is not None and band not in AGE_BANDS:
        raise InvalidArgument("survivor.age_band", f"must be one of {', '.join(AGE_BANDS)}")
    if survivor.age is not None:
        if not 0 <= survivor.age <= MAX_AGE:
            raise InvalidArgument("survivor.age", f"must be between 0 and {MAX_AGE}")
        if survivor.is_child and survivor.age >= ADULT_AGE:
            raise InvalidArgument("survivor.age", f"a child is under {ADULT_AGE}")
        if not survivor.is_child and survivor.age < ADULT_AGE:
            raise InvalidArgument("survivor.is_child", f"a survivor under {ADULT_AGE} is a child")
        if band is not None and band != survivor.age_band:
            raise InvalidArgument("survivor.age_band", "does not match the age")
    elif band is not None:
        if survivor.is_child and band not in CHILD_AGE_BANDS:
            raise InvalidArgument("survivor.age_band", f"a child is under {ADULT_AGE}")
        if not survivor.is_child and band in CHILD_AGE_BANDS:
            raise InvalidArgument("survivor.is_child", f"a survivor under {ADULT_AGE} is a child")


def validate_contact(contact: Contact, narrative: str) -> None:
    for name in ("name", "address", "safe_contact_note"):
        if len(getattr(contact, name)) > LIMITS[name]:
            raise InvalidArgument(f"contact.{name}", f"at most {LIMITS[name]} characters")
    if contact.phone and not _PHONE.match(contact.phone):
        raise InvalidArgument("contact.phone", "digits, spaces and + . ( ) - only, 3 to 25 characters")
    if contact.phone_is_safe and not contact.phone:
        raise InvalidArgument("contact.phone_is_safe", "there is no phone number to mark safe")
    if len(contact.safe_times) > MAX_SAFE_TIMES:
        raise InvalidArgument("contact.safe_times", f"at most {MAX_SAFE_TIMES}")
    for index, safe_time in enumerate(contact.safe_times):
        validate_safe_time(safe_time, f"contact.safe_times[{index}].")
    if len(narrative) > LIMITS["narrative"]:
        raise InvalidArgument("narrative", f"at most {LIMITS['narrative']} characters")


def validate_safe_time(safe_time: SafeTime, prefix: str) -> None:
    for index, day in enumerate(safe_time.weekdays):
        if not 1 <= day <= 7:
            raise InvalidArgument(f"{prefix}weekdays[{index}]", "must be 1 (Monday) to 7 (Sunday)")
        if day in safe_time.weekdays[:index]:
            raise InvalidArgument(f"{prefix}weekdays[{index}]", "this weekday is listed twice")
    if not _HH_MM.fullmatch(safe_time.start):
        raise InvalidArgument(f"{prefix}start", "must be HH:MM, 00:00 to 23:59 (Vietnam time)")
    if safe_time.end != WHOLE_DAY_END and not _HH_MM.fullmatch(safe_time.end):
        raise InvalidArgument(f"{prefix}end", "must be HH:MM, 00:00 to 24:00 (Vietnam time)")
    if safe_time.end == safe_time.start:
        raise InvalidArgument(f"{prefix}end", "must differ from start (00:00 to 24:00 is the whole day)")


def validate_need_types(specs: list[NeedSpec], prefix: str) -> None:
    seen: set[ServiceType] = set()
    for index, spec in enumerate(specs):
        field = f"{prefix}[{index}].service_type" if prefix == "needs" else f"{prefix}.service_type"
        if spec.service_type is None:
            raise InvalidArgument(field, "is required")
        if spec.service_type in seen:
            raise InvalidArgument(field, f"{spec.service_type} is listed twice")
        seen.add(spec.service_type)


def consent_terms_for(spec: NeedSpec, survivor: Survivor, prefix: str) -> ConsentTerms | None:
    """The consent a need comes with: its terms, the shorthand's (an adult's own), or none."""
    if spec.consent is not None:
        return spec.consent
    if not spec.consented:
        return None
    if survivor.is_child:
        raise InvalidArgument(f"{prefix}given_by", "a child's consent is given by a guardian, or by the case "
                                                   "worker under a legal basis: say who gave it in `consent`")
    return ConsentTerms(given_by=ConsentGiver.SURVIVOR, data_categories=IMPLIED_DATA_CATEGORIES)


def validate_consent(terms: ConsentTerms, survivor: Survivor, now: datetime, prefix: str) -> None:
    """`prefix` locates the terms in the request, e.g. "needs[0].consent." or "" (OverrideConsent)."""
    given_by = terms.given_by
    if given_by is None:
        raise InvalidArgument(f"{prefix}given_by", "is required (survivor, guardian or case worker)")
    if given_by is ConsentGiver.SURVIVOR and survivor.is_child:
        raise InvalidArgument(f"{prefix}given_by", "a child's consent is given by a guardian, or by the case "
                                                   "worker under a legal basis")
    if given_by is ConsentGiver.CASE_WORKER and not survivor.is_child:
        raise InvalidArgument(f"{prefix}given_by", "a case worker consents only for a child; an adult consents "
                                                   "herself (or a supervisor overrides)")
    if given_by is ConsentGiver.SUPERVISOR_OVERRIDE and prefix:
        raise InvalidArgument(f"{prefix}given_by", "an override is made with OverrideConsent, by a supervisor")
    needs_basis = given_by in (ConsentGiver.CASE_WORKER, ConsentGiver.SUPERVISOR_OVERRIDE)
    if needs_basis and terms.legal_basis is None:
        raise InvalidArgument(f"{prefix}legal_basis_code", "is required: the provision that allows it")
    if terms.legal_basis is LegalBasis.OTHER and not terms.legal_basis_note.strip():
        raise InvalidArgument(f"{prefix}legal_basis_note", "is required with LEGAL_BASIS_OTHER: name the provision")
    if len(terms.legal_basis_note) > LIMITS["legal_basis_note"]:
        raise InvalidArgument(f"{prefix}legal_basis_note", f"at most {LIMITS['legal_basis_note']} characters")
    if not terms.data_categories:
        raise InvalidArgument(f"{prefix}data_categories",
                              f"at least one of {', '.join(DATA_CATEGORIES)}: an empty consent allows nothing")
    _one_of(terms.data_categories, DATA_CATEGORIES, f"{prefix}data_categories")
    _one_of(terms.recipient_sectors, RECIPIENT_SECTORS, f"{prefix}recipient_sectors")
    if terms.expires_at is not None and terms.expires_at <= now:
        raise InvalidArgument(f"{prefix}expires_at", "must be in the future")


def _one_of(values: tuple[str, ...], allowed: tuple[str, ...], field: str) -> None:
    for index, value in enumerate(values):
        if value not in allowed:
            raise InvalidArgument(f"{field}[{index}]", f"must be one of {', '.join(allowed)}")
        if value in values[:index]:
            raise InvalidArgument(f"{field}[{index}]", f"{value} is listed twice")


def new_consent(consent_id: str, need_id: str, terms: ConsentTerms, recorded_by: str, now: datetime) -> Consent:
    assert terms.given_by is not None  # validate_consent ran
    return Consent(
        consent_id=consent_id, need_id=need_id, given_by=terms.given_by, legal_basis=terms.legal_basis,
        legal_basis_note=terms.legal_basis_note.strip(), has_legal_basis_note=bool(terms.legal_basis_note.strip()),
        recipient_sectors=tuple(terms.recipient_sectors), data_categories=tuple(terms.data_categories),
        given_at=now, expires_at=terms.expires_at or now + DEFAULT_CONSENT_VALIDITY, recorded_by=recorded_by,
    )


def validate_call(details: CallDetails, now: datetime, prefix: str = "call.") -> None:
    if details.channel is None:
        raise InvalidArgument(f"{prefix}channel", "is required")
    if details.topic is None:
        raise InvalidArgument(f"{prefix}topic", "is required")
    if not 0 <= details.duration_seconds <= MAX_CALL_SECONDS:
        raise InvalidArgument(f"{prefix}duration_seconds", f"must be between 0 and {MAX_CALL_SECONDS}")
    if details.started_at is not None and details.started_at > now + CLOCK_SKEW:
        raise InvalidArgument(f"{prefix}started_at", "is in the future")


def validate_call_outcome(outcome: CallOutcome | None, case_id: str) -> CallOutcome:
    if outcome is None:
        raise InvalidArgument("outcome", "is required")
    if outcome in CASE_OUTCOMES:
        if not case_id.strip():
            raise InvalidArgument("case_id", f"is required when the outcome is {outcome}")
        require_id(case_id, "case_id")
    elif case_id:
        raise InvalidArgument("case_id", "only a call that opened or followed up a case names one")
    return outcome
