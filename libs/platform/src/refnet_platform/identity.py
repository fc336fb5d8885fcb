"""Who is calling: mutual TLS, one client certificate per agency, shelter, person or service.

The certificate's CN is the caller's id (e.g. "qn-police-baichay") and its OU the caller's role.
Plain-text ports exist only where a service is explicitly configured for local development; there
the caller is read from the `x-refnet-caller` metadata ("role/id") instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from refnet_platform.errors import PermissionDenied, Unauthenticated

PLAINTEXT_CALLER_HEADER = "x-refnet-caller"


class Role(StrEnum):
    OPERATOR = "operator"  # a hotline operator or case worker
    SUPERVISOR = "supervisor"  # may override, sees escalations
    AGENCY = "agency"  # a partner agency: police, health, legal aid, counsellors...
    SHELTER = "shelter"  # a shelter's own staff
    SERVICE = "service"  # another refnet service
    OPS = "ops"  # the operations team: flows and ids, never personal data


@dataclass(frozen=True)
class Caller:
    subject_id: str
    role: Role

    def require(self, *roles: Role) -> Caller:
        if self.role not in roles:
            raise PermissionDenied(f"this call is not open to the {self.role} role")
        return self


def server_credentials(cert_dir: Path) -> grpc.ServerCredentials:
    """Expects ca.pem, server.pem and server.key in cert_dir; every client must present a certificate."""
    return grpc.ssl_server_credentials(
        [((cert_dir / "server.key").read_bytes(), (cert_dir / "server.pem").read_bytes())],
        root_certificates=(cert_dir / "ca.pem").read_bytes(),
        require_client_auth=True,
    )


def channel_credentials(ca: Path, cert: Path, key: Path) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes(), private_key=key.read_bytes(),
                                        certificate_chain=cert.read_bytes())


def caller_of(context: grpc.aio.ServicerContext) -> Caller:
    auth = context.auth_context()
    pem = auth.get("x509_pem_cert")
    if pem:
        cert = x509.load_pem_x509_certificate(pem[0])
        return _caller(_attribute(cert, NameOID.COMMON_NAME), _attribute(cert, NameOID.ORGANIZATIONAL_UNIT_NAME))
    if auth.get("transport_security_type", [b""])[0] == b"ssl":
        raise Unauthenticated("a client certificate is required")
    # Plain text: only reachable when the server was explicitly configured for local development.
    header = dict(context.invocation_metadata() or ()).get(PLAINTEXT_CALLER_HEADER, "")
    role, _, subject = str(header).partition("/")
    return _caller(subject, role)


def plaintext_metadata(role: Role | str, subject_id: str) -> tuple[tuple[str, str]]:
    return ((PLAINTEXT_CALLER_HEADER, f"{role}/{subject_id}"),)


def _caller(subject_id: str, role: str) -> Caller:
    if not subject_id or role not in Role.__members__.values():
        raise Unauthenticated("the caller has no refnet identity")
    return Caller(subject_id, Role(role))


def _attribute(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else ""


class ServiceChannel:
    """A channel to another refnet service's api, opened on first use, as refnet service `caller`:
    mutual TLS, or plain text (the caller named in metadata) for local development only."""

    def __init__(self, address: str, credentials: grpc.ChannelCredentials | None, caller: str) -> None:
        self.address = address
        self.credentials = credentials
        self.metadata = None if credentials else plaintext_metadata(Role.SERVICE, caller)
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()

    def get(self) -> grpc.Channel:
        with self._lock:
            if self._channel is None:
                self._channel = (grpc.secure_channel(self.address, self.credentials) if self.credentials
                                 else grpc.insecure_channel(self.address))
            return self._channel

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None
