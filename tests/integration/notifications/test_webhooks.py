"""Signed webhooks to a real local partner receiver that verifies them."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from notifications.adapters.channels import NOTICE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookChannel
from notifications.domain.messages import Channel, Language, NewReferral, Urgency, recipients_for
from notifications.domain.rendering import Contact, Endpoint, Links, OutboundMessage, short_ref, staff_messages
from notifications.domain.retry import DeadLetter, Done, Outcome, RetryPolicy
from refnet_platform.vocabulary import ServiceType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LINKS = Links("https://partners.refnet.test", "https://ops.refnet.test")
REFERRAL, CASE = str(uuid.uuid4()), str(uuid.uuid4())


def partner_webhook(url: str) -> OutboundMessage:
    event = NewReferral("ev-1", REFERRAL, CASE, ServiceType.POLICE_PROTECTION, "police-79", "79", Urgency.EMERGENCY)
    contact = Contact("police-79", Language.EN, (Endpoint(Channel.WEBHOOK, url),))
    (message,) = staff_messages(event, recipients_for(event)[0], contact, LINKS)
    return message


def post_raw(url: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


@pytest.mark.asyncio
async def test_a_signed_webhook_is_verified_and_delivered(webhook_receiver: Any, deliver: Any) -> None:
    message = partner_webhook(webhook_receiver.url)
    adapter = WebhookChannel(lambda m: webhook_receiver.secret if m.recipient_id == "police-79" else None,
                             trust_env=False)
    _, step = await deliver(adapter, message, RetryPolicy(0.01, 0.02, 3))
    assert isinstance(step, Done) and step.result.outcome is Outcome.DELIVERED
    (request,) = webhook_receiver.accepted
    assert request.path == "/refnet/hooks"
    assert request.headers[NOTICE_HEADER] == request.headers["Idempotency-Key"] == message.notice_id
    payload = request.json()
    assert payload["notice_id"] == message.notice_id
    assert payload["referral_id"] == REFERRAL and payload["ref"] == short_ref(REFERRAL)
    assert (payload["service"], payload["urgency"], payload["kind"]) == ("police_protection", "emergency",
                                                                          "referral_new")
    assert payload["action_url"] == f"https://partners.refnet.test/referrals/{REFERRAL}"
    assert CASE not in request.body.decode()


@pytest.mark.asyncio
async def test_a_webhook_signed_with_the_wrong_secret_is_refused_as_permanent(
    webhook_receiver: Any, deliver: Any
) -> None:
    adapter = WebhookChannel(lambda m: b"not-the-partners-secret", trust_env=False)
    _, step = await deliver(adapter, partner_webhook(webhook_receiver.url), RetryPolicy(0.01, 0.02, 3))
    assert step == DeadLetter("permanent_failure", "http 401", 1)
    assert [reason for reason, _ in webhook_receiver.rejected] == ["bad_signature"]
    assert webhook_receiver.accepted == []


@pytest.mark.asyncio
async def test_a_captured_webhook_cannot_be_replayed_or_reused_later(webhook_receiver: Any) -> None:
    adapter = WebhookChannel(lambda m: webhook_receiver.secret, trust_env=False)
    assert (await adapter.send(partner_webhook(webhook_receiver.url))).outcome is Outcome.DELIVERED
    (captured,) = webhook_receiver.accepted
    headers = {k: v for k, v in captured.headers.items()
               if k.lower() in (SIGNATURE_HEADER.lower(), TIMESTAMP_HEADER.lower(), "content-type")}

    # The exact same bytes again: a replay.
    assert post_raw(webhook_receiver.url, headers, captured.body) == (401, "replay")
    # The same signature on an altered body: a forgery.
    altered = json.dumps({**captured.json(), "urgency": "routine"}).encode()
    assert post_raw(webhook_receiver.url, headers, altered) == (401, "bad_signature")
    assert len(webhook_receiver.accepted) == 1

    # Signed by a sender whose clock is an hour behind: stale.
    late = WebhookChannel(lambda m: webhook_receiver.secret, clock=lambda: time.time() - 3600, trust_env=False)
    result = await late.send(partner_webhook(webhook_receiver.url))
    assert (result.outcome, result.detail) == (Outcome.PERMANENT, "http 401")
    assert webhook_receiver.rejected[-1][0] == "stale"


@pytest.mark.asyncio
async def test_each_retry_is_signed_afresh_and_accepted(webhook_receiver: Any) -> None:
    # Two attempts at the same notice a second apart are two valid deliveries (the partner dedupes on
    # X-Refnet-Notice-Id), not a replay.
    clock = iter([time.time() - 1, time.time()])
    adapter = WebhookChannel(lambda m: webhook_receiver.secret, clock=lambda: next(clock), trust_env=False)
    message = partner_webhook(webhook_receiver.url)
    assert (await adapter.send(message)).outcome is Outcome.DELIVERED
    assert (await adapter.send(message)).outcome is Outcome.DELIVERED
    assert {r.headers[NOTICE_HEADER] for r in webhook_receiver.accepted} == {message.notice_id}
