from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from intake.domain import commands, events
from intake.domain.model import Case, validate_case
from intake.service_layer.unit_of_work import IntakeUnitOfWork
from refnet_platform.envelope import new_event_id
from refnet_platform.errors import NotFound

log = logging.getLogger(__name__)

UowFactory = Callable[[], IntakeUnitOfWork]


def register_case(cmd: commands.RegisterCase, uow: UowFactory) -> tuple[Case, bool]:
    """Returns (case, created). A repeated client_request_id returns the first case unchanged."""
    case = Case(
        case_id=new_event_id(), client_request_id=cmd.client_request_id, province_code=cmd.province_code,
        commune_code=cmd.commune_code, case_types=list(cmd.case_types), survivor=cmd.survivor,
        needs=[replace(n, need_id=new_event_id()) for n in cmd.needs], risk_level=cmd.risk_level,
        immediate_danger=cmd.immediate_danger, case_worker_id=cmd.case_worker_id,
        registered_at=datetime.now(UTC),
    )
    validate_case(case)
    try:
        with uow() as work:
            existing = work.cases.by_client_request(cmd.client_request_id)
            if existing:
                return existing, False
            work.cases.add(case, cmd.contact, cmd.narrative)
            work.emit(events.CaseRegistered(case))
            work.commit()
    except IntegrityError:
        # A concurrent repeat of the same request won the race: return its case.
        with uow() as work:
            existing = work.cases.by_client_request(cmd.client_request_id)
            if existing is None:
                raise
            return existing, False
    log.info("case registered", extra={"fields": {"case_id": case.case_id, "province": case.province_code,
                                                  "emergency": case.emergency}})
    return case, True


def get_case(cmd: commands.GetCase, uow: UowFactory) -> Case:
    with uow() as work:
        case = work.cases.get(cmd.case_id)
    if case is None:
        raise NotFound(f"case {cmd.case_id} not found")
    return case


def record_referral(cmd: commands.RecordReferral, uow: UowFactory) -> None:
    with uow() as work:
        case = work.cases.get(cmd.case_id)
        if case is None:
            log.warning("referral for an unknown case", extra={"fields": {"case_id": cmd.case_id}})
            work.commit()  # still recorded in the inbox: a redelivery changes nothing
            return
        need = case.need(cmd.need_id) or next((n for n in case.needs if n.referral_id == cmd.referral_id), None)
        if need is not None:
            need.referral_id = cmd.referral_id
            need.referral_status = cmd.status
            need.provider_id = cmd.provider_id or need.provider_id
            work.cases.update_need(need)
        work.commit()
