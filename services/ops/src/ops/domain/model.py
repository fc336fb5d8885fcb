"""What ops knows: ids, codes and times learnt from events. Never a name, phone, address or narrative."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from refnet_platform.vocabulary import RiskLevel, ServiceType

# The sector a referral goes to, as the hotlines' reports name it.
SECTOR_OF: dict[ServiceType, str] = {
    ServiceType.POLICE_PROTECTION: "police",
    ServiceType.MEDICAL: "health",
    ServiceType.LEGAL_AID: "legal_aid",
    ServiceType.SHELTER: "shelter",
    ServiceType.PSYCHOSOCIAL: "psychosocial",
    ServiceType.SOCIAL_PROTECTION: "social_protection",
    ServiceType.WELFARE_ACCESS: "social_protection",
    ServiceType.MENTAL_HEALTH: "health",
    ServiceType.CIVIL_REGISTRATION: "civil_registration",
    ServiceType.EDUCATION: "education",
    ServiceType.VOCATIONAL_TRAINING: "livelihood",
    ServiceType.FAMILY_TRACING: "social_protection",
    ServiceType.PERPETRATOR_COUNSELLING: "psychosocial",
}

# Referral statuses, as referral's ReferralStatus names them (lower case).
REQUESTED, ACCEPTED, IN_SERVICE, COMPLETED = "requested", "accepted", "in_service", "completed"
EXPIRED, ESCALATED = "expired", "escalated"
# A referral that ended without the service (cancelled is a withdrawal of consent, not a failure).
FAILED_STATUSES = ("rejected", EXPIRED, ESCALATED, "failed")
OPEN_STATUSES = (REQUESTED, ACCEPTED, IN_SERVICE, EXPIRED, ESCALATED)


@dataclass(frozen=True)
class SlaPolicy:
    """How long a referral may wait for acceptance (by risk; emergencies their own) and to start."""

    accept_within: dict[str, timedelta]
    start_within: timedelta

    def accept_by(self, requested_at: datetime, risk: RiskLevel | None, emergency: bool) -> datetime:
        key = "emergency" if emergency else (risk or RiskLevel.MEDIUM).value
        return requested_at + self.accept_within.get(key, self.accept_within["medium"])


@dataclass
class ReferralTrack:
    referral_id: str
    case_id: str
    province_code: str
    sector: str
    provider_id: str
    emergency: bool
    requested_at: datetime
    accept_by: datetime
    start_by: datetime | None = None
    status: str = REQUESTED
    accepted_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    escalated_at: datetime | None = None
    reason: str = ""
    provider_type: str = ""  # the directory's sector of the provider: police, health, social_work, womens_union...
    failed_at: datetime | None = None

    def move(self, status: str, at: datetime, reason: str = "") -> None:
        """Records a status change; the first time each milestone is reached is the one kept."""
        self.status, self.reason = status, reason
        if status == ACCEPTED and self.accepted_at is None:
            self.accepted_at = at
        elif status == IN_SERVICE and self.started_at is None:
            self.started_at = at
        elif status == COMPLETED and self.completed_at is None:
            self.completed_at = at
        elif status in (EXPIRED, ESCALATED) and self.escalated_at is None:
            self.escalated_at = at
        if status in FAILED_STATUSES and self.failed_at is None:
            self.failed_at = at


@dataclass(frozen=True)
class Overdue:
    """A referral someone should look at: not accepted by its deadline, or accepted and never started."""

    track: ReferralTrack
    problem: str  # "not accepted" | "not started"
    due: datetime
    late_by: timedelta


def overdue(track: ReferralTrack, policy: SlaPolicy, now: datetime) -> Overdue | None:
    if track.status == REQUESTED and now > track.accept_by:
        return Overdue(track, "not accepted", track.accept_by, now - track.accept_by)
    if track.status == ACCEPTED and track.accepted_at is not None:
        due = track.start_by or track.accepted_at + policy.start_within
        if now > due:
            return Overdue(track, "not started", due, now - due)
    return None


@dataclass(frozen=True)
class SpanRecord:
    """One span as an OTLP receiver got it, with only the attributes ops keeps (see adapters.otlp)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def subject_ids(self) -> set[str]:
        return {v for k, v in self.attributes.items() if k in ("refnet.case_id", "refnet.referral_id") and v}


@dataclass(frozen=True)
class DeadLetterView:
    letter_id: int
    dlq_topic: str
    consumer: str
    original_topic: str
    original_partition: int
    original_offset: int
    error: str
    attempts: int
    failed_at: datetime
    event_id: str
    event_type: str
    replayed_at: datetime | None
    replayed_by: str
    province_code: str = ""  # the original record's key: "" when it names no province


def province_of_key(key: bytes) -> str:
    """Every refnet topic is keyed by province code; a record whose key is anything else belongs to no
    province (only people who cover every province see it)."""
    try:
        text = key.decode("ascii")
    except UnicodeDecodeError:
        return ""
    return text if 0 < len(text) <= 3 and text.isdigit() else ""


@dataclass(frozen=True)
class DeadLetterRecord:
    """A record read off a dead-letter topic; the original record travels with it, untouched, for replay."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    consumer: str
    original_topic: str
    original_partition: int
    original_offset: int
    original_key: bytes
    original_value: bytes
    error: str
    attempts: int
    failed_at: datetime
    event_id: str
    event_type: str
    traceparent: str

    @property
    def province_code(self) -> str:
        return province_of_key(self.original_key)


@dataclass(frozen=True)
class Hop:
    """One span of a trace, placed on the trace's time axis."""

    span: SpanRecord
    start_ms: float
    duration_ms: float

    @property
    def label(self) -> str:
        return f"{self.span.service.removeprefix('refnet-')} · {self.span.name}"


@dataclass(frozen=True)
class Trace:
    trace_id: str
    started_at_ns: int
    duration_ms: float
    services: tuple[str, ...]
    hops: tuple[Hop, ...]
    hidden_database_spans: int


def build_traces(spans: list[SpanRecord], include_database: bool) -> list[Trace]:
    """Groups spans into traces, oldest first; database spans are counted but left out unless asked for."""
    by_trace: dict[str, list[SpanRecord]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    traces = []
    for trace_id, members in by_trace.items():
        start = min(s.start_ns for s in members)
        end = max(s.end_ns for s in members)
        shown = [s for s in members if include_database or "db.system" not in s.attributes]
        hops = tuple(Hop(s, (s.start_ns - start) / 1e6, max(s.end_ns - s.start_ns, 0) / 1e6)
                     for s in sorted(shown, key=lambda s: (s.start_ns, s.end_ns)))
        traces.append(Trace(trace_id, start, (end - start) / 1e6, tuple(sorted({s.service for s in members})),
                            hops, len(members) - len(shown)))
    return sorted(traces, key=lambda t: t.started_at_ns)


@dataclass(frozen=True)
class ProvinceRow:
    province_code: str
    cases: int
    events: int
    open_referrals: int
    overdue: int
    escalations: int
    beds_free: int | None
