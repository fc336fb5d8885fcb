"""The owners of who a phone number is, asked by the SMS door as refnet service "notifications" over mutual TLS:
shelter (its staff phones: ShelterService.ReportBySms), referral (providers' duty phones) and intake (the numbers
survivors gave). Each answers NOT_FOUND for a number it does not know; that is "not mine", never an error.
The number goes only into these calls: never into a log line or an exception's text."""

from __future__ import annotations

from typing import Any

import grpc

from notifications.domain.inbound_sms import Keyword, Parsed
from notifications.service_layer.inbound import OwnerUnavailable, ProviderAnswer, ShelterAnswer, SurvivorAnswer
from refnet.common.v1 import types_pb2
from refnet.intake.v1 import contact_service_pb2 as contact_pb
from refnet.intake.v1 import contact_service_pb2_grpc as contact_grpc
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet.shelter.v1 import shelter_service_pb2 as shelter_pb
from refnet.shelter.v1 import shelter_service_pb2_grpc as shelter_grpc
from refnet_platform.identity import ServiceChannel
from refnet_platform.vocabulary import TargetGroup, from_pb, to_pb

CALL_TIMEOUT_S = 5


def _prefix_code(name: str, prefix: str) -> str:
    return name.removeprefix(prefix).lower()


class GrpcSmsOwners:
    def __init__(self, shelter: ServiceChannel | None, referral: ServiceChannel | None = None,
                 intake: ServiceChannel | None = None) -> None:
        self.shelter = shelter
        self.referral = referral
        self.intake = intake

    def shelter_report(self, sender: str, parsed: Parsed | None) -> ShelterAnswer | None:
        if self.shelter is None:
            return None
        request = shelter_pb.ReportBySmsRequest(sender_phone=sender)
        if parsed is not None and parsed.keyword is Keyword.BEDS:
            request.free_beds.extend(shelter_pb.SmsPoolCount(target_group=to_pb(g, types_pb2.TargetGroup), free=n)
                                     for g, n in parsed.pools)
        elif parsed is not None and parsed.keyword is Keyword.ARRIVED:
            request.arrived_reference = parsed.reference
        elif parsed is not None and parsed.keyword is Keyword.LEFT:
            request.left_reference = parsed.reference
        reply = _call(self.shelter, lambda ch: shelter_grpc.ShelterServiceStub(ch).ReportBySms, request)
        if reply is None:
            return None
        free: list[tuple[TargetGroup, int]] = []
        for pool in reply.pools:
            group = from_pb(TargetGroup, types_pb2.TargetGroup, pool.target_group)
            if group is not None:
                free.append((group, pool.reported_free))
        problem = ("" if reply.problem == 0 else
                   _prefix_code(shelter_pb.SmsReportProblem.Name(reply.problem), "SMS_REPORT_PROBLEM_"))
        return ShelterAnswer(reply.language, free, problem)

    def provider_answer(self, sender: str, message_id: str, parsed: Parsed | None) -> ProviderAnswer | None:
        if self.referral is None:
            return None
        request = referral_pb.AnswerBySmsRequest(sender_phone=sender, client_request_id=message_id)
        if parsed is not None and parsed.keyword in (Keyword.ACCEPT, Keyword.DECLINE):
            request.reference = parsed.reference
            request.accept = parsed.keyword is Keyword.ACCEPT
            request.reason = to_pb(parsed.reason, referral_pb.DeclineReason)
        reply = _call(self.referral, lambda ch: referral_grpc.ReferralServiceStub(ch).AnswerBySms, request)
        if reply is None:
            return None
        problem = ("" if reply.problem == 0 else
                   _prefix_code(referral_pb.SmsAnswerProblem.Name(reply.problem), "SMS_ANSWER_PROBLEM_"))
        return ProviderAnswer(reply.language, problem)

    def survivor_preference(self, sender: str, stop: bool) -> SurvivorAnswer | None:
        if self.intake is None:
            return None
        request = contact_pb.SetSmsPreferenceRequest(sender_phone=sender, stop=stop)
        reply = _call(self.intake, lambda ch: contact_grpc.CaseContactServiceStub(ch).SetSmsPreference, request)
        if reply is None:
            return None
        return SurvivorAnswer(changed=bool(reply.changed_case_ids), case_ids=list(reply.case_ids))

    def close(self) -> None:
        for channel in (self.shelter, self.referral, self.intake):
            if channel is not None:
                channel.close()


def _call(channel: ServiceChannel, method: Any, request: Any) -> Any:
    """The owner's answer; None when the number is not on its record; OwnerUnavailable when it did not answer."""
    try:
        return method(channel.get())(request, timeout=CALL_TIMEOUT_S, metadata=channel.metadata)
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
        if code == grpc.StatusCode.NOT_FOUND:
            return None
        raise OwnerUnavailable(code.name.lower()) from None
