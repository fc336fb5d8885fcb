"""Intake's internal contact API (CaseContactService), called as refnet service "notifications" over mutual
TLS, just before a survivor's notice is sent. What it returns is used for that one send and never stored."""

from __future__ import annotations

from pathlib import Path

import grpc

from notifications.adapters import proto_mapping
from notifications.domain.notices import ContactRefused, ContactUnavailable, SurvivorContact
from refnet.intake.v1 import contact_service_pb2_grpc as contact_grpc
from refnet_platform.identity import ServiceChannel, channel_credentials
from refnet_platform.vocabulary import ServiceType

CALL_TIMEOUT_S = 5
# Intake's refusals that will not change by asking again: the notice is withheld.
REFUSALS = {
    grpc.StatusCode.NOT_FOUND: "case_not_found",
    grpc.StatusCode.PERMISSION_DENIED: "consent_does_not_cover",
    grpc.StatusCode.FAILED_PRECONDITION: "consent_withdrawn_or_case_closed",
    grpc.StatusCode.INVALID_ARGUMENT: "refused_by_intake",
}


class IntakeContacts:
    def __init__(self, address: str, credentials: grpc.ChannelCredentials | None) -> None:
        self.intake = ServiceChannel(address, credentials, "notifications")

    @classmethod
    def from_files(cls, address: str, ca: Path, cert: Path, key: Path) -> IntakeContacts:
        return cls(address, channel_credentials(ca, cert, key))

    def read(self, case_id: str, referral_id: str, service_type: ServiceType | None, sector: str) -> SurvivorContact:
        request = proto_mapping.contact_request(case_id, referral_id, service_type, sector)
        try:
            stub = contact_grpc.CaseContactServiceStub(self.intake.get())
            reply = stub.GetCaseContact(request, timeout=CALL_TIMEOUT_S, metadata=self.intake.metadata)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code in REFUSALS:
                raise ContactRefused(REFUSALS[code]) from None
            raise ContactUnavailable(f"intake {code.name.lower()}") from None
        return proto_mapping.contact_from_pb(reply)

    def close(self) -> None:
        self.intake.close()
