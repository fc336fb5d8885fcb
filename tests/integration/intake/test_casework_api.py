"""Case work through intake's real gRPC API (mutual TLS, Keycloak users), on SQLite and PostgreSQL: errors that
name the field, idempotent repeats, supervisors-only reassignment, the case list's filters, order and pages
bounded by the caller's provinces, and the follow-up note in no outbox row and no log line."""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import casework_service_pb2 as cw
from refnet.intake.v1 import casework_service_pb2_grpc as cw_grpc
from refnet.intake.v1 import intake_service_pb2 as pb
from refnet.intake.v1 import types_pb2 as it

pytestmark = pytest.mark.integration

QUANG_NINH, BAI_CHAY = "22", "06673"
HA_TINH, TRAN_PHU = "42", "18100"


def rid() -> str:
    return f"it-{uuid.uuid4()}"


def later(days: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromSeconds(int(time.time() + days * 86400))
    return stamp


def register(api: Any, user: str, province: str, commune: str, **fields: Any) -> Any:
    request = pb.RegisterCaseRequest(client_request_id=rid(), province_code=province, commune_code=commune,
                                     risk_level=fields.pop("risk_level", t.RISK_LEVEL_MEDIUM), **fields)
    return api.person(user).RegisterCase(request, timeout=10).case


def work(api: Any, user: str) -> Any:
    return cw_grpc.CaseWorkServiceStub(api.person_channel(user))


def refused(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value


def test_case_work_over_grpc(api: Any) -> None:
    note = f"ghi chú canary {uuid.uuid4().hex}"
    older = register(api, "qn-operator", QUANG_NINH, BAI_CHAY, case_types=[t.CASE_TYPE_OLDER_PERSON],
                     survivor=pb.Survivor(age=80, sex=t.SEX_MALE))
    operator = work(api, "qn-operator")

    # A field error names the field; nothing is written.
    bad = refused(lambda: operator.RecordCasePlan(cw.RecordCasePlanRequest(
        client_request_id=rid(), case_id=older.case_id, goals=[cw.Goal(
            description="x", responsible_kind=it.RESPONSIBLE_KIND_PERSON, responsible_id="qn-operator")]),
        timeout=10))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and bad.details().startswith("goals[0].due_at")
    bad = refused(lambda: operator.ListCases(cw.ListCasesRequest(page_token="nope"), timeout=10))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in bad.details()

    # Idempotent: a repeat returns the first follow-up and publishes nothing more.
    request = cw.AddFollowUpRequest(client_request_id=rid(), case_id=older.case_id,
                                    kind=it.FOLLOW_UP_KIND_PHONE_CALL, note=note)
    first = operator.AddFollowUp(request, timeout=10)
    again = operator.AddFollowUp(request, timeout=10)
    assert first.created and not again.created and again.follow_up_id == first.follow_up_id
    events = [type(p).__name__ for _, _, p in api.events(f"case/{older.case_id}")]
    assert events.count("FollowUpRecorded") == 1

    # Reassignment is a supervisor's.
    denied = refused(lambda: operator.ReassignCase(cw.ReassignCaseRequest(
        client_request_id=rid(), case_id=older.case_id, case_worker_id="qn-worker-7",
        reason=it.REASSIGN_REASON_WORKLOAD), timeout=10))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    moved = work(api, "qn-supervisor").ReassignCase(cw.ReassignCaseRequest(
        client_request_id=rid(), case_id=older.case_id, case_worker_id="qn-worker-7",
        reason=it.REASSIGN_REASON_WORKLOAD), timeout=10)
    assert moved.case.case_worker_id == "qn-worker-7"

    # Another province's case file is not found, in the same words as a made-up id.
    ht_case = register(api, "ht-operator", HA_TINH, TRAN_PHU, case_types=[t.CASE_TYPE_DISABILITY],
                       survivor=pb.Survivor(age=40, sex=t.SEX_FEMALE))
    theirs = refused(lambda: operator.GetCaseFile(cw.GetCaseFileRequest(case_id=ht_case.case_id), timeout=10))
    made_up = str(uuid.uuid4())
    unknown = refused(lambda: operator.GetCaseFile(cw.GetCaseFileRequest(case_id=made_up), timeout=10))
    assert (theirs.code(), theirs.details().replace(ht_case.case_id, "ID")) == \
           (unknown.code(), unknown.details().replace(made_up, "ID"))

    # The list: filters by case type and risk, due first, pages; Hà Tĩnh's case never in Quảng Ninh's list.
    child = register(api, "qn-operator", QUANG_NINH, BAI_CHAY, case_types=[t.CASE_TYPE_SCHOOL_DROP_OUT],
                     risk_level=t.RISK_LEVEL_HIGH, survivor=pb.Survivor(is_child=True, age=14, sex=t.SEX_FEMALE))
    operator.RecordCasePlan(cw.RecordCasePlanRequest(client_request_id=rid(), case_id=older.case_id, goals=[cw.Goal(
        description="trợ cấp", services=[t.SERVICE_TYPE_WELFARE_ACCESS], responsible_kind=it.RESPONSIBLE_KIND_AGENCY,
        responsible_id="qn-welfare", due_at=later(5))]), timeout=10)
    supervisor = work(api, "qn-supervisor")
    by_type = supervisor.ListCases(cw.ListCasesRequest(case_type=t.CASE_TYPE_OLDER_PERSON), timeout=10).cases
    assert [c.case_id for c in by_type] == [older.case_id]
    high = supervisor.ListCases(cw.ListCasesRequest(risk_level=t.RISK_LEVEL_HIGH), timeout=10).cases
    assert child.case_id in {c.case_id for c in high} and older.case_id not in {c.case_id for c in high}
    listed, token = [], ""
    while True:
        page = supervisor.ListCases(cw.ListCasesRequest(page_size=1, page_token=token), timeout=10)
        listed += page.cases
        token = page.next_page_token
        if not token:
            break
    ids = [c.case_id for c in listed]
    assert ht_case.case_id not in ids and {c.province_code for c in listed} == {QUANG_NINH}
    assert ids.index(child.case_id) < ids.index(older.case_id)  # 12 hours before 5 days
    assert work(api, "ht-supervisor").ListCases(cw.ListCasesRequest(query=older.case_id), timeout=10).cases == []
    found = supervisor.ListCases(cw.ListCasesRequest(query=older.case_id), timeout=10).cases
    assert [c.case_id for c in found] == [older.case_id]

    # The note: read back through the case file; in no outbox row and no log line.
    assert operator.GetCaseFile(cw.GetCaseFileRequest(case_id=older.case_id), timeout=10).follow_ups[0].note == note
    assert all(note.encode() not in row["value"] for row in api.outbox_rows())
    assert all(note not in str(line) for line in api.log_lines())
