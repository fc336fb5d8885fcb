"""History from before refnet: past calls and cases imported with their original dates. Same rules as every
intake handler (handlers.py): authorize first, check every row before storing any, one transaction per row with
its events, once per idempotency key, a row outside the caller's remit tells nothing about it."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from intake.domain import commands, events
from intake.domain.model import MAX_ID, NATIONAL_LINE, Call, CallOutcome, Case, CaseStatus, Contact, Place
from intake.domain.validation import require_id, resolve_place, validate_call, validate_survivor
from intake.service_layer.authorization import authorize
from intake.service_layer.handlers import RECORDED_AT_SKEW, USED_ELSEWHERE, UowFactory, _once, _require_province
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from refnet_platform.caller import Caller
from refnet_platform.clock import Clock
from refnet_platform.envelope import new_event_id
from refnet_platform.errors import AlreadyExists, InvalidArgument
from refnet_platform.requests import SHARED
from refnet_platform.vocabulary import RiskLevel

log = logging.getLogger(__name__)

MAX_IMPORT_ROWS = 500
# Rows are remembered in the platform's requests table under this prefix, apart from client request ids.
IMPORT_KEY_PREFIX = "import:"


def _prefixed(err: InvalidArgument, prefix: str) -> InvalidArgument:
    field = err.field
    return InvalidArgument(f"{prefix}{field}", str(err).removeprefix(f"{field}: "))


def _import_key(key: str, field: str, seen: set[str]) -> str:
    require_id(key, field)
    if len(key) > MAX_ID - len(IMPORT_KEY_PREFIX):
        raise InvalidArgument(field, f"at most {MAX_ID - len(IMPORT_KEY_PREFIX)} characters")
    if key in seen:
        raise InvalidArgument(field, f"{key!r} appears twice in this request")
    seen.add(key)
    return IMPORT_KEY_PREFIX + key


def _past(at: datetime | None, received: datetime, field: str) -> datetime:
    if at is None:
        raise InvalidArgument(field, "is required: the record's original date and time")
    if at > received + RECORDED_AT_SKEW:
        raise InvalidArgument(field, "is in the future")
    return at


def _imported_case(row: commands.ImportedCase, index: int, caller: Caller, received: datetime) -> Case:
    """The case a row describes, checked field by field (every error names `cases[index].<field>`)."""
    prefix = f"cases[{index}]."
    registered_at = _past(row.registered_at, received, f"{prefix}registered_at")
    occurred = resolve_place(row.occurred_in, registered_at, prefix)
    reported = resolve_place(row.reported_in, registered_at, f"{prefix}reported_in.") if row.reported_in else None
    # The importer answers for the line's own records: a provincial line's province must be theirs; the
    # national line's records, the province where it happened.
    if row.national_line or reported is None:
        _require_province(caller, occurred, f"{prefix}province_code")
    else:
        _require_province(caller, reported, f"{prefix}reported_in.province_code")
    if not row.case_types:
        raise InvalidArgument(f"{prefix}case_types", "at least one case type is required")
    try:
        validate_survivor(row.survivor)
    except InvalidArgument as err:
        raise _prefixed(err, prefix) from None
    if (row.closed_at is None) != (row.close_outcome is None):
        raise InvalidArgument(f"{prefix}close_outcome", "give both closed_at and close_outcome, or neither")
    if row.closed_at is not None:
        if row.closed_at < registered_at:
            raise InvalidArgument(f"{prefix}closed_at", "is before registered_at")
        _past(row.closed_at, received, f"{prefix}closed_at")
    line = NATIONAL_LINE if row.national_line else (reported or occurred).province_code
    case = Case(
        case_id="", client_request_id="", province_code=occurred.province_code, commune_code=occurred.commune_code,
        case_types=list(dict.fromkeys(row.case_types)), survivor=row.survivor, needs=[],
        risk_level=row.risk_level or RiskLevel.MEDIUM, immediate_danger=row.immediate_danger, case_worker_id="",
        registered_at=registered_at, reported_in=reported, reporting_consent=row.reporting_consent,
        handling_line=line, imported=True)
    if row.closed_at is not None:
        case.status, case.closed_at, case.close_outcome = CaseStatus.CLOSED, row.closed_at, row.close_outcome
    return case


def _require_own_record(uow: UowFactory, caller: Caller, case_id: str = "", call_id: str = "") -> None:
    """A row imported before answers only to someone whose remit holds it; anyone else learns nothing of it."""
    with uow().reading() as work:
        case = work.cases.get(case_id) if case_id else None
        call = work.calls.get(call_id) if call_id else None
    if case is not None:
        provinces = {case.province_code, case.handling_line}
    elif call is not None:
        provinces = {call.province_code}
    else:
        provinces = set()
    if not any(caller.covers(p) for p in provinces if p != NATIONAL_LINE):
        raise AlreadyExists(USED_ELSEWHERE)


def import_history(cmd: commands.ImportHistory, uow: UowFactory, clock: Clock
                   ) -> tuple[list[tuple[str, str, bool]], list[tuple[str, str, bool]]]:
    """Past calls and cases, with their original dates, published as imported events: every service learns
    them once and none acts on them (no referral, no notice, no deadline). Every row is checked before any is
    stored; each row is then stored once, with its events, keyed by its idempotency key: a re-import of the
    same rows changes nothing and answers created = False. ([(key, case id, created)], [(key, call id, created)])."""
    authorize("ImportHistory", cmd.caller)
    if not cmd.cases and not cmd.calls:
        raise InvalidArgument("cases", "nothing to import: give cases or calls")
    if len(cmd.cases) + len(cmd.calls) > MAX_IMPORT_ROWS:
        raise InvalidArgument("cases", f"at most {MAX_IMPORT_ROWS} rows (cases and calls) per request")
    received = clock()
    seen: set[str] = set()
    cases = [(_import_key(row.idempotency_key, f"cases[{i}].idempotency_key", seen),
              _imported_case(row, i, cmd.caller, received)) for i, row in enumerate(cmd.cases)]
    case_keys = {IMPORT_KEY_PREFIX + row.idempotency_key for row in cmd.cases}
    calls = []
    for i, call_row in enumerate(cmd.calls):
        prefix = f"calls[{i}]."
        key = _import_key(call_row.idempotency_key, f"{prefix}idempotency_key", seen)
        started_at = _past(call_row.details.started_at, received, f"{prefix}call.started_at")
        validate_call(call_row.details, received, f"{prefix}call.")
        if call_row.outcome is None:
            raise InvalidArgument(f"{prefix}outcome", "is required")
        place = resolve_place(call_row.place, started_at, prefix)
        _require_province(cmd.caller, place, f"{prefix}province_code")
        case_key = IMPORT_KEY_PREFIX + call_row.case_key if call_row.case_key else ""
        if case_key and case_key not in case_keys:
            with uow().reading() as work:
                if work.requests.check(SHARED, case_key, "import_case", "") is None:
                    raise InvalidArgument(f"{prefix}case_key", f"no imported case has key {call_row.case_key!r}")
        calls.append((key, place, call_row, case_key))

    case_ids: dict[str, str] = {}
    imported_cases = []
    for key, case in cases:
        def perform_case(work: IntakeUnitOfWork, now: datetime, case: Case = case, key: str = key) -> str:
            made = replace(case, case_id=new_event_id(), client_request_id=key, case_worker_id=cmd.caller.subject_id)
            work.cases.add(made, Contact(), "")
            work.emit(events.CaseRegistered(made, made.registered_at))
            if made.closed_at is not None:
                work.emit(events.CaseClosed(made))
            return made.case_id

        case_id, created = _once(uow, clock, cmd.caller, key, "import_case", "", perform_case)
        if not created:
            _require_own_record(uow, cmd.caller, case_id=case_id)
        case_ids[key] = case_id
        imported_cases.append((key.removeprefix(IMPORT_KEY_PREFIX), case_id, created))

    imported_calls = []
    for key, place, call_row, case_key in calls:
        def perform_call(work: IntakeUnitOfWork, now: datetime, place: Place = place,
                         row: commands.ImportedCall = call_row, case_key: str = case_key) -> str:
            case_id = case_ids.get(case_key, "")
            if case_key and not case_id:
                prior = work.requests.check(SHARED, case_key, "import_case", "")
                case_id = prior.result_id if prior is not None else ""
            call = Call(call_id=new_event_id(), province_code=place.province_code, commune_code=place.commune_code,
                        details=row.details, outcome=row.outcome or CallOutcome.NO_ACTION, case_id=case_id,
                        logged_by=cmd.caller.subject_id, logged_at=now, imported=True)
            work.calls.add(call)
            work.emit(events.CallLogged(call))
            return call.call_id

        call_id, created = _once(uow, clock, cmd.caller, key, "import_call", "", perform_call)
        if not created:
            _require_own_record(uow, cmd.caller, call_id=call_id)
        imported_calls.append((key.removeprefix(IMPORT_KEY_PREFIX), call_id, created))
    log.info("history imported", extra={"fields": {
        "cases": len(cases), "calls": len(calls),
        "new": sum(c for *_, c in imported_cases) + sum(c for *_, c in imported_calls)}})
    return imported_cases, imported_calls
