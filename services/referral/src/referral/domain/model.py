"""Providers, cases, needs with their consent, and referrals with their lifecycle. No I/O, no protobuf."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from refnet_geo import VIETNAM_TZ
from refnet_platform.errors import FailedPrecondition, InvalidArgument
from refnet_platform.vocabulary import (
    POOLS_FOR,
    DeclineReason,
    ReferralReason,
    ReferralStatus,
    RiskLevel,
    ServiceType,
    Sex,
    StatusReason,
    TargetGroup,
)

F = TypeVar("F")  # a bed pool's figure: free beds, or (free, capacity)


Status = ReferralStatus  # the shared vocabulary's, under referral's own short name


ALLOWED: dict[Status, frozenset[Status]] = {
    Status.REQUESTED: frozenset({Status.ACCEPTED, Status.REJECTED, Status.CANCELLED, Status.EXPIRED}),
    # An accepted referral that misses its start-by deadline expires too.
    Status.ACCEPTED: frozenset({Status.IN_SERVICE, Status.CANCELLED, Status.FAILED, Status.EXPIRED}),
    Status.IN_SERVICE: frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED}),
    Status.EXPIRED: frozenset({Status.ESCALATED}),
}
OPEN = frozenset({Status.REQUESTED, Status.ACCEPTED, Status.IN_SERVICE})
# Cancelled by a withdrawal or a closed case: what has not started yet.
NOT_STARTED = frozenset({Status.REQUESTED, Status.ACCEPTED})


class Progress(StrEnum):
    CONTACT_MADE = "contact_made"
    APPOINTMENT_SCHEDULED = "appointment_scheduled"
    SESSION_HELD = "session_held"
    EXAMINATION_DONE = "examination_done"
    LEGAL_ACTION_FILED = "legal_action_filed"
    PROTECTION_ORDER_ISSUED = "protection_order_issued"
    SURVIVOR_ARRIVED = "survivor_arrived"


def reroutes(reason: DeclineReason) -> bool:
    """After a decline the need goes on to the next provider, unless the survivor said no or it is already
    served."""
    return reason not in (DeclineReason.SURVIVOR_DECLINED, DeclineReason.DUPLICATE)


class BedState(StrEnum):
    NONE = "none"
    REQUESTED = "requested"  # ReserveBed sent, no answer yet
    HELD = "held"
    OCCUPIED = "occupied"
    RELEASED = "released"
    REJECTED = "rejected"

    @property
    def releasable(self) -> bool:
        """A bed asked for or held: leaving the referral must give it back (shelter handles commands in order)."""
        return self in (BedState.REQUESTED, BedState.HELD)


class BedAnswer(StrEnum):
    """What shelter said about a referral's bed."""

    RESERVED = "reserved"
    REJECTED = "rejected"
    HOLD_EXPIRED = "hold_expired"
    RELEASED = "released"
    OCCUPIED = "occupied"


@dataclass(frozen=True)
class BedMove:
    """One answer's effect: from which bed states it applies (in any other it is late or repeated, and ignored),
    the bed state it leaves, and the lifecycle steps that follow, by the referral's status (none: only touched)."""

    applies_to: frozenset[BedState]
    bed: BedState
    steps: Mapping[Status, tuple[Status, ...]]


# The bed's state machine. A hold that expires before acceptance expires the referral (it is escalated); after
# acceptance the service failed. The survivor's arrival puts the referral in service, accepting it on the way.
BED_MOVES: dict[BedAnswer, BedMove] = {
    BedAnswer.RESERVED: BedMove(frozenset({BedState.REQUESTED}), BedState.HELD, {}),
    BedAnswer.REJECTED: BedMove(frozenset({BedState.REQUESTED}), BedState.REJECTED,
                                {Status.REQUESTED: (Status.REJECTED,)}),
    # shelter has freed the bed already: nothing to give back
    BedAnswer.HOLD_EXPIRED: BedMove(frozenset({BedState.HELD}), BedState.RELEASED,
                                    {Status.REQUESTED: (Status.EXPIRED, Status.ESCALATED),
                                     Status.ACCEPTED: (Status.FAILED,)}),
    BedAnswer.RELEASED: BedMove(frozenset(BedState) - {BedState.RELEASED}, BedState.RELEASED, {}),
    BedAnswer.OCCUPIED: BedMove(frozenset(BedState), BedState.OCCUPIED,
                                {Status.REQUESTED: (Status.ACCEPTED, Status.IN_SERVICE),
                                 Status.ACCEPTED: (Status.IN_SERVICE,)}),
}


class AgeGroup(StrEnum):
    ANY = "any"
    ADULT = "adult"
    CHILD = "child"


class CaseState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    ERASED = "erased"


class ConsentState(StrEnum):
    NONE = "none"
    GIVEN = "given"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class Survivor:
    """What routing may know of the survivor: codes, never identity."""

    is_child: bool = False
    sex: Sex | None = None
    # Accessibility codes she needs (from intake's assessment): a shelter must offer them all.
    accessibility_needs: frozenset[str] = frozenset()

    @property
    def target_group(self) -> TargetGroup | None:
        if self.is_child:
            return TargetGroup.CHILDREN
        return {Sex.FEMALE: TargetGroup.WOMEN, Sex.MALE: TargetGroup.MEN}.get(self.sex) if self.sex else None


@dataclass(frozen=True)
class OpeningHours:
    """Open on these ISO weekdays (1 = Monday) from opens to closes, in minutes after midnight,
    Vietnam time. closes <= opens runs past midnight into the next day."""

    weekdays: frozenset[int]
    opens: int
    closes: int

    @classmethod
    def parse(cls, weekdays: list[int] | frozenset[int], opens_at: str, closes_at: str) -> OpeningHours:
        days = frozenset(int(d) for d in weekdays)
        if not days or not days <= set(range(1, 8)):
            raise InvalidArgument("weekdays", "give ISO weekdays 1 (Monday) to 7 (Sunday)")
        return cls(days, _minutes(opens_at, "opens_at"), _minutes(closes_at, "closes_at"))

    @property
    def opens_at(self) -> str:
        return _hhmm(self.opens)

    @property
    def closes_at(self) -> str:
        return _hhmm(self.closes)

    def is_open(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        day = local.isoweekday()
        if self.opens < self.closes:
            return day in self.weekdays and self.opens <= minute < self.closes
        yesterday = 7 if day == 1 else day - 1
        return (day in self.weekdays and minute >= self.opens) or (yesterday in self.weekdays and minute < self.closes)

    def next_opening(self, local: datetime) -> datetime:
        """The next time (at or after `local`) these hours open."""
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        for offset in range(8):
            start = midnight + timedelta(days=offset, minutes=self.opens)
            if start.isoweekday() in self.weekdays and start >= local:
                return start
        raise AssertionError("weekdays is never empty")


def _minutes(value: str, field_name: str) -> int:
    hours, sep, minutes = value.partition(":")
    if not sep or not hours.isdigit() or not minutes[:2].isdigit():
        raise InvalidArgument(field_name, f"{value!r} is not HH:MM")
    total = int(hours) * 60 + int(minutes[:2])
    if not 0 <= total <= 24 * 60:
        raise InvalidArgument(field_name, f"{value!r} is not a time of day")
    return total


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class DutyPhone:
    """A provider's duty phone (its directory duty contact): a text from it answers for that provider."""

    phone: str  # normalised (refnet_platform.phone)
    provider_id: str
    language: str = "vi"


def short_reference_code(reference: str) -> str:
    """The 8 hex digits of a short reference (RF-1A2B3C4D: the last 8 of the referral id), or ""."""
    code = reference.strip().upper().removeprefix("RF-").removeprefix("RF")
    return code if len(code) == 8 and all(c in "0123456789ABCDEF" for c in code) else ""


class SmsAnswerProblem(StrEnum):
    UNKNOWN_REFERENCE = "unknown_reference"
    NOT_OPEN = "not_open"


@dataclass(frozen=True)
class SmsAnswer:
    provider_id: str
    language: str
    referral: Referral | None = None
    problem: SmsAnswerProblem | None = None


@dataclass(frozen=True)
class Provider:
    """A service delivered by an organization (an HSDS `service`); its id is the agency's identity."""

    provider_id: str
    name: str
    sector: str
    service_type: ServiceType
    province_code: str
    commune_code: str
    public_contact: str
    open_24_7: bool
    shelter_id: str = ""
    organization_id: str = ""
    organization_name: str = ""
    description: str = ""
    age_group: AgeGroup = AgeGroup.ANY
    sexes: frozenset[Sex] = frozenset()
    target_groups: frozenset[TargetGroup] = frozenset()
    # Province or commune codes served beyond the provider's own place.
    service_areas: frozenset[str] = frozenset()
    opening_hours: tuple[OpeningHours, ...] = ()
    # Shelters: the beds the directory lists (live figures come from shelter's events).
    beds_capacity: int | None = None
    active: bool = True
    # Accessibility codes it offers (vocabulary.ACCESSIBILITY_CODES), e.g. step_free, accessible_toilet.
    accessibility: frozenset[str] = frozenset()

    @property
    def is_shelter(self) -> bool:
        return bool(self.shelter_id)

    def eligible(self, survivor: Survivor) -> bool:
        if self.is_shelter and not survivor.accessibility_needs <= self.accessibility:
            return False  # a bed she cannot reach or use is no bed for her
        if self.age_group is AgeGroup.ADULT and survivor.is_child:
            return False
        if self.age_group is AgeGroup.CHILD and not survivor.is_child:
            return False
        if self.sexes and survivor.sex is not None and survivor.sex not in self.sexes:
            return False
        group = survivor.target_group
        if self.target_groups and group is not None:
            return group in self.target_groups or (
                group in (TargetGroup.WOMEN, TargetGroup.CHILDREN)
                and TargetGroup.WOMEN_WITH_CHILDREN in self.target_groups)
        return True

    def bed_group(self, survivor: Survivor) -> TargetGroup | None:
        """The pool a bed is asked for (BedRequested): the shelter's own group when it keeps beds for one
        only (a child with her mother goes to a women_with_children bed), else the survivor's; None: any."""
        if len(self.target_groups) == 1:
            return next(iter(self.target_groups))
        return survivor.target_group

    def bed_pools(self, survivor: Survivor) -> tuple[TargetGroup, ...]:
        """The shelter's pools that could take her bed request, as shelter tries them."""
        group = self.bed_group(survivor)
        return POOLS_FOR[group] if group else tuple(TargetGroup)

    def free_beds(self, survivor: Survivor, free: Mapping[tuple[str, TargetGroup], int]) -> int | None:
        """Free beds in the pools she could be placed in (`free`: by shelter id and pool); None when no
        figure of those pools is known."""
        known = self.known_pools(self.bed_pools(survivor), free)
        return sum(known) if known else None

    def known_pools(self, groups: Iterable[TargetGroup], figures: Mapping[tuple[str, TargetGroup], F]) -> list[F]:
        """This shelter's figures for those of `groups` that have one (`figures`: by shelter id and pool)."""
        return [figures[key] for g in groups if (key := (self.shelter_id, g)) in figures]

    def is_open(self, when: datetime) -> bool | None:
        """True or False when the hours are known; None when the directory does not say."""
        if self.open_24_7:
            return True
        if not self.opening_hours:
            return None
        local = when.astimezone(VIETNAM_TZ)
        return any(h.is_open(local) for h in self.opening_hours)

    def next_opening(self, when: datetime) -> datetime | None:
        """When the provider is next open (`when` itself if open now); None if the hours are unknown."""
        open_now = self.is_open(when)
        if open_now is None:
            return None
        if open_now:
            return when
        local = when.astimezone(VIETNAM_TZ)
        return min(h.next_opening(local) for h in self.opening_hours)

    def covered_by(self, sectors: frozenset[str]) -> bool:
        """Whether a consent limited to these recipient sectors (empty: any) lets this provider receive it."""
        return not sectors or self.sector in sectors


def shelter_eligibility(target_group: TargetGroup) -> tuple[AgeGroup, frozenset[Sex], frozenset[TargetGroup]]:
    """Who a shelter keeping beds for `target_group` takes in."""
    age = {TargetGroup.CHILDREN: AgeGroup.CHILD, TargetGroup.WOMEN: AgeGroup.ADULT,
           TargetGroup.MEN: AgeGroup.ADULT}.get(target_group, AgeGroup.ANY)
    return age, frozenset(), frozenset({target_group})


@dataclass
class Case:
    case_id: str
    province_code: str
    commune_code: str
    survivor: Survivor
    risk_level: RiskLevel
    emergency: bool
    case_worker_id: str
    child_deadline: datetime | None = None
    state: CaseState = CaseState.OPEN

    def erase(self) -> None:
        """Keep only the ids and the fact of erasure: nothing about the survivor stays."""
        self.state = CaseState.ERASED
        self.commune_code = ""
        self.survivor = Survivor()
        self.case_worker_id = ""


@dataclass
class Need:
    """A need and its consent. Intake's consent ids are UUIDv7, so they sort by when consent was given:
    a withdrawal and a new consent that arrive out of order (an emergency moves a case's later events
    to the urgent lane) still end in the right state, and a withdrawal is never lost."""

    need_id: str
    case_id: str
    service_type: ServiceType
    consent: ConsentState = ConsentState.NONE
    # Recipient sectors the consent covers; empty: any provider of the service.
    sectors: frozenset[str] = frozenset()
    expires_at: datetime | None = None
    consent_id: str = ""
    withdrawn_consent_id: str = ""

    def consent_valid(self, now: datetime) -> bool:
        return self.consent is ConsentState.GIVEN and (self.expires_at is None or now < self.expires_at)

    def give(self, consent_id: str, sectors: frozenset[str], expires_at: datetime | None,
             at_registration: bool = False) -> bool:
        """A consent became valid; False if a withdrawal of it (or of a later one) is already on record.
        A consent that came with the need's registration is older than any withdrawal."""
        if self.consent is ConsentState.WITHDRAWN and (
                at_registration or (consent_id and consent_id <= self.withdrawn_consent_id)):
            return False
        if consent_id and self.consent_id and consent_id < self.consent_id:
            return False  # an older consent than the one on record
        self.consent, self.consent_id, self.sectors, self.expires_at = ConsentState.GIVEN, consent_id, sectors, \
            expires_at
        return True

    def withdraw(self, consent_id: str) -> bool:
        """A consent was withdrawn; False if a later consent already replaced it."""
        if consent_id and self.consent_id and consent_id < self.consent_id:
            return False
        self.consent, self.withdrawn_consent_id = ConsentState.WITHDRAWN, max(consent_id, self.withdrawn_consent_id)
        self.sectors = frozenset()
        return True


@dataclass
class Referral:
    referral_id: str
    case_id: str
    need_id: str
    service_type: ServiceType
    provider_id: str
    province_code: str
    status: Status
    emergency: bool
    risk_level: RiskLevel
    case_worker_id: str
    requested_at: datetime
    shelter_id: str = ""
    # The last transition's reason, as its code (a StatusReason's value); empty for none.
    reason: str = ""
    accept_by: datetime | None = None
    start_by: datetime | None = None
    attempt: int = 1
    previous_referral_id: str = ""
    provider_province_code: str = ""
    bed: BedState = BedState.NONE
    progress: Progress | None = None
    updated_at: datetime | None = None
    version: int = 1
    # The version as read from storage: saving checks nobody changed it meanwhile.
    stored_version: int = field(default=0, compare=False)

    def move_to(self, status: Status, reason: StatusReason | None, now: datetime) -> Status:
        """Changes status if the lifecycle allows it; returns the status it left. ``reason`` is kept as its code
        (empty for none)."""
        if status not in ALLOWED.get(self.status, frozenset()):
            raise FailedPrecondition(f"referral {self.referral_id} is {self.status}; it cannot become {status}")
        previous, self.status, self.reason = self.status, status, str(reason or "")
        if status is not Status.REQUESTED:
            self.accept_by = None
        if status not in (Status.REQUESTED, Status.ACCEPTED):
            self.start_by = None
        self.touch(now)
        return previous

    def touch(self, now: datetime) -> None:
        self.updated_at = now
        self.version += 1

    def answer_bed(self, answer: BedAnswer, now: datetime) -> tuple[Status, ...] | None:
        """Moves the bed as shelter's answer says (BED_MOVES) and returns the lifecycle steps that must follow
        (each is a move_to); with none the referral is touched here. None: the answer does not apply to the bed
        as it is, and nothing changed."""
        move = BED_MOVES[answer]
        if self.bed not in move.applies_to:
            return None
        self.bed = move.bed
        steps = move.steps.get(self.status, ())
        if not steps:
            self.touch(now)
        return steps

    def give_bed_back(self) -> bool:
        """Leaving the provider: a bed asked for or held goes back to the shelter. True if one must be released."""
        if not (self.shelter_id and self.bed.releasable):
            return False
        self.bed = BedState.RELEASED
        return True

    @property
    def open(self) -> bool:
        return self.status in OPEN

    @property
    def due_at(self) -> datetime | None:
        """The deadline the SLA timer watches in the current status."""
        if self.status is Status.REQUESTED:
            return self.accept_by
        if self.status is Status.ACCEPTED:
            return self.start_by
        return None

    @property
    def missed_sla(self) -> tuple[str, ReferralReason]:
        """Which deadline an overdue referral missed, and the coded reason."""
        if self.status is Status.REQUESTED:
            return "accept", ReferralReason.NOT_ACCEPTED_IN_TIME
        return "start", ReferralReason.NOT_STARTED_IN_TIME

    def tighten(self, accept_by: datetime, start_by: datetime, emergency: bool, now: datetime) -> bool:
        """Brings the deadlines forward (never back) after the risk rose; True if anything changed."""
        changed = False
        if self.accept_by is not None and accept_by < self.accept_by:
            self.accept_by, changed = accept_by, True
        if self.start_by is not None and start_by < self.start_by:
            self.start_by, changed = start_by, True
        if emergency and not self.emergency:
            self.emergency, changed = True, True
        if changed:
            self.touch(now)
        return changed


@dataclass(frozen=True)
class DirectoryEntry:
    """A provider as the directory shows it: with the shelter's live beds and whether it is open."""

    provider: Provider
    open_now: bool
    beds_free: int | None = None
    beds_capacity: int | None = None
    area_rank: int | None = None


@dataclass(frozen=True)
class SafeTime:
    """When she said she can safely be contacted, as intake has it: ISO weekdays (none: every day) and HH:MM
    start and end in Vietnam time (an end before the start runs past midnight)."""

    weekdays: tuple[int, ...]
    start: str
    end: str


@dataclass(frozen=True)
class SurvivorContact:
    """Personal data read from intake for one accepted referral: never stored, logged or put on Kafka."""

    name: str = field(repr=False)
    phone: str = field(repr=False)
    address: str = field(repr=False)
    safe_contact_note: str = field(repr=False)
    categories: tuple[str, ...] = ()
    phone_is_safe: bool = False
    safe_times: tuple[SafeTime, ...] = field(default=(), repr=False)
