"""Intake's internal contact API (CaseContactService), called as refnet service "notifications" over mutual
TLS, just before a survivor's notice is sent. What it returns is used for that one send and never stored."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from notifications.adapters import proto_mapping
from notifications.domain.notices import ContactRefused, ContactUnavailable, SurvivorContact
from refnet.intake.v1 import contact_service_pb2_grpc as contact_grpc
from refnet_platform.identity import Role, channel_credentials, plaintext_metadata
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
        self.address = address
        self.credentials = credentials
        # Plain text is for local development only; there the caller is named in metadata.
        self.metadata = None if credentials else plaintext_metadata(Role.SERVICE, "notifications")
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_files(cls, address: str, ca: Path, cert: Path, key: Path) -> IntakeContacts:
        return cls(address, channel_credentials(ca, cert, key))

    def _stub(self) -> contact_grpc.CaseContactServiceStub:
        with self._lock:
            if self._channel is None:
                self._channel = (grpc.secure_channel(self.address, self.credentials) if self.credentials
                                 else grpc.insecure_channel(self.address))
            return contact_grpc.CaseContactServiceStub(self._channel)

    def read(self, case_id: str, referral_id: str, service_type: ServiceType | None, sector: str) -> SurvivorContact:
        request = proto_mapping.contact_request(case_id, referral_id, service_type, sector)
        try:
            reply = self._stub().GetCaseContact(request, timeout=CALL_TIMEOUT_S, metadata=self.metadata)
        except grpc.RpcError as exc:
            code = exc.code()  # type: ignore[attr-defined]
            if code in REFUSALS:
                raise ContactRefused(REFUSALS[code]) from None
            raise ContactUnavailable(f"intake {code.name.lower()}") from None
        return proto_mapping.contact_from_pb(reply)

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None
