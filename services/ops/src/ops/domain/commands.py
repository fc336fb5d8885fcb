"""What ops is asked to do: record a fact from an event, store spans, collect or replay dead letters, answer
the console's questions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ops.domain.model import SpanRecord
from ops.domain.report import Period
from refnet_platform.vocabulary import RiskLevel

# A question's remit: the province codes the asking person covers, or None for every province (a national
# person, the operations team, ops' own /metrics). Out of remit looks exactly like nothing there.
Remit = frozenset[str] | None


@dataclass(frozen=True)
class Seen:
    """Where and when an event happened, for the throughput counters: every recorded event carries one."""

    at: datetime
    stream: str  # the producing service: intake, referral, shelter, notifications
    province_code: str


# Facts from events (ops-worker).

@dataclass(frozen=True)
class CountEvent:
    seen: Seen


@dataclass(frozen=True)
class RecordCase:
    seen: Seen
    case_id: str
    case_types: tuple[str, ...]
    is_child: bool
    emergency: bool
    reportable: bool
    handling_line: str = ""
    sex: str = "unknown"
    age_band: str = "unknown"
    disability: str = "unknown"
    imported: bool = False


@dataclass(frozen=True)
class RecordEmergency:
    seen: Seen
    case_id: str


@dataclass(frozen=True)
class RecordCaseClosed:
    seen: Seen
    case_id: str


@dataclass(frozen=True)
class ForgetCase:
    """The case was erased: ops drops its trace index for it (its anonymous counts stay)."""

    seen: Seen
    case_id: str


@dataclass(frozen=True)
class RecordCall:
    seen: Seen
    call_id: str
    topic: str
    handling_line: str = ""
    channel: str = "unknown"
    outcome: str = "unknown"
    imported: bool = False


@dataclass(frozen=True)
class RecordReferralRequested:
    seen: Seen
    referral_id: str
    case_id: str
    sector: str
    provider_id: str
    emergency: bool
    risk_level: RiskLevel | None
    accept_by: datetime | None  # the deadlines referral set, when the event carries them
    start_by: datetime | None
    provider_type: str = ""


@dataclass(frozen=True)
class RecordReferralStatus:
    seen: Seen
    referral_id: str
    status: str
    reason: str


@dataclass(frozen=True)
class RecordCapacity:
    seen: Seen
    shelter_id: str
    target_group: str
    capacity: int
    reserved: int
    occupied: int


@dataclass(frozen=True)
class RecordStay:
    seen: Seen
    referral_id: str
    case_id: str
    shelter_id: str
    state: str  # "reserved" | "occupied" | "released"


# Traces (ops-collector).

@dataclass(frozen=True)
class StoreSpans:
    spans: list[SpanRecord]


@dataclass(frozen=True)
class PruneSpans:
    older_than: datetime


@dataclass(frozen=True)
class GetTrace:
    """Every trace that touched a case, found by the case's id or any of its referrals' ids."""

    subject_id: str
    include_database: bool = False
    within: Remit = None


# Dead letters.

@dataclass(frozen=True)
class CollectDeadLetters:
    """Read what is new on the dead-letter topics into ops' table (a worker timer)."""


@dataclass(frozen=True)
class ListDeadLetters:
    consumer: str = ""
    include_replayed: bool = True
    limit: int = 200
    within: Remit = None  # a letter's province is its original record's key (every topic is keyed by province)


@dataclass(frozen=True)
class PendingDeadLetters:
    """How many letters each consumer has that nobody replayed yet."""

    within: Remit = None


@dataclass(frozen=True)
class ReplayDeadLetter:
    letter_id: int
    actor: str  # the signed-in person, for the audit row
    within: Remit = None


# The console's other questions.

@dataclass(frozen=True)
class ListOverdue:
    province_code: str = ""
    now: datetime | None = None
    within: Remit = None


@dataclass(frozen=True)
class ListEscalations:
    province_code: str = ""
    limit: int = 100
    within: Remit = None


@dataclass(frozen=True)
class ProvinceSummary:
    since: datetime
    now: datetime | None = None
    within: Remit = None


@dataclass(frozen=True)
class Throughput:
    since: datetime
    province_code: str = ""
    within: Remit = None


@dataclass(frozen=True)
class BedsFree:
    within: Remit = None


@dataclass(frozen=True)
class BuildReport:
    period: Period
    province_code: str = ""  # "" for the whole country; for a report by line, also "111" (the national line)
    within: Remit = None  # a person who is not national gets one of their provinces, never the country
    by: str = "line"  # "line": the hotline that handled it; "place": the province where it happened
