"""The shared words of refnet's events, for domain code that must not import protobuf. Each enum mirrors the
proto enum of the same name (refnet.common.v1 unless its docstring names another package); mapping to and from
the proto enums is by name, so the two cannot drift apart, and each member's value is its name in lower case.

Reason codes travel in string fields (``reason``) for compatibility: the value of a member below is what goes
on the wire. Producers emit members of these enums only, and notifications names every one of them in each
language (tests/contract/test_reason_codes.py holds both sides to it)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from functools import lru_cache
from typing import Any, TypeAlias, TypeVar, cast


class ServiceType(StrEnum):
    POLICE_PROTECTION = "police_protection"
    MEDICAL = "medical"
    LEGAL_AID = "legal_aid"
    SHELTER = "shelter"
    PSYCHOSOCIAL = "psychosocial"
    SOCIAL_PROTECTION = "social_protection"
    # The Social Work Centres' wider caseload.
    WELFARE_ACCESS = "welfare_access"  # social assistance: disability, old-age and other allowances, care
    MENTAL_HEALTH = "mental_health"  # suicide risk and mental health care
    CIVIL_REGISTRATION = "civil_registration"  # identity papers, birth and residence registration
    EDUCATION = "education"  # back to school, school support
    VOCATIONAL_TRAINING = "vocational_training"  # and livelihood
    FAMILY_TRACING = "family_tracing"  # reintegration and family tracing
    PERPETRATOR_COUNSELLING = "perpetrator_counselling"


# Accessibility: what a survivor needs (intake seals it with her assessment; only these codes travel, so routing can
# match them) and what a shelter offers (the directory's "accessibility").
ACCESSIBILITY_CODES = ("step_free", "accessible_toilet", "wheelchair_space", "sign_language", "easy_read",
                       "braille", "carer_allowed", "ground_floor_bed")


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class CaseType(StrEnum):
    DOMESTIC_VIOLENCE = "domestic_violence"
    OTHER_GBV = "other_gbv"
    SEXUAL_ABUSE = "sexual_abuse"
    CHILD_ABUSE_OR_NEGLECT = "child_abuse_or_neglect"
    TRAFFICKING = "trafficking"
    FORCED_LABOUR = "forced_labour"
    ABANDONED_OR_WANDERING = "abandoned_or_wandering"
    CHILD_SPECIAL_CIRCUMSTANCES = "child_special_circumstances"
    COUNSELLING_REQUEST = "counselling_request"
    # The Social Work Centres' wider caseload.
    DISABILITY = "disability"
    OLDER_PERSON = "older_person"
    SOCIAL_ASSISTANCE = "social_assistance"  # access to welfare policies
    SUICIDE_RISK_MENTAL_HEALTH = "suicide_risk_mental_health"
    MISSING_CIVIL_DOCUMENTS = "missing_civil_documents"
    SCHOOL_DROP_OUT = "school_drop_out"
    LIVELIHOOD = "livelihood"  # vocational training and livelihood
    REINTEGRATION = "reintegration"  # reintegration and family tracing
    PERPETRATOR_COUNSELLING = "perpetrator_counselling"


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"


class TargetGroup(StrEnum):
    WOMEN = "women"
    CHILDREN = "children"
    WOMEN_WITH_CHILDREN = "women_with_children"
    MEN = "men"


# Which bed pools take a survivor of each group, best first: a room for a woman and her children takes a
# woman alone; the other pools keep to their own group. Shelter places by it; referral counts free beds by it.
POOLS_FOR: dict[TargetGroup, tuple[TargetGroup, ...]] = {
    TargetGroup.WOMEN: (TargetGroup.WOMEN, TargetGroup.WOMEN_WITH_CHILDREN),
    TargetGroup.WOMEN_WITH_CHILDREN: (TargetGroup.WOMEN_WITH_CHILDREN,),
    TargetGroup.CHILDREN: (TargetGroup.CHILDREN,),
    TargetGroup.MEN: (TargetGroup.MEN,),
}


class ReferralStatus(StrEnum):
    """Mirrors refnet.referral.v1.ReferralStatus: where a referral stands (referral owns the lifecycle)."""

    REQUESTED = "requested"
    ACCEPTED = "accepted"
    IN_SERVICE = "in_service"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    ESCALATED = "escalated"
    FAILED = "failed"


# --- reason codes ------------------------------------------------------------------------------


class DeclineReason(StrEnum):
    """Mirrors refnet.referral.v1.DeclineReason: why an agency declined a referral."""

    NO_CAPACITY = "no_capacity"
    INELIGIBLE = "ineligible"
    OUT_OF_AREA = "out_of_area"
    SURVIVOR_DECLINED = "survivor_declined"
    DUPLICATE = "duplicate"


class FailureReason(StrEnum):
    """Mirrors refnet.referral.v1.FailureReason: why an accepted referral could not be carried out."""

    NO_SHOW = "no_show"
    LOST_CONTACT = "lost_contact"


class Outcome(StrEnum):
    """Mirrors refnet.referral.v1.Outcome: how a referral ended when the service was given (the reason of its
    move to completed)."""

    SERVICE_COMPLETED = "service_completed"
    REFERRED_ONWARD = "referred_onward"
    SURVIVOR_STOPPED = "survivor_stopped"


class ReferralReason(StrEnum):
    """Mirrors refnet.referral.v1.ReferralReason: why referral itself moved a referral."""

    NOT_ACCEPTED_IN_TIME = "not_accepted_in_time"
    NOT_STARTED_IN_TIME = "not_started_in_time"
    HOLD_EXPIRED = "hold_expired"
    NO_PROVIDER = "no_provider"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    CASE_CLOSED = "case_closed"
    CASE_ERASED = "case_erased"
    SURVIVOR_ARRIVED = "survivor_arrived"


class BedRejectionReason(StrEnum):
    """Mirrors refnet.shelter.v1.BedRejectionReason: why shelter held no bed."""

    NO_CAPACITY = "no_capacity"
    UNKNOWN_SHELTER = "unknown_shelter"
    NO_MATCHING_BEDS = "no_matching_beds"  # the shelter keeps no pool for the group asked for


class BedReleaseReason(StrEnum):
    """Mirrors refnet.shelter.v1.BedReleaseReason: why shelter itself freed a bed."""

    CANCELLED = "cancelled"  # a release that gave no reason
    CHECKED_OUT = "checked_out"
    HOLD_EXPIRED = "hold_expired"


class DeliveryFailureReason(StrEnum):
    """Mirrors refnet.notifications.v1.DeliveryFailureReason: why a notice could not be delivered."""

    PERMANENT_FAILURE = "permanent_failure"
    RETRIES_EXHAUSTED = "retries_exhausted"


# What each reason field can carry. A status change names the agency's decline, failure or outcome, shelter's
# rejection, or referral's own reason; an escalation, a missed deadline or no provider; a released bed, the
# reason referral gave it back for (shelter's own when referral gave none, or on a check-out).
StatusReason: TypeAlias = ReferralReason | DeclineReason | FailureReason | Outcome | BedRejectionReason
STATUS_REASONS: tuple[type[StrEnum], ...] = (ReferralReason, DeclineReason, FailureReason, Outcome,
                                             BedRejectionReason)
ESCALATION_REASONS = frozenset({ReferralReason.NOT_ACCEPTED_IN_TIME, ReferralReason.NOT_STARTED_IN_TIME,
                                ReferralReason.HOLD_EXPIRED, ReferralReason.NO_PROVIDER})
ReleaseReason: TypeAlias = BedReleaseReason | ReferralReason | DeclineReason | FailureReason
RELEASE_REASONS: tuple[type[StrEnum], ...] = (BedReleaseReason, ReferralReason, DeclineReason, FailureReason)
# Every enum whose codes can reach a person's message (a status change, an escalation, a bed's news).
NOTIFIED_REASONS: tuple[type[StrEnum], ...] = tuple(dict.fromkeys((*STATUS_REASONS, *RELEASE_REASONS)))


E = TypeVar("E", bound=StrEnum)


def codes(enums: Iterable[type[StrEnum]]) -> frozenset[str]:
    """Every value of these enums: the codes that can go on the wire."""
    return frozenset(str(member) for enum in enums for member in enum)


def parse_code(value: str, enums: Iterable[type[StrEnum]]) -> StrEnum | None:
    """The member of the first of ``enums`` whose value ``value`` is; None for an empty or unknown code."""
    for enum in enums:
        if value in enum._value2member_map_:
            return enum(value)
    return None


def parse(cls: type[E], value: str) -> E | None:
    """The member of ``cls`` whose value (its code) ``value`` is; None for an empty or unknown code."""
    return cls(value) if value in cls._value2member_map_ else None


def _prefix(pb_enum: Any) -> str:
    # SERVICE_TYPE_UNSPECIFIED -> SERVICE_TYPE_
    return str(pb_enum.Name(0)).removesuffix("UNSPECIFIED")


def to_pb(member: StrEnum | None, pb_enum: Any) -> int:
    """ServiceType.SHELTER -> SERVICE_TYPE_SHELTER's number; None -> 0 (unspecified)."""
    return 0 if member is None else _number(member, pb_enum)


def from_pb(cls: type[E], pb_enum: Any, number: int) -> E | None:
    """The number of SERVICE_TYPE_SHELTER -> ServiceType.SHELTER; unspecified or unknown -> None."""
    member = _member(cls, pb_enum, number)
    return cast("E | None", member)


# Every event a worker maps converts a few enums: looked up once per (enum, value), not by listing the
# protobuf enum's values each time. Bounded: a number no enum has (from a newer writer) is cached too.
@lru_cache(maxsize=4096)
def _number(member: StrEnum, pb_enum: Any) -> int:
    return int(pb_enum.Value(_prefix(pb_enum) + member.name))


@lru_cache(maxsize=4096)
def _member(cls: type[StrEnum], pb_enum: Any, number: int) -> StrEnum | None:
    if number == 0 or number not in pb_enum.values():
        return None
    return cls[str(pb_enum.Name(number)).removeprefix(_prefix(pb_enum))]
