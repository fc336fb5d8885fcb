"""Channel adapters behind one interface: ``await adapter.send(message) -> DeliveryResult``.

Every adapter tells a transient failure (try again later) from a permanent one (dead-letter), and
none of them logs or echoes a message body or address: failure details are codes only.

- EmailChannel (adapters.smtp): real SMTP (stdlib smtplib, run in a thread), over a small pool of kept-open
  connections so concurrent sends neither share one nor pay a connection (and TLS handshake) each.
  4xx SMTP replies and network errors are transient, 5xx replies permanent.
- SmsGatewayChannel: an HTTP SMS gateway (POST JSON, bearer API key, Idempotency-Key = notice id).
  5xx, 408/425/429 and timeouts are transient; other 4xx and redirects permanent.
- WebhookChannel: signed webhooks to partner systems, HMAC-SHA256 over "<timestamp>.<body>" in
  X-Refnet-Signature, the timestamp in X-Refnet-Timestamp; ``verify_webhook`` is the receiving side
  (stale timestamps and replays rejected).

Survivor messages go only by SMS or e-mail, from a neutral sender, with no refnet-branded headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from notifications.domain.messages import Channel
from notifications.domain.rendering import OutboundMessage
from notifications.domain.retry import DeliveryResult

SIGNATURE_HEADER = "X-Refnet-Signature"
TIMESTAMP_HEADER = "X-Refnet-Timestamp"
NOTICE_HEADER = "X-Refnet-Notice-Id"
SIGNATURE_VERSION = "v1"
MAX_RESPONSE_BYTES = 64 * 1024


class ChannelAdapter(Protocol):
    @property
    def channel(self) -> Channel: ...

    async def send(self, message: OutboundMessage) -> DeliveryResult: ...


def misrouted(message: OutboundMessage, channel: Channel) -> DeliveryResult | None:
    if message.channel is not channel:
        return DeliveryResult.permanent(f"{message.channel} message given to the {channel} channel")
    if message.for_survivor and channel not in (Channel.SMS, Channel.EMAIL):
        return DeliveryResult.permanent("survivor messages go only by sms or email")
    if not message.address:
        return DeliveryResult.permanent("no address")
    return None


# --- HTTP (SMS gateway and webhooks) -------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is answered as the 3xx it is, never followed


@dataclass(frozen=True)
class _HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class _HttpUnreachable(Exception):
    pass


def _post(url: str, body: bytes, headers: Mapping[str, str], timeout: float, trust_env: bool) -> _HttpReply:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if not trust_env:
        handlers.append(urllib.request.ProxyHandler({}))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with opener.open(request, timeout=timeout) as response:
            payload = response.read(MAX_RESPONSE_BYTES)
            return _HttpReply(response.status, dict(response.headers.items()), payload)
    except urllib.error.HTTPError as exc:
        with exc:
            payload = exc.read(MAX_RESPONSE_BYTES) if exc.fp is not None else b""
            return _HttpReply(exc.code, dict(exc.headers.items()) if exc.headers else {}, payload)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _HttpUnreachable(type(reason).__name__) from exc


def _valid_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _http_result(reply: _HttpReply, success: Callable[[_HttpReply], DeliveryResult]) -> DeliveryResult:
    status = reply.status
    if 200 <= status < 300:
        return success(reply)
    detail = f"http {status}"
    if status in (408, 425, 429) or 500 <= status < 600:
        return DeliveryResult.transient(detail, retry_after=_retry_after(reply.headers))
    return DeliveryResult.permanent(detail)


async def _post_classified(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    trust_env: bool,
    success: Callable[[_HttpReply], DeliveryResult],
) -> DeliveryResult:
    if not _valid_http_url(url):
        return DeliveryResult.permanent("not an http(s) url")
    try:
        reply = await asyncio.to_thread(_post, url, body, headers, timeout, trust_env)
    except _HttpUnreachable as exc:
        return DeliveryResult.transient(f"http unreachable: {exc}")
    return _http_result(reply, success)


# --- SMS gateway ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsGatewayConfig:
    base_url: str
    api_key: str
    path: str = "/v1/messages"
    timeout: float = 10.0
    sender_id: str = ""  # shown to staff recipients; never used for survivors
    survivor_sender_id: str = ""  # must be neutral; empty: the gateway's default number
    trust_env: bool = True  # honour HTTP(S)_PROXY / NO_PROXY from the environment


class SmsGatewayChannel:
    """POST {base_url}{path} with JSON {"to", "text", "reference"[, "from"]}; a 2xx answer means the
    gateway took it (its "id", if any, becomes provider_ref)."""

    def __init__(self, config: SmsGatewayConfig) -> None:
        self.config = config

    @property
    def channel(self) -> Channel:
        return Channel.SMS

    def request(self, message: OutboundMessage) -> tuple[str, bytes, dict[str, str]]:
        return self.text_request(message.address, message.body, message.notice_id, message.for_survivor)

    def text_request(self, to: str, text: str, reference: str, for_survivor: bool) -> tuple[str, bytes, dict[str, str]]:
        cfg = self.config
        payload = {"to": to, "text": text, "reference": reference}
        sender = cfg.survivor_sender_id if for_survivor else cfg.sender_id
        if sender:
            payload["from"] = sender
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "Authorization": f"Bearer {cfg.api_key}",
            "Idempotency-Key": reference,
        }
        return cfg.base_url.rstrip("/") + "/" + cfg.path.lstrip("/"), body, headers

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        problem = misrouted(message, Channel.SMS)
        if problem:
            return problem
        return await self.send_text(message.address, message.body, message.notice_id, message.for_survivor)

    async def send_text(self, to: str, text: str, reference: str, for_survivor: bool) -> DeliveryResult:
        """One SMS outside the notices (the SMS door's replies), by the same gateway, sender ids and
        Idempotency-Key (reference) as every notice."""
        if not to:
            return DeliveryResult.permanent("no address")
        url, body, headers = self.text_request(to, text, reference, for_survivor)
        return await _post_classified(
            url, body, headers, self.config.timeout, self.config.trust_env, _sms_accepted
        )


def _sms_accepted(reply: _HttpReply) -> DeliveryResult:
    ref = ""
    try:
        data = json.loads(reply.body or b"{}")
        if isinstance(data, dict):
            ref = str(data.get("id") or data.get("message_id") or "")[:128]
    except ValueError:
        pass
    return DeliveryResult.sent(provider_ref=ref, detail=f"http {reply.status}")


# --- signed webhooks -----------------------------------------------------------------------------


def _as_secrets(secret: bytes | Sequence[bytes]) -> list[bytes]:
    secrets = [secret] if isinstance(secret, bytes | bytearray) else list(secret)
    if not secrets or any(not s for s in secrets):
        raise ValueError("a webhook secret must be non-empty bytes")
    return [bytes(s) for s in secrets]


def _signature(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign_webhook(secret: bytes | Sequence[bytes], body: bytes, timestamp: int) -> dict[str, str]:
    """The signature headers. Several secrets (during a rotation) give several signatures."""
    signatures = ",".join(
        f"{SIGNATURE_VERSION}={_signature(s, timestamp, body)}" for s in _as_secrets(secret)
    )
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signatures}


def webhook_body(message: OutboundMessage) -> bytes:
    payload = dict(message.payload) or {
        "notice_id": message.notice_id,
        "kind": str(message.kind),
        "subject": message.subject,
        "text": message.body,
    }
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


class WebhookChannel:
    """POSTs the message's JSON payload to the partner's URL (message.address), signed with the
    partner's secret, which ``secret_for`` looks up (by message.recipient_id, typically). Each attempt
    is signed afresh with the current time; partners dedupe on X-Refnet-Notice-Id (also sent as
    Idempotency-Key)."""

    def __init__(
        self,
        secret_for: Callable[[OutboundMessage], bytes | Sequence[bytes] | None],
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        trust_env: bool = True,
    ) -> None:
        self.secret_for = secret_for
        self.timeout = timeout
        self.clock = clock
        self.trust_env = trust_env

    @property
    def channel(self) -> Channel:
        return Channel.WEBHOOK

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        problem = misrouted(message, Channel.WEBHOOK)
        if problem:
            return problem
        secret = self.secret_for(message)
        if not secret:
            return DeliveryResult.permanent("no webhook secret for this recipient")
        body = webhook_body(message)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            NOTICE_HEADER: message.notice_id,
            "Idempotency-Key": message.notice_id,
            **sign_webhook(secret, body, int(self.clock())),
        }
        return await _post_classified(
            message.address, body, headers, self.timeout, self.trust_env,
            lambda reply: DeliveryResult.delivered(detail=f"http {reply.status}"),
        )


class WebhookRejected(Exception):
    """reason: missing_headers, bad_timestamp, stale, bad_signature, replay, replay_cache_full."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SeenSignatures:
    """What a receiver has already accepted, kept while its timestamp is still within tolerance
    (after that the staleness check rejects it anyway). Keyed by a digest of the signed content
    (timestamp and body), so a replay is caught whichever of several signatures it carries."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def add_if_new(self, key: str, expires_at: float, now: float) -> bool:
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                expiry, old = heapq.heappop(self._heap)
                if self._expiry.get(old) == expiry:
                    del self._expiry[old]
            if key in self._expiry:
                return False
            if len(self._expiry) >= self.max_entries:
                raise WebhookRejected("replay_cache_full")
            self._expiry[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            return True


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)


def verify_webhook(
    secret: bytes | Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float = 300.0,
    *,
    seen: SeenSignatures,
) -> None:
    """Accept a refnet webhook or raise WebhookRejected. Checks, in order: both headers present; the
    timestamp within ``tolerance`` seconds of ``now`` (either side); an HMAC-SHA256 v1 signature
    matching one of ``secret`` (constant-time); and that this signed content was not seen before."""
    secrets = _as_secrets(secret)
    raw_ts = _header(headers, TIMESTAMP_HEADER)
    raw_sig = _header(headers, SIGNATURE_HEADER)
    if not raw_ts or not raw_sig:
        raise WebhookRejected("missing_headers")
    if not re.fullmatch(r"\d{1,12}", raw_ts.strip()):
        raise WebhookRejected("bad_timestamp")
    timestamp = int(raw_ts.strip())
    if abs(now - timestamp) > tolerance:
        raise WebhookRejected("stale")
    offered = [
        value.strip()
        for version, _, value in (part.strip().partition("=") for part in raw_sig.split(","))
        if version == SIGNATURE_VERSION
    ]
    expected = [_signature(s, timestamp, body) for s in secrets]
    if not any(hmac.compare_digest(o, e) for o in offered for e in expected):
        raise WebhookRejected("bad_signature")
    digest = hashlib.sha256(f"{timestamp}.".encode() + body).hexdigest()
    if not seen.add_if_new(digest, expires_at=timestamp + tolerance, now=now):
        raise WebhookRejected("replay")
