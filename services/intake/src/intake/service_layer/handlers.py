"""Intake's use cases. Each authorizes its caller, validates before touching the database, and
changes state plus the events it causes in one transaction (nothing half-written). Mutating
commands run once per client request id: a repeat returns the first result, created = False.

Operators and supervisors act only within their provinces: a case outside them answers exactly as a
missing one (NotFound, same words), and a repeated request id never returns another province's record.

No handler reads the wall clock: those that need the time are given the bootstrap's clock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from intake.domain import commands, events
from intake.domain.casework import StepPolicy
from intake.domain.contact_reads import ACCEPTED, AuditEntry
from intake.domain.model import (
    MAX_ID,
    Call,
    CallOutcome,
    Case,
    CaseStatus,
    Consent,
    ConsentStatus,
    Need,
    Place,
    handling_line,
)
from intake.domain.validation import (
    consent_terms_for,
    new_consent,
    require_id,
    resolve_place,
    validate_call,
    validate_call_outcome,
    validate_consent,
    validate_contact,
    validate_need_types,
    validate_survivor,
)
from intake.service_layer.authorization import authorize
from intake.service_layer.steps import after_triage, end_steps, first_child_steps
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from refnet_platform.caller import Caller
from refnet_platform.clock import Clock
from refnet_platform.envelope import new_event_id
from refnet_platform.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from refnet_platform.requests import REUSED, SHARED

log = logging.getLogger(__name__)

UowFactory = Callable[[], IntakeUnitOfWork]
# A front end's clock may run a little ahead of ours; a call recorded later than this is refused.
RECORDED_AT_SKEW = timedelta(minutes=5)

DEFAULT_STEPS = StepPolicy()
# A repeated request id whose record is outside the caller's provinces: nothing about it is told.
USED_ELSEWHERE = REUSED


def case_not_found(case_id: str) -> NotFound:
    return NotFound(f"case {case_id} not found")


def _case(work: IntakeUnitOfWork, case_id: str, caller: Caller, lock: bool = True) -> Case:
    """The case, if it is in the caller's provinces: one outside answers exactly as a missing one."""
    case = work.cases.get(case_id, lock=lock)
    if case is None or not caller.covers(case.province_code):
        raise case_not_found(case_id)
    return case


def _load(uow: UowFactory, case_id: str, caller: Caller) -> Case:
    with uow().reading() as work:
        return _case(work, case_id, caller, lock=False)


def _require_province(caller: Caller, place: Place, field: str) -> None:
    """Creating in a province outside the caller's is refused: that tells nothing about any record."""
    if not caller.covers(place.province_code):
        raise PermissionDenied(f"{field}: {place.province_code} is not one of your provinces")


def _once(uow: UowFactory, clock: Clock, caller: Caller, client_request_id: str, operation: str, case_id: str,
          perform: Callable[[IntakeUnitOfWork, datetime], str]) -> tuple[str, bool]:
    """Runs `perform` (which stages rows and events and returns the id of what it made) in one
    transaction with the record of this request, unless the request ran before. (result id, created).
    `perform` is given the clock's time, read once the transaction has begun. Intake's request ids are
    shared by all its callers (scope SHARED); one used for another operation or case is ALREADY_EXISTS."""
    try:
        return _attempt(uow, clock, client_request_id, operation, case_id, perform)
    except IntegrityError:
        # A concurrent repeat of the same request committed first: its record answers now.
        return _attempt(uow, clock, client_request_id, operation, case_id, perform)


def _attempt(uow: UowFactory, clock: Clock, client_request_id: str, operation: str, case_id: str,
             perform: Callable[[IntakeUnitOfWork, datetime], str]) -> tuple[str, bool]:
    with uow() as work:
        prior = work.requests.check(SHARED, client_request_id, operation, case_id)
        if prior is None:
            now = clock()
            result_id = perform(work, now)
            work.requests.add(SHARED, client_request_id, operation, case_id, result_id, now)
            work.commit()
            return result_id, True
    return prior.result_id, False


def _new_record(uow: UowFactory, clock: Clock, caller: Caller, client_request_id: str, operation: str,
                result_id: str, perform: Callable[[IntakeUnitOfWork, datetime], str]) -> tuple[str, bool]:
    """As _once, for a request that makes a new record whose id (`result_id`) is chosen beforehand: the request's
    record is written first, without reading whether the id was used. Only an id already used (the record's
    insert fails) then takes _once's way, which answers with its first result or ALREADY_EXISTS."""
    try:
        with uow() as work:
            now = clock()
            work.requests.add(SHARED, client_request_id, operation, "", result_id, now)
            perform(work, now)
            work.commit()
            return result_id, True
    except IntegrityError:
        return _once(uow, clock, caller, client_request_id, operation, "", perform)


def require_ids(cmd: object, *names: str) -> None:
    for name in names:
        require_id(getattr(cmd, name), name)


# ---------------------------------------------------------------------------------------------
# Calls


def log_call(cmd: commands.LogCall, uow: UowFactory, clock: Clock) -> tuple[Call, bool]:
    authorize("LogCall", cmd.caller)
    require_ids(cmd, "client_request_id")
    received = clock()
    validate_call(cmd.details, received)
    outcome = validate_call_outcome(cmd.outcome, cmd.case_id)
    place = resolve_place(cmd.place, received)
    _require_province(cmd.caller, place, "province_code")

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        if cmd.case_id:
            _case(work, cmd.case_id, cmd.caller)
        call = Call(call_id=new_event_id(), province_code=place.province_code, commune_code=place.commune_code,
                    details=replace(cmd.details, started_at=cmd.details.started_at or now), outcome=outcome,
                    case_id=cmd.case_id, logged_by=cmd.caller.subject_id, logged_at=now)
        work.calls.add(call)
        work.emit(events.CallLogged(call))
        return call.call_id

    call_id, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "log_call", "", perform)
    with uow() as work:
        call = work.calls.get(call_id)
    assert call is not None
    if not cmd.caller.covers(call.province_code):
        raise AlreadyExists(USED_ELSEWHERE)  # a repeat of another province's request
    if created:
        log.info("call logged", extra={"fields": {"call_id": call_id, "province": call.province_code,
                                                  "outcome": str(call.outcome)}})
    return call, created


# ---------------------------------------------------------------------------------------------
# Cases


def register_case(cmd: commands.RegisterCase, uow: UowFactory, clock: Clock,
                  policy: StepPolicy = DEFAULT_STEPS) -> tuple[Case, bool]:
    """Returns (case, created). A repeated client_request_id returns the first case."""
    authorize("RegisterCase", cmd.caller)
    require_ids(cmd, "client_request_id")
    received = clock()
    recorded_at = cmd.recorded_at or received
    if recorded_at > received + RECORDED_AT_SKEW:
        raise InvalidArgument("recorded_at", "is in the future: give when the call was taken (or leave it out)")
    occurred = resolve_place(cmd.occurred_in, recorded_at)
    reported = resolve_place(cmd.reported_in, recorded_at, "reported_in.") if cmd.reported_in else None
    _require_province(cmd.caller, occurred, "province_code")
    if reported is not None:
        _require_province(cmd.caller, reported, "reported_in.province_code")
    if not cmd.case_types:
        raise InvalidArgument("case_types", "at least one case type is required")
    if cmd.risk_level is None:
        raise InvalidArgument("risk_level", "is required (low, medium or high)")
    risk_level = cmd.risk_level
    validate_survivor(cmd.survivor)
    validate_contact(cmd.contact, cmd.narrative)
    validate_need_types(cmd.needs, "needs")
    terms = [consent_terms_for(spec, cmd.survivor, f"needs[{i}].consent.") for i, spec in enumerate(cmd.needs)]
    for index, given in enumerate(terms):
        if given is not None:
            validate_consent(given, cmd.survivor, received, f"needs[{index}].consent.")
    line = handling_line(cmd.call.channel if cmd.call else None, (reported or occurred).province_code)
    case_worker_id = cmd.case_worker_id or cmd.caller.subject_id
    if len(case_worker_id) > MAX_ID:
        raise InvalidArgument("case_worker_id", f"at most {MAX_ID} characters")
    if cmd.call is not None:
        validate_call(cmd.call, received)

    made: list[Case] = []
    new_case_id = new_event_id()

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = Case(
            case_id=new_case_id, client_request_id=cmd.client_request_id, province_code=occurred.province_code,
            commune_code=occurred.commune_code, case_types=list(dict.fromkeys(cmd.case_types)),
            survivor=cmd.survivor, needs=[], risk_level=risk_level, immediate_danger=False,
            case_worker_id=case_worker_id, registered_at=now, reported_in=reported,
            reporting_consent=cmd.reporting_consent, handling_line=line,
        )
        case.triage(risk_level, cmd.immediate_danger, now, policy.emergency_measures)
        for spec, given in zip(cmd.needs, terms, strict=True):
            assert spec.service_type is not None
            need = Need(need_id=new_event_id(), service_type=spec.service_type)
            if given is not None:
                need.consent = new_consent(new_event_id(), need.need_id, given, cmd.caller.subject_id, now)
            case.needs.append(need)
        call = None
        if cmd.call is not None:
            place = reported or occurred
            call = Call(call_id=new_event_id(), province_code=place.province_code, commune_code=place.commune_code,
                        details=replace(cmd.call, started_at=cmd.call.started_at or now),
                        outcome=CallOutcome.CASE_OPENED, case_id=case.case_id, logged_by=cmd.caller.subject_id,
                        logged_at=now)
            case.call_id = call.call_id
        steps = first_child_steps(case, policy, now)
        work.cases.add(case, cmd.contact, cmd.narrative)
        work.casework.add_steps(case.case_id, steps)
        made.append(case)
        work.emit(events.CaseRegistered(case, now))
        if call is not None:
            work.calls.add(call)
            work.emit(events.CallLogged(call))
        return case.case_id

    case_id, created = _new_record(uow, clock, cmd.caller, cmd.client_request_id, "register_case", new_case_id,
                                   perform)
    if created:
        case = made[-1]  # as it was just stored
    else:
        try:
            case = _load(uow, case_id, cmd.caller)
        except NotFound:
            raise AlreadyExists(USED_ELSEWHERE) from None  # a repeat of another province's request: not its id
    if created:  # routine: at DEBUG (the case and its event are the record)
        log.debug("case registered", extra={"fields": {"case_id": case_id, "province": case.province_code,
                                                      "emergency": case.emergency}})
    return case, created


def get_case(cmd: commands.GetCase, uow: UowFactory) -> Case:
    authorize("GetCase", cmd.caller)
    require_ids(cmd, "case_id")
    return _load(uow, cmd.case_id, cmd.caller)


def add_need(cmd: commands.AddNeed, uow: UowFactory, clock: Clock) -> tuple[Case, str, bool]:
    authorize("AddNeed", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id")
    validate_need_types([cmd.need], "need")
    service_type = cmd.need.service_type
    assert service_type is not None

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        case.require_open()
        if case.need_for(service_type):
            raise AlreadyExists(f"need.service_type: case {case.case_id} already has a {service_type} need")
        terms = consent_terms_for(cmd.need, case.survivor, "need.consent.")
        need = Need(need_id=new_event_id(), service_type=service_type)
        if terms is not None:
            validate_consent(terms, case.survivor, now, "need.consent.")
            need.consent = new_consent(new_event_id(), need.need_id, terms, cmd.caller.subject_id, now)
        work.cases.add_need(case.case_id, need)
        case.needs.append(need)
        work.emit(events.NeedAdded(case, need, now))
        return need.need_id

    need_id, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "add_need", cmd.case_id, perform)
    return _load(uow, cmd.case_id, cmd.caller), need_id, created


def update_risk(cmd: commands.UpdateRisk, uow: UowFactory, clock: Clock,
                policy: StepPolicy = DEFAULT_STEPS) -> tuple[Case, bool]:
    authorize("UpdateRisk", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id")
    if cmd.risk_level is None:
        raise InvalidArgument("risk_level", "is required (low, medium or high)")
    risk_level = cmd.risk_level

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        case.require_open()
        case.triage(risk_level, cmd.immediate_danger, now, policy.emergency_measures)
        work.cases.update(case)
        work.emit(events.RiskUpdated(case))
        after_triage(work, case, now, cmd.caller.subject_id)
        return case.case_id

    _, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "update_risk", cmd.case_id, perform)
    case = _load(uow, cmd.case_id, cmd.caller)
    if created:
        log.info("risk updated", extra={"fields": {"case_id": case.case_id, "risk": str(case.risk_level),
                                                   "emergency": case.emergency}})
    return case, created


def close_case(cmd: commands.CloseCase, uow: UowFactory, clock: Clock) -> tuple[Case, bool]:
    authorize("CloseCase", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id")
    if cmd.outcome is None:
        raise InvalidArgument("outcome", "is required")
    outcome = cmd.outcome

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        case.require_open()
        case.status, case.closed_at, case.close_outcome = CaseStatus.CLOSED, now, outcome
        case.close_reason = cmd.reason
        work.cases.update(case)
        work.emit(events.CaseClosed(case))
        end_steps(work, case, now, cmd.caller.subject_id, closed=True)
        return case.case_id

    _, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "close_case", cmd.case_id, perform)
    return _load(uow, cmd.case_id, cmd.caller), created


def erase_case(cmd: commands.EraseCase, uow: UowFactory, clock: Clock) -> tuple[Case, bool]:
    """The case's key and everything sealed under it are deleted (not only the key: see erase_personal_data)."""
    authorize("EraseCase", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id")
    if cmd.reason is None:
        raise InvalidArgument("reason", "is required")
    reason = cmd.reason

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        if case.status is CaseStatus.ERASED:
            raise FailedPrecondition(f"case {case.case_id} was already erased")
        work.cases.erase_personal_data(case.case_id)
        case.status, case.erased_at = CaseStatus.ERASED, now
        work.cases.update(case)
        work.audit.append(AuditEntry(actor=cmd.caller, action="erase_case", case_id=case.case_id, at=now,
                                     purpose=str(reason)))
        work.emit(events.CaseErased(case))
        end_steps(work, case, now, cmd.caller.subject_id, closed=False)
        return case.case_id

    _, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "erase_case", cmd.case_id, perform)
    if created:
        log.info("case erased", extra={"fields": {"case_id": cmd.case_id, "reason": str(reason)}})
    return _load(uow, cmd.case_id, cmd.caller), created


# ---------------------------------------------------------------------------------------------
# Consent


def give_consent(cmd: commands.GiveConsent, uow: UowFactory, clock: Clock) -> tuple[Case, str, bool]:
    authorize("GiveConsent", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id", "need_id")
    if cmd.terms is None:
        raise InvalidArgument("consent", "is required")
    terms = cmd.terms

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        case.require_open()
        need = case.require_need(cmd.need_id)
        validate_consent(terms, case.survivor, now, "consent.")
        return _record_consent(work, case, need, new_consent(new_event_id(), need.need_id, terms,
                                                             cmd.caller.subject_id, now))

    consent_id, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "give_consent", cmd.case_id,
                                perform)
    return _load(uow, cmd.case_id, cmd.caller), consent_id, created


def override_consent(cmd: commands.OverrideConsent, uow: UowFactory, clock: Clock) -> tuple[Case, str, bool]:
    """A supervisor consents in the survivor's place under a legal basis; the override is audited."""
    authorize("OverrideConsent", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id", "need_id")

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        case.require_open()
        need = case.require_need(cmd.need_id)
        validate_consent(cmd.terms, case.survivor, now, "")
        consent = new_consent(new_event_id(), need.need_id, cmd.terms, cmd.caller.subject_id, now)
        work.audit.append(AuditEntry(actor=cmd.caller, action="consent_override", case_id=case.case_id, at=now,
                                     need_id=need.need_id, detail=str(consent.legal_basis or "")))
        return _record_consent(work, case, need, consent)

    consent_id, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "override_consent", cmd.case_id,
                                perform)
    if created:
        log.warning("consent overridden", extra={"fields": {"case_id": cmd.case_id, "need_id": cmd.need_id,
                                                            "supervisor": cmd.caller.subject_id}})
    return _load(uow, cmd.case_id, cmd.caller), consent_id, created


def _record_consent(work: IntakeUnitOfWork, case: Case, need: Need, consent: Consent) -> str:
    """The new consent replaces the need's earlier one, if any."""
    work.cases.add_consent(case.case_id, consent)
    need.consent = consent
    work.emit(events.ConsentGiven(case, need, consent))
    return consent.consent_id


def withdraw_consent(cmd: commands.WithdrawConsent, uow: UowFactory, clock: Clock) -> tuple[Case, str, bool]:
    """Allowed on a closed case too: withdrawing is the survivor's right at any time."""
    authorize("WithdrawConsent", cmd.caller)
    require_ids(cmd, "client_request_id", "case_id", "need_id")

    def perform(work: IntakeUnitOfWork, now: datetime) -> str:
        case = _case(work, cmd.case_id, cmd.caller)
        if case.status is CaseStatus.ERASED:
            raise FailedPrecondition(f"case {case.case_id} was erased")
        need = case.require_need(cmd.need_id)
        status = need.consent_status(now)
        if status is not ConsentStatus.VALID or need.consent is None:
            raise FailedPrecondition(f"need {need.need_id} has no valid consent to withdraw (it is {status})")
        need.consent.withdrawn_at, need.consent.withdrawn_by = now, cmd.caller.subject_id
        work.cases.withdraw(need.consent)
        work.emit(events.ConsentWithdrawn(case, need, need.consent))
        return need.consent.consent_id

    consent_id, created = _once(uow, clock, cmd.caller, cmd.client_request_id, "withdraw_consent", cmd.case_id,
                                perform)
    if created:
        log.info("consent withdrawn", extra={"fields": {"case_id": cmd.case_id, "need_id": cmd.need_id}})
    return _load(uow, cmd.case_id, cmd.caller), consent_id, created


# ---------------------------------------------------------------------------------------------
# From referral's events


def record_referral(cmd: commands.RecordReferral, uow: UowFactory, clock: Clock) -> None:
    """Keeps the need's referral, status and provider as referral reports them (the need named, else the
    one holding the referral), and intake's own record of the referral, which contact reads rely on."""
    with uow() as work:
        holding = work.cases.record_referral(cmd.case_id, cmd.need_id, cmd.referral_id, cmd.status, cmd.provider_id)
        if holding is None and not work.cases.exists(cmd.case_id):
            log.warning("referral for an unknown case", extra={"fields": {"case_id": cmd.case_id}})
        elif cmd.referral_id:
            work.referrals.record(cmd.case_id, holding, cmd.referral_id, cmd.status, cmd.provider_id,
                                  accepted=cmd.status in ACCEPTED, at=clock())
        work.commit()  # recorded in the inbox either way: a redelivery changes nothing
