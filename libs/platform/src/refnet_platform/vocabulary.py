"""The shared words of refnet's events (mirroring refnet.common.v1), for domain code that must not
import protobuf. Mapping to and from the proto enums is by name, so the two cannot drift apart."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar


class ServiceType(StrEnum):
    POLICE_PROTECTION = "police_protection"
    MEDICAL = "medical"
    LEGAL_AID = "legal_aid"
    SHELTER = "shelter"
    PSYCHOSOCIAL = "psychosocial"
    SOCIAL_PROTECTION = "social_protection"


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


E = TypeVar("E", bound=StrEnum)


def _prefix(pb_enum: Any) -> str:
    # SERVICE_TYPE_UNSPECIFIED -> SERVICE_TYPE_
    return str(pb_enum.Name(0)).removesuffix("UNSPECIFIED")


def to_pb(member: StrEnum | None, pb_enum: Any) -> int:
    """ServiceType.SHELTER -> SERVICE_TYPE_SHELTER's number; None -> 0 (unspecified)."""
    if member is None:
        return 0
    return int(pb_enum.Value(_prefix(pb_enum) + member.name))


def from_pb(cls: type[E], pb_enum: Any, number: int) -> E | None:
    """The number of SERVICE_TYPE_SHELTER -> ServiceType.SHELTER; unspecified or unknown -> None."""
    if number == 0 or number not in pb_enum.values():
        return None
    return cls[str(pb_enum.Name(number)).removeprefix(_prefix(pb_enum))]
