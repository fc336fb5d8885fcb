"""Intake's gRPC API: the operators' IntakeService and the internal CaseContactService. Servicers
only map: the caller the server resolved (a person's token, a machine's certificate) goes into each
command and the handler decides."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from sqlalchemy import Engine

import refnet_geo
from intake.adapters import casework_mapping
from intake.adapters import proto_mapping as mapping
from intake.adapters.repository import CaseRepository
from intake.bootstrap import bootstrap, make_vault
from intake.config import MIGRATIONS, Settings
from intake.domain import commands
from intake.entrypoints.admission import NORMAL_SLOTS, SQLITE_NORMAL_SLOTS, Admission, Batches, is_emergency
from refnet.intake.v1 import casework_service_pb2 as cw
from refnet.intake.v1 import casework_service_pb2_grpc as cw_grpc
from refnet.intake.v1 import contact_service_pb2 as contact_pb
from refnet.intake.v1 import contact_service_pb2_grpc as contact_grpc
from refnet.intake.v1 import intake_service_pb2 as pb
from refnet.intake.v1 import intake_service_pb2_grpc as pb_grpc
from refnet_platform.bus import MessageBus
from refnet_platform.caller import Caller
from refnet_platform.clock import Clock, system_clock
from refnet_platform.engine import is_postgres
from refnet_platform.identity import caller_of
from refnet_platform.runtime import run_api


class IntakeServicer(pb_grpc.IntakeServiceServicer):
    def __init__(self, bus: MessageBus, admission: Admission, batches: Batches, clock: Clock = system_clock) -> None:
        self.bus = bus
        self.admission = admission
        self.batches = batches  # normal registrations: written together when they queue
        self.clock = clock  # the bus's: a case's consents are shown as valid or not at its time

    def _case(self, case: Any) -> pb.Case:
        return mapping.case_to_pb(case, self.clock())

    async def _handle(self, to_command: Callable[[Any, Caller], object], request: Any,
                      context: grpc.aio.ServicerContext) -> Any:
        return await self.admission.run(self.bus.handle, to_command(request, caller_of(context)))

    async def LogCall(self, request: pb.LogCallRequest, context: grpc.aio.ServicerContext) -> pb.LogCallResponse:
        call, created = await self._handle(mapping.log_call_command, request, context)
        return pb.LogCallResponse(call=mapping.call_to_pb(call), created=created)

    async def RegisterCase(self, request: pb.RegisterCaseRequest, context: grpc.aio.ServicerContext
                           ) -> pb.RegisterCaseResponse:
        command = mapping.register_case_command(request, caller_of(context))
        admitted = self.admission.run(self.bus.handle, command) if is_emergency(command) else self.batches.run(command)
        case, created = await admitted
        return pb.RegisterCaseResponse(case=self._case(case), created=created, call_id=case.call_id)

    async def GetCase(self, request: pb.GetCaseRequest, context: grpc.aio.ServicerContext) -> pb.GetCaseResponse:
        case = await self._handle(lambda r, caller: commands.GetCase(caller, r.case_id), request, context)
        return pb.GetCaseResponse(case=self._case(case))

    async def AddNeed(self, request: pb.AddNeedRequest, context: grpc.aio.ServicerContext) -> pb.AddNeedResponse:
        case, need_id, created = await self._handle(mapping.add_need_command, request, context)
        return pb.AddNeedResponse(case=self._case(case), need_id=need_id, created=created)

    async def UpdateRisk(self, request: pb.UpdateRiskRequest, context: grpc.aio.ServicerContext
                         ) -> pb.UpdateRiskResponse:
        case, created = await self._handle(mapping.update_risk_command, request, context)
        return pb.UpdateRiskResponse(case=self._case(case), created=created)

    async def GiveConsent(self, request: pb.GiveConsentRequest, context: grpc.aio.ServicerContext
                          ) -> pb.GiveConsentResponse:
        case, consent_id, created = await self._handle(mapping.give_consent_command, request, context)
        return pb.GiveConsentResponse(case=self._case(case), consent_id=consent_id, created=created)

    async def WithdrawConsent(self, request: pb.WithdrawConsentRequest, context: grpc.aio.ServicerContext
                              ) -> pb.WithdrawConsentResponse:
        case, consent_id, created = await self._handle(mapping.withdraw_consent_command, request, context)
        return pb.WithdrawConsentResponse(case=self._case(case), consent_id=consent_id, created=created)

    async def OverrideConsent(self, request: pb.OverrideConsentRequest, context: grpc.aio.ServicerContext
                              ) -> pb.OverrideConsentResponse:
        case, consent_id, created = await self._handle(mapping.override_consent_command, request, context)
        return pb.OverrideConsentResponse(case=self._case(case), consent_id=consent_id, created=created)

    async def CloseCase(self, request: pb.CloseCaseRequest, context: grpc.aio.ServicerContext
                        ) -> pb.CloseCaseResponse:
        case, created = await self._handle(mapping.close_case_command, request, context)
        return pb.CloseCaseResponse(case=self._case(case), created=created)

    async def EraseCase(self, request: pb.EraseCaseRequest, context: grpc.aio.ServicerContext
                        ) -> pb.EraseCaseResponse:
        case, created = await self._handle(mapping.erase_case_command, request, context)
        return pb.EraseCaseResponse(case=self._case(case), created=created)

    async def ImportHistory(self, request: pb.ImportHistoryRequest, context: grpc.aio.ServicerContext
                            ) -> pb.ImportHistoryResponse:
        result = await self._handle(mapping.import_history_command, request, context)
        return mapping.import_history_response(result)


class CaseWorkServicer(cw_grpc.CaseWorkServiceServicer):
    """Case work after intake: the same bus, the same caller, the same rules as IntakeService."""

    def __init__(self, bus: MessageBus, admission: Admission, clock: Clock = system_clock) -> None:
        self.bus = bus
        self.admission = admission
        self.clock = clock

    def _case(self, case: Any) -> pb.Case:
        return mapping.case_to_pb(case, self.clock())

    async def _handle(self, to_command: Callable[[Any, Caller], object], request: Any,
                      context: grpc.aio.ServicerContext) -> Any:
        return await self.admission.run(self.bus.handle, to_command(request, caller_of(context)))

    async def RecordAssessment(self, request: cw.RecordAssessmentRequest, context: grpc.aio.ServicerContext
                               ) -> cw.RecordAssessmentResponse:
        case, assessment_id, created = await self._handle(casework_mapping.record_assessment_command, request, context)
        return cw.RecordAssessmentResponse(case=self._case(case), assessment_id=assessment_id, created=created)

    async def RecordCasePlan(self, request: cw.RecordCasePlanRequest, context: grpc.aio.ServicerContext
                             ) -> cw.RecordCasePlanResponse:
        case, plan_id, created = await self._handle(casework_mapping.record_case_plan_command, request, context)
        return cw.RecordCasePlanResponse(case=self._case(case), plan_id=plan_id, created=created)

    async def AddFollowUp(self, request: cw.AddFollowUpRequest, context: grpc.aio.ServicerContext
                          ) -> cw.AddFollowUpResponse:
        case, follow_up_id, created = await self._handle(casework_mapping.add_follow_up_command, request, context)
        return cw.AddFollowUpResponse(case=self._case(case), follow_up_id=follow_up_id, created=created)

    async def ReviewCase(self, request: cw.ReviewCaseRequest, context: grpc.aio.ServicerContext
                         ) -> cw.ReviewCaseResponse:
        case, review_id, created = await self._handle(casework_mapping.review_case_command, request, context)
        return cw.ReviewCaseResponse(case=self._case(case), review_id=review_id, created=created)

    async def ReassignCase(self, request: cw.ReassignCaseRequest, context: grpc.aio.ServicerContext
                           ) -> cw.ReassignCaseResponse:
        case, created = await self._handle(casework_mapping.reassign_case_command, request, context)
        return cw.ReassignCaseResponse(case=self._case(case), created=created)

    async def CompleteStep(self, request: cw.CompleteStepRequest, context: grpc.aio.ServicerContext
                           ) -> cw.CompleteStepResponse:
        case, created = await self._handle(casework_mapping.complete_step_command, request, context)
        return cw.CompleteStepResponse(case=self._case(case), created=created)

    async def GetCaseFile(self, request: cw.GetCaseFileRequest, context: grpc.aio.ServicerContext
                          ) -> cw.GetCaseFileResponse:
        found = await self._handle(lambda r, caller: commands.GetCaseFile(caller, r.case_id), request, context)
        return casework_mapping.case_file_to_pb(found, self.clock())

    async def ListCases(self, request: cw.ListCasesRequest, context: grpc.aio.ServicerContext
                        ) -> cw.ListCasesResponse:
        summaries, token = await self._handle(casework_mapping.list_cases_command, request, context)
        now = self.clock()
        return cw.ListCasesResponse(cases=[casework_mapping.case_summary_to_pb(c, now) for c in summaries],
                                    next_page_token=token)


class CaseContactServicer(contact_grpc.CaseContactServiceServicer):
    def __init__(self, bus: MessageBus, admission: Admission) -> None:
        self.bus = bus
        self.admission = admission

    async def GetCaseContact(self, request: contact_pb.GetCaseContactRequest, context: grpc.aio.ServicerContext
                             ) -> contact_pb.GetCaseContactResponse:
        command = mapping.get_case_contact_command(request, caller_of(context))
        contact, categories = await self.admission.run(self.bus.handle, command)
        return mapping.contact_to_pb(contact, categories)

    async def SetSmsPreference(self, request: contact_pb.SetSmsPreferenceRequest, context: grpc.aio.ServicerContext
                               ) -> contact_pb.SetSmsPreferenceResponse:
        command = commands.SetSmsPreference(caller_of(context), request.sender_phone, request.stop)
        done = await self.admission.run(self.bus.handle, command)
        return contact_pb.SetSmsPreferenceResponse(changed_case_ids=done.changed, case_ids=done.case_ids)


def register(settings: Settings, engine: Engine, server: grpc.aio.Server, clock: Clock = system_clock
             ) -> Sequence[str]:
    vault = make_vault(settings)
    with engine.begin() as conn:  # notes converted by migration erasure_0006 are sealed before anything is served
        CaseRepository(conn, vault).seal_pending_notes()
    # SQLite has one writer: the handler threads take turns on a lock of the process rather than by retrying.
    sqlite = not is_postgres(engine)
    writing = threading.RLock() if sqlite else None  # re-entrant: a batch holds it around its units of work
    bus = bootstrap(settings, engine, vault=vault, clock=clock, writing=writing)
    refnet_geo.preload()  # no request pays for loading the map
    # Every handler's way to the database: an emergency goes first.
    slots = SQLITE_NORMAL_SLOTS if sqlite else NORMAL_SLOTS
    admission = Admission(slots=slots)
    batches = Batches(admission, engine, bus.handle, writing, lanes=slots)
    pb_grpc.add_IntakeServiceServicer_to_server(IntakeServicer(bus, admission, batches, clock), server)
    contact_grpc.add_CaseContactServiceServicer_to_server(CaseContactServicer(bus, admission), server)
    cw_grpc.add_CaseWorkServiceServicer_to_server(CaseWorkServicer(bus, admission, clock), server)
    return [pb.DESCRIPTOR.services_by_name["IntakeService"].full_name,
            cw.DESCRIPTOR.services_by_name["CaseWorkService"].full_name,
            contact_pb.DESCRIPTOR.services_by_name["CaseContactService"].full_name]


def main() -> None:
    settings = Settings()
    run_api(settings, MIGRATIONS, lambda engine, server: register(settings, engine, server))
