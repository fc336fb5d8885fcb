"""How a caller is established: machines by mutual TLS, people by their identity provider's token.

A machine's client certificate carries exactly one CN (its id) and one OU (its role, one of
`MACHINE_ROLES`) and the clientAuth key usage. A person signs in to the identity provider (OIDC);
a front door (OU=gateway: the web app, the CLI) forwards the person's access token as
`authorization: Bearer <jwt>` and the call is the person's, never the front door's own. Every api
verifies the token itself: signature against the issuer's JWKS (cached, refetched for a new key id),
issuer, audience, expiry with a small clock skew. The caller is resolved before any handler runs.
A token already verified is remembered (by its hash) until it expires, so a person's every call does not
verify the same signature again.

Plain-text ports exist only where a service is explicitly configured for local development; there
the machine is named by the `x-refnet-caller` metadata ("role/id") instead of a certificate.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import grpc
import jwt
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from refnet_platform.caller import ALL_PROVINCES, MACHINE_ROLES, PERSON_ROLES, Caller, Role, machine
from refnet_platform.errors import Unauthenticated

PLAINTEXT_CALLER_HEADER = "x-refnet-caller"
AUTHORIZATION_HEADER = "authorization"
# Token claims refnet reads (the realm's protocol mappers put them there): the person's province
# codes ("*" for all), the agency (provider id) or shelter they work for; the role is a realm role.
PROVINCES_CLAIM, AGENCY_CLAIM, SHELTER_CLAIM = "provinces", "agency_id", "shelter_id"

current_caller: ContextVar[Caller | None] = ContextVar("current_caller", default=None)


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str = "refnet-api"
    jwks_url: str | None = None
    leeway_s: float = 30.0


# How long the issuer's keys are cached, and so at most how long a verified token is remembered: a key the
# issuer withdraws stops being trusted as soon as it would without the memory of tokens.
JWKS_LIFESPAN_S = 300.0
VERIFIED_TOKENS_MAX = 4096


class TokenVerifier:
    """Verifies a person's access token and reads who they are and their remit from its claims."""

    ALGORITHMS = ("RS256", "ES256", "PS256")

    def __init__(self, config: OidcConfig, remembered_max: int = VERIFIED_TOKENS_MAX) -> None:
        self.config = config
        jwks_url = config.jwks_url or f"{config.issuer.rstrip('/')}/protocol/openid-connect/certs"
        # Keys are cached; a token signed with a key id not in the cache refetches the set (rotation).
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=JWKS_LIFESPAN_S, timeout=5)
        # sha256(token) -> (the caller, trusted until: exp + leeway, or the key set's lifespan if sooner).
        # Only accepted tokens are remembered; a refusal is decided anew each time, exactly as before.
        self._verified: dict[bytes, tuple[Caller, float]] = {}
        self._remembered_max = remembered_max
        self._lock = threading.Lock()

    def remembered(self, token: str) -> Caller | None:
        """The caller of a token verified before and still trusted; None if it must be verified (`person`)."""
        return self._remembered(_digest(token))

    def _remembered(self, digest: bytes) -> Caller | None:
        with self._lock:
            remembered = self._verified.pop(digest, None)
            if remembered is not None and time.time() < remembered[1]:
                self._verified[digest] = remembered
                return remembered[0]
        return None

    def person(self, token: str) -> Caller:
        digest = _digest(token)
        remembered = self._remembered(digest)
        if remembered is not None:
            return remembered
        now = time.time()
        caller, claims = self._verify(token)  # a remembered token past its time is refused here, as before
        # PyJWT refuses once exp <= now - leeway: the same bound, checked at every use of the memory.
        until = min(float(claims["exp"]) + self.config.leeway_s, now + JWKS_LIFESPAN_S)
        with self._lock:
            if len(self._verified) >= self._remembered_max:
                self._make_room(now)
            self._verified[digest] = (caller, until)
        return caller

    def _make_room(self, now: float) -> None:
        """The expired entries go, then the oldest down to three quarters (dicts keep insertion order)."""
        for digest in [d for d, (_, until) in self._verified.items() if until <= now]:
            del self._verified[digest]
        while len(self._verified) > self._remembered_max * 3 // 4:
            del self._verified[next(iter(self._verified))]

    def _verify(self, token: str) -> tuple[Caller, Mapping[str, Any]]:
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=list(self.ALGORITHMS), audience=self.config.audience,
                                issuer=self.config.issuer, leeway=self.config.leeway_s,
                                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the access token has expired: sign in again") from None
        except jwt.PyJWKClientConnectionError:
            raise Unauthenticated("the identity provider's keys cannot be fetched just now: try again") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the access token is not valid: {exc}") from None
        return person_from_claims(claims), claims


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def person_from_claims(claims: Mapping[str, Any]) -> Caller:
    roles = {str(r) for r in claims.get("realm_access", {}).get("roles", [])} & set(PERSON_ROLES)
    if len(roles) != 1:
        raise Unauthenticated("the access token must carry exactly one refnet role")
    role = Role(roles.pop())
    subject = str(claims.get("preferred_username") or claims["sub"])
    provinces = frozenset(_strings(claims.get(PROVINCES_CLAIM)))
    organisation = ""
    if role is Role.AGENCY:
        organisation = _one(claims, AGENCY_CLAIM)
    elif role is Role.SHELTER:
        organisation = _one(claims, SHELTER_CLAIM)
    elif not provinces:
        raise Unauthenticated(f"the access token names no province for the {role} role")
    return Caller(subject, role, organisation_id=organisation, provinces=provinces, person=True)


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [str(v).strip() for v in values if str(v).strip()]


def _one(claims: Mapping[str, Any], name: str) -> str:
    values = _strings(claims.get(name))
    if len(values) != 1:
        raise Unauthenticated(f"the access token must carry exactly one {name}")
    return values[0]


class Authenticator:
    """Resolves each call's caller from its transport identity and, for a front door, the person's
    token. Without an identity provider configured, people cannot sign in and only machines call."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self.verifier = verifier

    def caller(self, auth: Mapping[str, Sequence[bytes]], metadata: Mapping[str, str]) -> Caller:
        caller = self._caller(auth, metadata, verify=True)
        assert caller is not None
        return caller

    def known_caller(self, auth: Mapping[str, Sequence[bytes]], metadata: Mapping[str, str]) -> Caller | None:
        """The caller if that needs no token verified now (a machine, or a person's token remembered): cheap
        enough for the event loop. None: call `caller`, which may fetch the issuer's keys (off the loop)."""
        return self._caller(auth, metadata, verify=False)

    def _caller(self, auth: Mapping[str, Sequence[bytes]], metadata: Mapping[str, str], verify: bool
                ) -> Caller | None:
        machine_caller = _machine(auth, metadata)
        header = metadata.get(AUTHORIZATION_HEADER, "")
        if not header:
            if machine_caller.role is Role.GATEWAY:
                raise Unauthenticated("a front door acts only as a signed-in person: send the person's access token")
            return machine_caller
        if machine_caller.role is not Role.GATEWAY:
            raise Unauthenticated(f"only a front door forwards a person's token, not the {machine_caller.role} role")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("authorization: expected 'Bearer <access token>'")
        if self.verifier is None:
            raise Unauthenticated("this api has no identity provider configured: people cannot sign in")
        return self.verifier.person(token.strip()) if verify else self.verifier.remembered(token.strip())


def _machine(auth: Mapping[str, Sequence[bytes]], metadata: Mapping[str, str]) -> Caller:
    pem = auth.get("x509_pem_cert")
    if pem:
        return _machine_from_pem(pem[0])
    if auth.get("transport_security_type", [b""])[0] == b"ssl":
        raise Unauthenticated("a client certificate is required")
    # Plain text: only reachable when the server was explicitly configured for local development.
    role, _, subject = metadata.get(PLAINTEXT_CALLER_HEADER, "").partition("/")
    return _machine_caller(subject, role)


@lru_cache(maxsize=1024)
def _machine_from_pem(pem: bytes) -> Caller:
    # A client sends the same certificate on every call: parse and check it once (a refusal is not cached).
    return machine_from_certificate(x509.load_pem_x509_certificate(pem))


def machine_from_certificate(cert: x509.Certificate) -> Caller:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise Unauthenticated("the client certificate lacks the clientAuth key usage")
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(common_names) != 1 or len(units) != 1:
        raise Unauthenticated("the client certificate must carry exactly one CN and one OU")
    return _machine_caller(str(common_names[0].value), str(units[0].value))


def _machine_caller(subject_id: str, role: str) -> Caller:
    if not subject_id or role not in Role.__members__.values():
        raise Unauthenticated("the caller has no refnet identity")
    if Role(role) not in MACHINE_ROLES:
        raise Unauthenticated(f"the {role} role is a person's: sign in through the identity provider")
    return machine(subject_id, Role(role))


def caller_of(context: grpc.aio.ServicerContext) -> Caller:
    """The caller the server resolved for this call (before any handler ran)."""
    caller = current_caller.get()
    if caller is None:
        raise Unauthenticated("the caller has no refnet identity")
    return caller


def server_credentials(cert_dir: Path) -> grpc.ServerCredentials:
    """Expects ca.pem, server.pem and server.key in cert_dir (never the CA's key); every client must
    present a certificate signed by that CA."""
    return grpc.ssl_server_credentials(
        [((cert_dir / "server.key").read_bytes(), (cert_dir / "server.pem").read_bytes())],
        root_certificates=(cert_dir / "ca.pem").read_bytes(),
        require_client_auth=True,
    )


def channel_credentials(ca: Path, cert: Path, key: Path) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=ca.read_bytes(), private_key=key.read_bytes(),
                                        certificate_chain=cert.read_bytes())


def plaintext_metadata(role: Role | str, subject_id: str) -> tuple[tuple[str, str]]:
    return ((PLAINTEXT_CALLER_HEADER, f"{role}/{subject_id}"),)


def bearer(token: str) -> tuple[tuple[str, str]]:
    """Call metadata a front door sends to act as the signed-in person."""
    return ((AUTHORIZATION_HEADER, f"Bearer {token}"),)


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


__all__ = ["ALL_PROVINCES", "Authenticator", "Caller", "OidcConfig", "Role", "TokenVerifier", "bearer",
           "caller_of", "channel_credentials", "current_caller", "machine", "server_credentials"]
