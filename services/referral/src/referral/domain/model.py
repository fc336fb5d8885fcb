"""Cases, needs with their consent, and referrals with their lifecycle (the providers they go to: providers.py). No I/O,
no protobuf."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from refnet_platform.errors import FailedPrecondition
from refnet_platform.vocabulary import (
    DeclineReason,
    ReferralReason,
    ReferralStatus,
    RiskLevel,
    ServiceType,
    Sex,
    StatusReason,
    TargetGroup,
)

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
