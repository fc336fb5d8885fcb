"""Calls, cases, triage and consent as a hotline operator records them. No I/O, no protobuf.

What a request asks for is validated in intake.domain.validation; errors raised here name the request field
too (InvalidArgument(field, problem)) and never echo personal data back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from refnet_platform.errors import FailedPrecondition, InvalidArgument
from refnet_platform.vocabulary import CaseType, RiskLevel, ServiceType, Sex

MAX_AGE = 120
ADULT_AGE = 18
AGE_BANDS = ("0-5", "6-11", "12-15", "16-17", "18-59", "60+")
CHILD_AGE_BANDS = AGE_BANDS[:4]
# Decree 56/2017/NĐ-CP: emergency measures for a child at serious risk start within 12 hours.
CHILD_PROTECTION_WINDOW = timedelta(hours=12)
DEFAULT_CONSENT_VALIDITY = timedelta(days=90)
DATA_CATEGORIES = ("name", "phone", "address", "safe_contact")
# What the shorthand `consented` covers: enough to reach her safely, no more.
IMPLIED_DATA_CATEGORIES = ("name", "phone", "safe_contact")
# Part of "safe_contact": her safe times without her note, for a reader that needs only when to call.
SAFE_TIMES = "safe_times"
# The directory's provider sectors (demo/directory.json "sector").
RECIPIENT_SECTORS = ("police", "health", "legal_aid", "social_work", "womens_union", "shelter", "education")
MAX_ID = 100
MAX_CALL_SECONDS = 24 * 60 * 60
CLOCK_SKEW = timedelta(minutes=5)
LIMITS = {"name": 200, "address": 500, "safe_contact_note": 1000, "narrative": 20_000, "legal_basis_note": 1000}
MAX_SAFE_TIMES = 20


class CaseStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    ERASED = "erased"


class CallChannel(StrEnum):
    NATIONAL_111 = "national_111"
    PROVINCIAL_HOTLINE = "provincial_hotline"
    WALK_IN = "walk_in"
    PARTNER_AGENCY = "partner_agency"
    COMMUNE = "commune"


class CallTopic(StrEnum):
    DOMESTIC_VIOLENCE = "domestic_violence"
    CHILD_PROTECTION = "child_protection"
    TRAFFICKING = "trafficking"
    GENDER_EQUALITY = "gender_equality"
    COUNSELLING = "counselling"
    ADVICE = "advice"
    WRONG_NUMBER_OR_SPAM = "wrong_number_or_spam"
    OTHER = "other"


class CallOutcome(StrEnum):
    ADVICE_GIVEN = "advice_given"
    COUNSELLING_GIVEN = "counselling_given"
    REFERRED_ELSEWHERE = "referred_elsewhere"
    CASE_OPENED = "case_opened"
    CASE_FOLLOW_UP = "case_follow_up"
    NO_ACTION = "no_action"
    DISCONNECTED = "disconnected"


CASE_OUTCOMES = (CallOutcome.CASE_OPENED, CallOutcome.CASE_FOLLOW_UP)


class ConsentGiver(StrEnum):
    SURVIVOR = "survivor"
    GUARDIAN = "guardian"
    CASE_WORKER = "case_worker"
    SUPERVISOR_OVERRIDE = "supervisor_override"


class LegalBasis(StrEnum):
    """What allows consenting in the survivor's place (intake.v1.LegalBasis): codes, never free text."""

    CHILDREN_LAW_2016 = "children_law_2016"
    DECREE_56_2017 = "decree_56_2017"
    DOMESTIC_VIOLENCE_LAW_2022 = "domestic_violence_law_2022"
    ANTI_TRAFFICKING_LAW_2024 = "anti_trafficking_law_2024"
    VITAL_INTEREST_EMERGENCY = "vital_interest_emergency"
    AUTHORITY_DECISION = "authority_decision"
    OTHER = "other"  # the note says which


class ConsentStatus(StrEnum):
    NONE = "none"
    VALID = "valid"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class CloseOutcome(StrEnum):
    RESOLVED = "resolved"
    TRANSFERRED = "transferred"
    NO_CONTACT = "no_contact"
    SURVIVOR_DECLINED = "survivor_declined"
    DUPLICATE = "duplicate"


class CloseReason(StrEnum):
    GOALS_MET = "goals_met"
    NO_LONGER_AT_RISK = "no_longer_at_risk"
    MOVED_AWAY = "moved_away"
    TRANSFERRED_TO_ANOTHER_PROVINCE = "transferred_to_another_province"
    SURVIVOR_WITHDREW = "survivor_withdrew"
    LOST_CONTACT = "lost_contact"
    DECEASED = "deceased"
    ENTERED_IN_ERROR = "entered_in_error"


class CaseStep(StrEnum):
    """Decree 56/2017/NĐ-CP, in order: receive and assess the report; emergency measures within 12 hours for a
    child at serious risk; a support plan; carry it out; review; close."""

    RECEIVE_AND_ASSESS = "receive_and_assess"
    EMERGENCY_MEASURES = "emergency_measures"
    SUPPORT_PLAN = "support_plan"
    CARRY_OUT = "carry_out"
    REVIEW = "review"
    CLOSE = "close"


class EraseReason(StrEnum):
    SURVIVOR_REQUEST = "survivor_request"
    RETENTION_EXPIRED = "retention_expired"
    ENTERED_IN_ERROR = "entered_in_error"


class Disability(StrEnum):
    YES = "yes"
    NO = "no"


# The national child-protection line; a provincial hotline is named by its province's code.
NATIONAL_LINE = "111"


def handling_line(channel: CallChannel | None, line_province_code: str) -> str:
    """The line that took a call or case: 111, or the province of the provincial hotline."""
    return NATIONAL_LINE if channel is CallChannel.NATIONAL_111 else line_province_code


@dataclass(frozen=True)
class Survivor:
    is_child: bool
    age: int | None
    sex: Sex | None
    age_band_given: str | None = None
    disability: Disability | None = None  # None: not known

    @property
    def age_band(self) -> str:
        if self.age is None:
            return self.age_band_given or ("child-unknown" if self.is_child else "unknown")
        for upper, band in ((5, "0-5"), (11, "6-11"), (15, "12-15"), (17, "16-17"), (59, "18-59")):
            if self.age <= upper:
                return band
        return "60+"


@dataclass(frozen=True)
class SafeTime:
    """A time she gave as safe to contact her, in Asia/Ho_Chi_Minh wall-clock time: ISO weekdays on
    which it opens (1 = Monday; empty: every day), "HH:MM" start and end. An end before the start runs
    past midnight; 00:00-24:00 is the whole day (notifications' ContactWindow reads them the same way)."""

    weekdays: tuple[int, ...] = ()
    start: str = ""
    end: str = ""


@dataclass(frozen=True)
class Contact:
    """Personal data: only ever stored encrypted, never logged or published. The safe times too: they
    tell when she is alone."""

    name: str = ""
    phone: str = ""
    address: str = ""
    safe_contact_note: str = ""
    phone_is_safe: bool = False
    safe_times: tuple[SafeTime, ...] = ()
    # She texted STOP from her number: no SMS to her. Her own word, kept beside the sealed data (never sealed).
    sms_stopped: bool = False

    def only(self, categories: tuple[str, ...]) -> Contact:
        """What a recipient may see: the categories given ("safe_times": the times without the note)."""
        times = "safe_contact" in categories or SAFE_TIMES in categories
        return Contact(
            name=self.name if "name" in categories else "",
            phone=self.phone if "phone" in categories else "",
            address=self.address if "address" in categories else "",
            safe_contact_note=self.safe_contact_note if "safe_contact" in categories else "",
            phone_is_safe=self.phone_is_safe and "phone" in categories,
            safe_times=self.safe_times if times else (),
            sms_stopped=self.sms_stopped,
        )


@dataclass(frozen=True)
class Place:
    province_code: str
    commune_code: str = ""
    district_code: str = ""


@dataclass(frozen=True)
class ConsentTerms:
    """What a consent covers, as given (expires_at None: the default validity)."""

    given_by: ConsentGiver | None
    data_categories: tuple[str, ...]
    recipient_sectors: tuple[str, ...] = ()
    legal_basis: LegalBasis | None = None
    # Personal data (it may name the child's circumstances): sealed under the case's key, erased with it.
    legal_basis_note: str = ""
    expires_at: datetime | None = None


@dataclass
class Consent:
    consent_id: str
    need_id: str
    given_by: ConsentGiver
    legal_basis: LegalBasis | None
    recipient_sectors: tuple[str, ...]
    data_categories: tuple[str, ...]
    given_at: datetime
    expires_at: datetime
    recorded_by: str
    withdrawn_at: datetime | None = None
    withdrawn_by: str = ""
    # The note as given, to be sealed when stored; a consent read back has only `has_legal_basis_note`.
    legal_basis_note: str = ""
    has_legal_basis_note: bool = False

    @property
    def override(self) -> bool:
        return self.given_by is ConsentGiver.SUPERVISOR_OVERRIDE

    def status(self, now: datetime) -> ConsentStatus:
        if self.withdrawn_at is not None:
            return ConsentStatus.WITHDRAWN
        if now >= self.expires_at:
            return ConsentStatus.EXPIRED
        return ConsentStatus.VALID

    def covers(self, sector: str) -> bool:
        return not self.recipient_sectors or sector in self.recipient_sectors


@dataclass
class Need:
    need_id: str
    service_type: ServiceType
    consent: Consent | None = None  # the latest one recorded
    referral_id: str = ""
    referral_status: str = ""
    provider_id: str = ""

    def consent_status(self, now: datetime) -> ConsentStatus:
        return self.consent.status(now) if self.consent else ConsentStatus.NONE

    def valid_consent(self, now: datetime) -> Consent | None:
        return self.consent if self.consent_status(now) is ConsentStatus.VALID else None


@dataclass(frozen=True)
class NeedSpec:
    """A need as asked for: consent given with it (terms), by the shorthand flag, or not yet."""

    service_type: ServiceType | None
    consented: bool = False
    consent: ConsentTerms | None = None


@dataclass(frozen=True)
class CallDetails:
    channel: CallChannel | None
    topic: CallTopic | None
    anonymous: bool = False
    started_at: datetime | None = None
    duration_seconds: int = 0


@dataclass(frozen=True)
class Call:
    call_id: str
    province_code: str
    commune_code: str
    details: CallDetails
    outcome: CallOutcome
    case_id: str
    logged_by: str
    logged_at: datetime
    imported: bool = False

    @property
    def handling_line(self) -> str:
        return handling_line(self.details.channel, self.province_code)


@dataclass
class Case:
    case_id: str
    client_request_id: str
    province_code: str
    commune_code: str
    case_types: list[CaseType]
    survivor: Survivor
    needs: list[Need]
    risk_level: RiskLevel
    immediate_danger: bool
    case_worker_id: str
    registered_at: datetime
    reported_in: Place | None = None
    call_id: str = ""
    status: CaseStatus = CaseStatus.OPEN
    child_protection_deadline: datetime | None = None
    closed_at: datetime | None = None
    close_outcome: CloseOutcome | None = None
    erased_at: datetime | None = None
    close_reason: CloseReason | None = None
    # Case work: the open step due first (a child's, Decree 56/2017) and the earliest open deadline.
    current_step: CaseStep | None = None
    next_due_at: datetime | None = None
    # May it be counted in the indicator reports (anonymous counts)? False: left out of every figure.
    reporting_consent: bool = True
    # The line that took it: NATIONAL_LINE, or the province code of the provincial hotline.
    handling_line: str = ""
    # From before refnet (ImportHistory): counted in reports, acted on by nobody.
    imported: bool = False

    @property
    def emergency(self) -> bool:
        return self.immediate_danger or self.risk_level is RiskLevel.HIGH

    def need(self, need_id: str) -> Need | None:
        return next((n for n in self.needs if n.need_id == need_id), None)

    def need_for(self, service_type: ServiceType) -> Need | None:
        return next((n for n in self.needs if n.service_type is service_type), None)

    def triage(self, risk_level: RiskLevel, immediate_danger: bool, now: datetime,
               window: timedelta = CHILD_PROTECTION_WINDOW) -> None:
        """Sets the risk; a child at serious risk starts the 12-hour deadline, once (`window`: 12 hours unless
        a test configures it shorter)."""
        self.risk_level = risk_level
        self.immediate_danger = immediate_danger
        serious = immediate_danger or risk_level is RiskLevel.HIGH
        if self.survivor.is_child and serious and self.child_protection_deadline is None:
            self.child_protection_deadline = now + window

    def require_open(self) -> None:
        if self.status is CaseStatus.ERASED:
            raise FailedPrecondition(f"case {self.case_id} was erased")
        if self.status is CaseStatus.CLOSED:
            raise FailedPrecondition(f"case {self.case_id} is closed")

    def require_need(self, need_id: str) -> Need:
        need = self.need(need_id)
        if need is None:
            raise InvalidArgument("need_id", f"case {self.case_id} has no need {need_id!r}")
        return need
