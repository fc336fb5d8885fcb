"""Real local servers for the notification channels, all on 127.0.0.1 and always stopped:

- a real SMTP server (aiosmtpd) that accepts mail, refuses "reject@" (550) and defers "later@" (451);
- a real HTTP server playing the SMS gateway, answering from a script of status codes;
- a real webhook receiver that verifies refnet's signature with verify_webhook.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from notifications.adapters.channels import ChannelAdapter, SeenSignatures, WebhookRejected, verify_webhook
from notifications.domain.rendering import OutboundMessage
from notifications.domain.retry import DeliveryResult, NextStep, Retry, RetryPolicy, next_step

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


# --- SMTP ----------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("reject@"):
            return "550 5.1.1 mailbox unavailable"
        if address.startswith("later@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    mailbox: Mailbox


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname=HOST, port=free_port())
    controller.start()
    try:
        yield SmtpServer(HOST, controller.port, mailbox)
    finally:
        controller.stop()


# --- HTTP servers --------------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpServer:
    url: str
    requests: list[Request]


class _Server(ThreadingHTTPServer):
    daemon_threads = True


Responder = Callable[[Request], tuple[int, dict[str, str], bytes]]


def _serve(respond: Responder) -> tuple[_Server, threading.Thread, list[Request]]:
    requests: list[Request] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            request = Request(self.path, dict(self.headers.items()), self.rfile.read(length))
            with lock:
                requests.append(request)
            status, headers, body = respond(request)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _Server((HOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread, requests


@pytest.fixture
def http_servers() -> Iterator[Callable[[Callable[[Request], tuple[int, dict[str, str], bytes]]], HttpServer]]:
    """A factory: start(respond) -> a real HTTP server on 127.0.0.1; every one is stopped afterwards."""
    started: list[tuple[_Server, threading.Thread]] = []

    def start(respond: Callable[[Request], tuple[int, dict[str, str], bytes]]) -> HttpServer:
        server, thread, requests = _serve(respond)
        started.append((server, thread))
        host, port = server.server_address[:2]
        return HttpServer(f"http://{host!s}:{port}", requests)

    try:
        yield start
    finally:
        for server, thread in started:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


GatewayFactory = Callable[..., HttpServer]


@pytest.fixture
def sms_gateway(http_servers: Callable[..., HttpServer]) -> GatewayFactory:
    """sms_gateway(200) always succeeds; sms_gateway(503, 200) fails once then succeeds; the last
    status repeats. Extra headers per status can be given with headers={503: {...}}; delay in seconds."""

    def start(*statuses: int, headers: dict[int, dict[str, str]] | None = None, delay: float = 0.0) -> HttpServer:
        script = list(statuses) or [200]
        count = 0
        lock = threading.Lock()

        def respond(request: Request) -> tuple[int, dict[str, str], bytes]:
            nonlocal count
            with lock:
                status = script[min(count, len(script) - 1)]
                count += 1
                n = count
            if delay:
                time.sleep(delay)
            extra = dict((headers or {}).get(status, {}))
            if 200 <= status < 300:
                body = json.dumps({"id": f"gw-{n}", "status": "queued"}).encode()
                return status, {"Content-Type": "application/json", **extra}, body
            return status, {"Content-Type": "application/json", **extra}, b'{"error":"scripted"}'

        return http_servers(respond)

    return start


@dataclass
class WebhookReceiver:
    url: str
    secret: bytes
    accepted: list[Request]
    rejected: list[tuple[str, Request]]
    requests: list[Request]


@pytest.fixture
def webhook_receiver(http_servers: Callable[..., HttpServer]) -> WebhookReceiver:
    """A partner system: verifies X-Refnet-Signature / X-Refnet-Timestamp (5 minutes tolerance,
    replay cache), answers 204 when valid and 401 with the reason otherwise."""
    secret = b"partner-7-webhook-secret"
    seen = SeenSignatures()
    accepted: list[Request] = []
    rejected: list[tuple[str, Request]] = []

    def respond(request: Request) -> tuple[int, dict[str, str], bytes]:
        try:
            verify_webhook(secret, request.headers, request.body, now=time.time(), tolerance=300, seen=seen)
        except WebhookRejected as exc:
            rejected.append((exc.reason, request))
            return 401, {"Content-Type": "text/plain"}, exc.reason.encode()
        accepted.append(request)
        return 204, {}, b""

    server = http_servers(respond)
    return WebhookReceiver(server.url + "/refnet/hooks", secret, accepted, rejected, server.requests)


# --- a small delivery loop, as the worker will run it ---------------------------------------------

Deliver = Callable[[ChannelAdapter, OutboundMessage, RetryPolicy], Awaitable[tuple[list[DeliveryResult], NextStep]]]


@pytest.fixture
def deliver() -> Deliver:
    """Send, and on a transient failure wait the backoff and send again, until done or dead-lettered."""

    async def run(
        adapter: ChannelAdapter, message: OutboundMessage, policy: RetryPolicy
    ) -> tuple[list[DeliveryResult], NextStep]:
        rng = random.Random(0)
        results: list[DeliveryResult] = []
        attempts = 0
        while True:
            attempts += 1
            result = await adapter.send(message)
            results.append(result)
            step = next_step(policy, attempts, result, datetime.now(UTC), rng)
            if isinstance(step, Retry):
                await asyncio.sleep(step.delay)
                continue
            return results, step

    return run
