"""People's tokens from the real identity provider, over a real mutual-TLS socket, through the
interceptors every refnet api runs: the person's remit reaches the handler; an expired, foreign,
forged or misplaced token is refused with UNAUTHENTICATED before any handler runs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from refnet_dev.certs import DevPki
from refnet_dev.keycloak import SHORT_LIVED_CLIENT, Keycloak
from refnet_platform.caller import Caller
from refnet_platform.grpc_server import DomainErrorInterceptor
from refnet_platform.identity import (
    Authenticator,
    OidcConfig,
    TokenVerifier,
    bearer,
    caller_of,
    channel_credentials,
    server_credentials,
)

pytestmark = pytest.mark.integration
METHOD = "/refnet.test.v1.Echo/WhoAmI"


@asynccontextmanager
async def echo_server(pki: DevPki, keycloak: Keycloak, leeway_s: float = 0
                      ) -> AsyncIterator[tuple[int, list[Caller]]]:
    """A server answering METHOD with the caller it resolved; `seen` lists every call a handler ran for."""
    seen: list[Caller] = []

    async def who_am_i(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        caller = caller_of(context)
        seen.append(caller)
        return f"{caller.role}:{caller.subject_id}:{','.join(sorted(caller.provinces))}".encode()

    handler = grpc.method_handlers_generic_handler("refnet.test.v1.Echo", {
        "WhoAmI": grpc.unary_unary_rpc_method_handler(who_am_i)})
    verifier = TokenVerifier(OidcConfig(keycloak.issuer, leeway_s=leeway_s))
    server = grpc.aio.server(interceptors=[DomainErrorInterceptor(Authenticator(verifier))])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(pki.server_dir))
    await server.start()
    try:
        yield port, seen
    finally:
        await server.stop(None)


async def call(pki: DevPki, port: int, role: str, subject: str, metadata: tuple[tuple[str, str], ...] = ()
               ) -> str:
    cert, key = pki.client(subject, role)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", channel_credentials(pki.ca, cert, key)) as channel:
        reply = await channel.unary_unary(METHOD)(b"", metadata=metadata, timeout=10)
        return bytes(reply).decode()


async def refused(pki: DevPki, port: int, role: str, subject: str,
                  metadata: tuple[tuple[str, str], ...] = ()) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call(pki, port, role, subject, metadata)
    return error.value


async def test_a_front_door_calls_as_the_person_and_bad_tokens_never_reach_a_handler(
        keycloak: Keycloak, tmp_path: Path) -> None:
    pki = DevPki(tmp_path / "certs").ensure()
    async with echo_server(pki, keycloak) as (port, seen):
        assert await call(pki, port, "gateway", "refnet-web", bearer(keycloak.token("qn-operator"))) \
            == "operator:qn-operator:22"
        assert await call(pki, port, "gateway", "refnet-web", bearer(keycloak.token("national-111-operator"))) \
            == "operator:national-111-operator:*"
        assert await call(pki, port, "agency", "qn-police-baichay") == "agency:qn-police-baichay:"
        handled = len(seen)

        # Expired: a token of the short-lived client, once it has lapsed (no clock skew allowed here).
        short = keycloak.token("qn-operator", client_id=SHORT_LIVED_CLIENT)
        expires = jwt.decode(short, options={"verify_signature": False})["exp"]
        time.sleep(max(0.0, expires - time.time()) + 1.5)
        forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        real = jwt.decode(keycloak.token("qn-operator"), options={"verify_signature": False})
        kid = jwt.get_unverified_header(keycloak.token("qn-operator"))["kid"]
        foreign = jwt.encode({**real, "iss": "http://127.0.0.1:1/realms/refnet"}, forger, "RS256", {"kid": kid})
        forged = jwt.encode({**real, "provinces": ["*"]}, forger, "RS256", {"kid": kid})
        cases = {
            "expired token": ("gateway", "refnet-web", bearer(short), "expired"),
            "foreign issuer": ("gateway", "refnet-web", bearer(foreign), "not valid"),
            "forged signature": ("gateway", "refnet-web", bearer(forged), "not valid"),
            "front door without a token": ("gateway", "refnet-web", (), "signed-in person"),
            "a machine forwarding a token": ("agency", "qn-police-baichay", bearer(keycloak.token("qn-operator")),
                                             "only a front door"),
            "a person's role on a certificate": ("operator", "qn-operator", (), "identity provider"),
        }
        for name, (role, subject, metadata, why) in cases.items():
            error = await refused(pki, port, role, subject, metadata)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, name
            assert why in (error.details() or ""), (name, error.details())
        assert len(seen) == handled, "a refused call reached the handler"
