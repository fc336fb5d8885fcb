"""Intake's internal contact API, called as refnet service "referral" over mutual TLS."""

from __future__ import annotations

from pathlib import Path

import grpc

from referral.adapters import proto_mapping
from referral.domain.model import SurvivorContact
from refnet.intake.v1 import contact_service_pb2_grpc as contact_grpc
from refnet_platform.errors import DomainError, FailedPrecondition, NotFound, PermissionDenied, Unavailable
from refnet_platform.identity import ServiceChannel, channel_credentials
from refnet_platform.vocabulary import ServiceType

CALL_TIMEOUT_S = 5


class IntakeContacts:
    """Reads one survivor's contact details for a referral the recipient accepted (referral vouches for
    that); intake checks the consent for the service and the recipient's sector, returns only what it
    covers and audits the read."""

    def __init__(self, address: str, credentials: grpc.ChannelCredentials | None) -> None:
        self.intake = ServiceChannel(address, credentials, "referral")

    @classmethod
    def from_files(cls, address: str, ca: Path, cert: Path, key: Path) -> IntakeContacts:
        return cls(address, channel_credentials(ca, cert, key))

    def read(self, *, case_id: str, referral_id: str, recipient_id: str, recipient_sector: str,
             service_type: ServiceType, purpose: str) -> SurvivorContact:
        request = proto_mapping.contact_request(case_id, referral_id, recipient_id, recipient_sector, service_type,
                                                purpose)
        try:
            stub = contact_grpc.CaseContactServiceStub(self.intake.get())
            reply = stub.GetCaseContact(request, timeout=CALL_TIMEOUT_S, metadata=self.intake.metadata)
        except grpc.RpcError as exc:
            raise _refusal(exc.code(), exc.details()) from None
        return proto_mapping.contact_from_pb(reply)


def _refusal(code: grpc.StatusCode, details: str) -> DomainError:
    """Intake's refusal, passed on: its messages are written for the caller and name no personal data."""
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound("the survivor's contact details are not available")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(f"intake refused: {details}")
    if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT):
        return FailedPrecondition(f"intake refused: {details}")
    return Unavailable("intake's contact service is unavailable; try again shortly")


class NoContacts:
    """Where no intake client is configured: every read is refused with a clear reason."""

    def read(self, *, case_id: str, referral_id: str, recipient_id: str, recipient_sector: str,
             service_type: ServiceType, purpose: str) -> SurvivorContact:
        raise FailedPrecondition("contact details are unavailable: REFERRAL_INTAKE_CLIENT_CERT/KEY are not set")
