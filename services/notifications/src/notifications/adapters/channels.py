"""Channel adapters behind one interface: ``await adapter.send(message) -> DeliveryResult``.

Every adapter tells a transient failure (try again later) from a permanent one (dead-letter), and
none of them logs or echoes a message body or address: failure details are codes only.

- EmailChannel: real SMTP (stdlib smtplib, run in a thread), over a small pool of kept-open
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
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr, parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from notifications.domain.messages import Channel, OutboundMessage
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


def _misrouted(message: OutboundMessage, channel: Channel) -> DeliveryResult | None:
    if message.channel is not channel:
        return DeliveryResult.permanent(f"{message.channel} message given to the {channel} channel")
    if message.for_survivor and channel not in (Channel.SMS, Channel.EMAIL):
        return DeliveryResult.permanent("survivor messages go only by sms or email")
    if not message.address:
        return DeliveryResult.permanent("no address")
    return None


# --- e-mail --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 25
    sender: str = "refnet <no-reply@localhost>"
    # The From of survivor e-mail: it must name nothing (no refnet, no hotline, no service). Empty:
    # survivor e-mail is refused as a permanent failure rather than sent from a telling address.
    survivor_sender: str = ""
    username: str = ""
    password: str = ""
    starttls: bool = False
    use_ssl: bool = False
    timeout: float = 10.0
    local_hostname: str | None = None
    # Kept-open connections: at most this many idle, each closed after idle_s unused (servers drop idle
    # clients after a few minutes; RFC 5321 asks them to wait at least five).
    max_idle: int = 16
    idle_s: float = 30.0


class EmailChannel:
    """Each send takes a connection of its own from the pool (or opens one) and gives it back only after a
    clean hand-over; a connection that failed in any way is closed. A kept connection the server has closed
    meanwhile (disconnect, 421) is replaced by a fresh one for that send: at worst a message the server took
    just before dropping the line is handed over twice, under the same Message-ID."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._idle: list[tuple[smtplib.SMTP, float]] = []  # (connection, when it was given back)
        self._lock = threading.Lock()

    @property
    def channel(self) -> Channel:
        return Channel.EMAIL

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        problem = _misrouted(message, Channel.EMAIL)
        if problem:
            return problem
        try:
            email = self.build(message)
        except ValueError as exc:
            return DeliveryResult.permanent(f"unusable message: {type(exc).__name__}")
        return await asyncio.to_thread(self._send_sync, email, message.address)

    def build(self, message: OutboundMessage) -> EmailMessage:
        sender = self.config.survivor_sender if message.for_survivor else self.config.sender
        if not sender:
            raise ValueError("no neutral survivor_sender configured")
        if "\n" in message.address or "\r" in message.address:
            raise ValueError("address with a line break")
        domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        email = EmailMessage()
        email["From"] = sender
        email["To"] = message.address
        email["Subject"] = message.subject
        email["Date"] = formatdate(usegmt=True)
        # Deterministic, so a resent notice is recognisable as the same one.
        email["Message-ID"] = f"<{message.notice_id}@{domain}>"
        email["Auto-Submitted"] = "auto-generated"
        if not message.for_survivor:
            email[NOTICE_HEADER] = message.notice_id
        email.set_content(message.body)
        if message.html:
            email.add_alternative(message.html, subtype="html")
        return email

    def _send_sync(self, email: EmailMessage, to: str) -> DeliveryResult:
        envelope_from = parseaddr(str(email["From"]))[1]
        try:
            smtp = self._kept()
            try:
                if smtp is None:
                    smtp = self._open()
                    smtp.send_message(email, from_addr=envelope_from, to_addrs=[to])
                else:
                    try:
                        smtp.send_message(email, from_addr=envelope_from, to_addrs=[to])
                    except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException) as exc:
                        if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code != 421:
                            raise
                        _close(smtp)  # the server had let it go: a fresh connection for this send
                        smtp = self._open()
                        smtp.send_message(email, from_addr=envelope_from, to_addrs=[to])
            except BaseException:
                if smtp is not None:
                    _close(smtp)
                raise
            self._give_back(smtp)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (0, b""))
            return _smtp_reply(int(code), reply)
        except smtplib.SMTPResponseException as exc:
            return _smtp_reply(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPNotSupportedError:
            return DeliveryResult.permanent("smtp extension not supported")
        except (smtplib.SMTPException, OSError) as exc:
            return DeliveryResult.transient(f"smtp {type(exc).__name__}")
        return DeliveryResult.sent(detail="smtp 250")

    def _open(self) -> smtplib.SMTP:
        cfg = self.config
        smtp: smtplib.SMTP
        if cfg.use_ssl:
            smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, local_hostname=cfg.local_hostname, timeout=cfg.timeout,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, local_hostname=cfg.local_hostname, timeout=cfg.timeout)
        try:
            if cfg.starttls and not cfg.use_ssl:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.username:
                smtp.login(cfg.username, cfg.password)
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def _kept(self) -> smtplib.SMTP | None:
        """The most recently used idle connection (the others age out), or None."""
        stale: list[smtplib.SMTP] = []
        with self._lock:
            now = time.monotonic()
            while self._idle and now - self._idle[0][1] > self.config.idle_s:
                stale.append(self._idle.pop(0)[0])
            kept = self._idle.pop()[0] if self._idle else None
        for smtp in stale:
            _close(smtp)
        return kept

    def _give_back(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            if len(self._idle) < self.config.max_idle:
                self._idle.append((smtp, time.monotonic()))
                return
        _close(smtp)


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT if the server still listens, and close the socket in any case."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _smtp_reply(code: int, reply: bytes | str) -> DeliveryResult:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    enhanced = re.match(r"\s*([245]\.\d{1,3}\.\d{1,3})\b", text)
    detail = f"smtp {code}" + (f" {enhanced.group(1)}" if enhanced else "")
    if 500 <= code < 600:
        return DeliveryResult.permanent(detail)
    return DeliveryResult.transient(detail)


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
        cfg = self.config
        payload = {"to": message.address, "text": message.body, "reference": message.notice_id}
        sender = cfg.survivor_sender_id if message.for_survivor else cfg.sender_id
        if sender:
            payload["from"] = sender
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "application/json",
            "Authorization": f"Bearer {cfg.api_key}",
            "Idempotency-Key": message.notice_id,
        }
        return cfg.base_url.rstrip("/") + "/" + cfg.path.lstrip("/"), body, headers

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        problem = _misrouted(message, Channel.SMS)
        if problem:
            return problem
        url, body, headers = self.request(message)
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
        problem = _misrouted(message, Channel.WEBHOOK)
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
