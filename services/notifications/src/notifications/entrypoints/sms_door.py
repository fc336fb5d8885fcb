"""`notifications-sms`: the SMS door. The SMS gateway POSTs each text it receives to /sms/inbound on
NOTIFICATIONS_SMS_DOOR_HOST:NOTIFICATIONS_SMS_DOOR_PORT, as JSON {"message_id", "from", "text", "received_at"}
signed as refnet's own webhooks are (X-Refnet-Timestamp, X-Refnet-Signature: HMAC-SHA256 over
"<timestamp>.<body>" with NOTIFICATIONS_SMS_INBOUND_SECRET; several secrets while rotating; a timestamp more
than NOTIFICATIONS_SMS_INBOUND_TOLERANCE_S away, or a signed request seen before, is refused). The same
channels' `verify_webhook` checks it: one implementation for both directions.

Answers: 200 {"status": "accepted"} for every signed text, whatever it was (a duplicate, an unknown number and a
shelter's report look alike to the gateway); 401 for a bad or replayed signature (nothing is read); 400 naming the
field for a body that is not a text; 503 when an owning service did not answer (nothing recorded: retry). A reply
goes out through the SMS gateway adapter before the answer. Also /healthz, /readyz and /metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from notifications.adapters.channels import SeenSignatures, SmsGatewayChannel, WebhookRejected, verify_webhook
from notifications.bootstrap import bootstrap, sms_door, staff_adapters
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from notifications.domain.messages import Channel
from notifications.service_layer.inbound import INBOUND, Handled, Outcome
from refnet_platform.bus import MessageBus
from refnet_platform.errors import InvalidArgument
from refnet_platform.health_http import database_check
from refnet_platform.runtime import migrate_only_requested, open_database
from refnet_platform.telemetry import setup_logging

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 16 * 1024
REPLY_ATTEMPTS = 2  # a transient gateway failure is tried once more (same Idempotency-Key)


def create_app(bus: MessageBus, gateway: SmsGatewayChannel | None, secrets: Sequence[bytes], tolerance_s: float,
               engine: Engine | None = None, seen: SeenSignatures | None = None) -> Starlette:
    seen = seen if seen is not None else SeenSignatures()
    ready_check = database_check(engine) if engine is not None else None

    async def inbound_sms(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            INBOUND.labels("too_large").inc()
            return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            verify_webhook(list(secrets), dict(request.headers.items()), body, time.time(), tolerance_s, seen=seen)
        except WebhookRejected as exc:
            INBOUND.labels(f"rejected_{exc.reason}").inc()
            log.warning("sms rejected", extra={"fields": {"reason": exc.reason}})
            return JSONResponse({"error": "signature refused"}, status_code=401)
        try:
            command = _command(body)
            handled: Handled = await asyncio.to_thread(bus.handle, command)
        except InvalidArgument as exc:
            INBOUND.labels("invalid").inc()
            return JSONResponse({"error": f"{exc.field}: {exc.problem}"}, status_code=400)
        if handled.outcome is Outcome.OWNER_UNAVAILABLE:
            return JSONResponse({"error": "try again later"}, status_code=503)
        if handled.reply is not None:
            await _send_reply(bus, gateway, command.message_id, handled)
        return JSONResponse({"status": "accepted"})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"alive": True, "reason": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            if ready_check is not None:
                await asyncio.to_thread(ready_check)
        except Exception as exc:
            return JSONResponse({"ready": False, "checks": {"database": type(exc).__name__}}, status_code=503)
        return JSONResponse({"ready": True, "checks": {"database": "ok"}})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/sms/inbound", inbound_sms, methods=["POST"]), Route("/healthz", healthz),
                             Route("/readyz", readyz), Route("/metrics", metrics)])


def _command(body: bytes) -> commands.ReceiveSms:
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidArgument("body", "is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument("body", "must be a JSON object")
    for name in ("message_id", "from", "text"):
        if not isinstance(data.get(name), str):
            raise InvalidArgument(name, "required, a string")
    received = data.get("received_at")
    try:
        received_at = datetime.fromisoformat(received) if isinstance(received, str) else datetime.now(UTC)
    except ValueError:
        raise InvalidArgument("received_at", "must be an ISO 8601 time") from None
    if received_at.tzinfo is None:
        raise InvalidArgument("received_at", "must carry a UTC offset")
    return commands.ReceiveSms(data["message_id"], data["from"], data["text"], received_at)


async def _send_reply(bus: MessageBus, gateway: SmsGatewayChannel | None, message_id: str, handled: Handled) -> None:
    reply = handled.reply
    assert reply is not None
    status = "no_gateway"
    if gateway is not None:
        for attempt in range(REPLY_ATTEMPTS):
            result = await gateway.send_text(reply.to, reply.text, reply.reference, reply.for_survivor)
            status = str(result.outcome)
            if status != "transient" or attempt == REPLY_ATTEMPTS - 1:
                break
            await asyncio.sleep(1)
    INBOUND.labels(f"reply_{status}").inc()
    await asyncio.to_thread(bus.handle, commands.RecordSmsReply(message_id, status))


def main() -> None:
    migrate_only = migrate_only_requested("refnet SMS door")
    settings = Settings()
    setup_logging("notifications-sms", settings.log_level)
    engine = open_database(settings, MIGRATIONS)
    if migrate_only:
        return
    secrets = [s.strip().encode() for s in settings.sms_inbound_secret.split(",") if s.strip()]
    if not secrets:
        raise SystemExit("notifications-sms: set NOTIFICATIONS_SMS_INBOUND_SECRET (the gateway signs with it)")
    door, owners = sms_door(settings)
    adapter = staff_adapters(settings).get(Channel.SMS)
    gateway = adapter if isinstance(adapter, SmsGatewayChannel) else None
    if gateway is None:
        log.warning("no SMS gateway configured: texts are handled, nobody is answered")
    bus = bootstrap(settings, engine, adapters={}, contacts=None, door=door)
    app = create_app(bus, gateway, secrets, settings.sms_inbound_tolerance_s, engine)
    log.info("sms door listening", extra={"fields": {"host": settings.sms_door_host, "port": settings.sms_door_port}})
    try:
        uvicorn.run(app, host=settings.sms_door_host, port=settings.sms_door_port, log_level="warning",
                    access_log=False, timeout_graceful_shutdown=3)
    finally:
        owners.close()

