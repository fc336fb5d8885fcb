"""The gRPC apis, called as the signed-in person; and what a page shows when one refuses.

One grpc.aio channel per api (intake, referral, shelter, notifications), over mutual TLS with the web's
gateway certificate (OU=gateway: it grants no power of its own); every call carries the person's access
token (`authorization: Bearer ...`) and is theirs. Channels open on first use, inside the running loop.

    stub = apis.intake(token)                  # IntakeServiceStub whose calls carry the token
    reply = await stub.GetCase(request)        # unary: a deadline of WEB_API_TIMEOUT_S unless given
    async for event in apis.referral(token).WatchReferrals(request):   # streams: no deadline unless given
        ...
    reply = await apis.call(apis.intake(token).GetCase, request)       # the same, spelled out

A refusal is a grpc.aio.AioRpcError (grpc.RpcError); `problem_of(exc)` turns it into a `Problem` for pages.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from refnet.intake.v1 import casework_service_pb2_grpc, contact_service_pb2_grpc, intake_service_pb2_grpc
from refnet.notifications.v1 import notifications_service_pb2_grpc
from refnet.referral.v1 import referral_service_pb2_grpc
from refnet.shelter.v1 import shelter_service_pb2_grpc
from refnet_platform.caller import Role
from refnet_platform.identity import bearer, channel_credentials, plaintext_metadata
from web.config import APIS, Settings

GATEWAY_ID = "refnet-web"


class PersonStub:
    """A generated stub whose every call carries the person's token (and a deadline, for unary calls).
    Attribute access gives the stub's methods: `await PersonStub.GetCase(request)`."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...], timeout_s: float) -> None:
        self._stub = stub
        self._metadata = metadata
        self._timeout_s = timeout_s

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)
        unary = isinstance(method, grpc.aio.UnaryUnaryMultiCallable | grpc.aio.StreamUnaryMultiCallable)
        metadata, timeout_s = self._metadata, self._timeout_s

        def call(request: Any, **kwargs: Any) -> Any:
            kwargs["metadata"] = (*metadata, *tuple(kwargs.get("metadata") or ()))
            if unary:
                kwargs.setdefault("timeout", timeout_s)
            return method(request, **kwargs)

        return call


class Apis:
    def __init__(self, addresses: Mapping[str, str], credentials: grpc.ChannelCredentials | None,
                 timeout_s: float = 10.0) -> None:
        """`credentials` None: plain text, the gateway named in metadata (local development only)."""
        unknown = set(addresses) - set(APIS)
        if unknown:
            raise ValueError(f"unknown apis: {sorted(unknown)}")
        self.addresses = dict(addresses)
        self.credentials = credentials
        self.timeout_s = timeout_s
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the channels belong to

    @classmethod
    def from_settings(cls, settings: Settings) -> Apis:
        if settings.tls_ca and settings.tls_cert and settings.tls_key:
            credentials = channel_credentials(settings.tls_ca, settings.tls_cert, settings.tls_key)
        elif settings.allow_plaintext:
            credentials = None
        else:
            raise SystemExit("web: set WEB_TLS_CA, WEB_TLS_CERT and WEB_TLS_KEY (the web's gateway certificate, "
                             "mutual TLS to the apis), or WEB_ALLOW_PLAINTEXT=true for local development")
        return cls(settings.api_addresses(), credentials, settings.api_timeout_s)

    def channel(self, api: str) -> grpc.aio.Channel:
        loop = _running_loop()
        if loop is not self._loop:  # a channel belongs to its event loop: another loop (in-process tests) opens anew
            self._channels, self._loop = {}, loop
        if api not in self._channels:
            address = self.addresses[api]
            self._channels[api] = (grpc.aio.secure_channel(address, self.credentials) if self.credentials
                                   else grpc.aio.insecure_channel(address))
        return self._channels[api]

    def metadata(self, token: str) -> tuple[tuple[str, str], ...]:
        if not token:
            raise ValueError("no access token: the person must sign in again (see pages.common.session_expired)")
        extra = () if self.credentials else plaintext_metadata(Role.GATEWAY, GATEWAY_ID)
        return (*bearer(token), *extra)

    def stub(self, api: str, stub_class: type[Any], token: str) -> PersonStub:
        return PersonStub(stub_class(self.channel(api)), self.metadata(token), self.timeout_s)

    # Typed helpers, one per generated stub (refnet/*/v1/*_service.proto).

    def intake(self, token: str) -> PersonStub:
        """refnet.intake.v1.IntakeService: calls, cases, consent, contact reads."""
        return self.stub("intake", intake_service_pb2_grpc.IntakeServiceStub, token)

    def casework(self, token: str) -> PersonStub:
        """refnet.intake.v1.CaseWorkService: case work after intake, the case lists."""
        return self.stub("intake", casework_service_pb2_grpc.CaseWorkServiceStub, token)

    def case_contact(self, token: str) -> PersonStub:
        """refnet.intake.v1.CaseContactService."""
        return self.stub("intake", contact_service_pb2_grpc.CaseContactServiceStub, token)

    def referral(self, token: str) -> PersonStub:
        """refnet.referral.v1.ReferralService: the referral lifecycle (partner portal, operator's case page)."""
        return self.stub("referral", referral_service_pb2_grpc.ReferralServiceStub, token)

    def escalation(self, token: str) -> PersonStub:
        """refnet.referral.v1.EscalationService: supervisors' escalation queue, AssignProvider."""
        return self.stub("referral", referral_service_pb2_grpc.EscalationServiceStub, token)

    def directory(self, token: str) -> PersonStub:
        """refnet.referral.v1.DirectoryService: providers, RankProviders (the preview)."""
        return self.stub("referral", referral_service_pb2_grpc.DirectoryServiceStub, token)

    def shelter(self, token: str) -> PersonStub:
        """refnet.shelter.v1.ShelterService: beds, holds, arrivals."""
        return self.stub("shelter", shelter_service_pb2_grpc.ShelterServiceStub, token)

    def notifications(self, token: str) -> PersonStub:
        """refnet.notifications.v1.NotificationsService: the in-app feed, delivery status."""
        return self.stub("notifications", notifications_service_pb2_grpc.NotificationsServiceStub, token)

    async def call(self, method: Any, request: Any, timeout_s: float | None = None) -> Any:
        """Awaits one unary call of a PersonStub (`apis.call(apis.intake(token).GetCase, request)`)."""
        return await (method(request) if timeout_s is None else method(request, timeout=timeout_s))

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close(grace=1.0)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass(frozen=True)
class Problem:
    """What a page shows when an api refused: next to `field` (the form field's name, when the api named
    one), in both languages; `status` the page's HTTP status; `sign_in_again` when the person's session
    ended at the provider; `retry` when trying again may work (connection lost)."""

    field: str | None
    message_vi: str
    message_en: str
    status: int
    sign_in_again: bool = False
    retry: bool = False

    def message(self, lang: str) -> str:
        return self.message_en if lang == "en" else self.message_vi


FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\]]*$")


def problem_of(exc: grpc.RpcError) -> Problem:
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else "") or ""
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        name, sep, text = details.partition(":")
        if sep and FIELD.match(name.strip()):
            field = name.strip()
            return Problem(field, f"Thông tin chưa đúng: {field} ({text.strip()})", details, 400)
        return Problem(None, f"Thông tin chưa đúng ({details})", details or "Invalid input", 400)
    if code is grpc.StatusCode.NOT_FOUND:
        return Problem(None, "Không tìm thấy.", "Not found.", 404)
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return Problem(None, "Bạn không có quyền làm việc này.", f"You are not allowed to do this ({details})."
                       if details else "You are not allowed to do this.", 403)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return Problem(None, "Mất kết nối, xin thử lại.", "Connection lost, try again.", 503, retry=True)
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return Problem(None, "Phiên đăng nhập đã hết hạn: xin đăng nhập lại.",
                       "Your session has ended: sign in again.", 401, sign_in_again=True)
    if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.ABORTED):
        return Problem(None, f"Không thể làm việc này lúc này ({details}).",
                       f"This cannot be done now: {details}" if details else "This cannot be done now.", 409)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return Problem(None, "Hệ thống đang bận, xin thử lại sau giây lát.", "Busy just now: try again in a moment.",
                       429, retry=True)
    return Problem(None, "Có lỗi xảy ra, xin thử lại.", "Something went wrong: try again.", 500, retry=True)
