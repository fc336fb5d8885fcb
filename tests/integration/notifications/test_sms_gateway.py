"""SMS through a real local HTTP server playing the gateway: success, 503 then 200, 400, always 503."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notifications.adapters.channels import SmsGatewayChannel, SmsGatewayConfig
from notifications.domain.messages import (
    Channel,
    Language,
    NewReferral,
    ReferralStatus,
    StatusChange,
    Urgency,
    recipients_for,
)
from notifications.domain.rendering import Contact, Endpoint, Links, OutboundMessage, staff_messages
from notifications.domain.retry import DeadLetter, Done, Outcome, Retry, RetryPolicy, next_step
from notifications.domain.safe_contact import (
    ContactPoint,
    ContactWindow,
    Defer,
    Send,
    SurvivorProfile,
    recheck,
    survivor_message,
)
from refnet_platform.vocabulary import ServiceType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
LINKS = Links("https://partners.refnet.test", "https://ops.refnet.test")
REFERRAL, CASE = str(uuid.uuid4()), str(uuid.uuid4())
FAST = RetryPolicy(base=0.01, cap=0.05, max_attempts=4)


def sms(gateway_url: str, **overrides: Any) -> SmsGatewayChannel:
    return SmsGatewayChannel(SmsGatewayConfig(gateway_url, "test-api-key", timeout=2, trust_env=False, **overrides))


def provider_sms() -> OutboundMessage:
    event = NewReferral("ev-1", REFERRAL, CASE, ServiceType.LEGAL_AID, "prov-1", "01", Urgency.HIGH)
    contact = Contact("prov-1", Language.VI, (Endpoint(Channel.SMS, "0901000001"),))
    (message,) = staff_messages(event, recipients_for(event)[0], contact, LINKS)
    return message


@pytest.mark.asyncio
async def test_a_gateway_that_accepts(sms_gateway: Any, deliver: Any) -> None:
    gateway = sms_gateway(200)
    message = provider_sms()
    _, step = await deliver(sms(gateway.url), message, FAST)
    assert isinstance(step, Done) and step.result.outcome is Outcome.SENT
    assert step.result.provider_ref == "gw-1"
    (request,) = gateway.requests
    assert request.path == "/v1/messages"
    assert request.headers["Authorization"] == "Bearer test-api-key"
    assert request.headers["Idempotency-Key"] == message.notice_id
    assert request.json() == {"to": "0901000001", "text": message.body, "reference": message.notice_id}
    assert "chuyển gửi mới RF-" in request.json()["text"]


@pytest.mark.asyncio
async def test_a_gateway_that_fails_once_then_accepts_is_retried_with_the_same_idempotency_key(
    sms_gateway: Any, deliver: Any
) -> None:
    gateway = sms_gateway(503, 200)
    results, step = await deliver(sms(gateway.url), provider_sms(), FAST)
    assert [r.outcome for r in results] == [Outcome.TRANSIENT, Outcome.SENT]
    assert results[0].detail == "http 503"
    assert isinstance(step, Done) and step.result.provider_ref == "gw-2"
    assert len(gateway.requests) == 2
    assert len({r.headers["Idempotency-Key"] for r in gateway.requests}) == 1
    assert gateway.requests[0].body == gateway.requests[1].body


@pytest.mark.asyncio
async def test_a_gateway_that_says_400_is_a_permanent_failure_and_not_retried(sms_gateway: Any, deliver: Any) -> None:
    gateway = sms_gateway(400)
    results, step = await deliver(sms(gateway.url), provider_sms(), FAST)
    assert [r.outcome for r in results] == [Outcome.PERMANENT]
    assert step == DeadLetter("permanent_failure", "http 400", 1)
    assert len(gateway.requests) == 1


@pytest.mark.asyncio
async def test_a_gateway_that_keeps_failing_is_retried_then_dead_lettered(sms_gateway: Any, deliver: Any) -> None:
    gateway = sms_gateway(503)
    results, step = await deliver(sms(gateway.url), provider_sms(), FAST)
    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * FAST.max_attempts
    assert step == DeadLetter("retries_exhausted", "http 503", FAST.max_attempts)
    assert len(gateway.requests) == FAST.max_attempts


@pytest.mark.asyncio
async def test_rate_limiting_is_transient_and_its_retry_after_is_honoured(sms_gateway: Any) -> None:
    gateway = sms_gateway(429, headers={429: {"Retry-After": "7"}})
    result = await sms(gateway.url).send(provider_sms())
    assert (result.outcome, result.retry_after) == (Outcome.TRANSIENT, 7.0)
    step = next_step(RetryPolicy(1, 60, 5), 1, result, datetime.now(UTC), lambda: 0.0)
    assert isinstance(step, Retry) and step.delay == 7.0


@pytest.mark.asyncio
async def test_a_slow_gateway_times_out_as_transient(sms_gateway: Any) -> None:
    gateway = sms_gateway(200, delay=1.5)
    result = await SmsGatewayChannel(SmsGatewayConfig(gateway.url, "k", timeout=0.3, trust_env=False)).send(
        provider_sms()
    )
    assert result.outcome is Outcome.TRANSIENT
    assert result.detail.startswith("http unreachable")


@pytest.mark.asyncio
async def test_a_redirect_is_not_followed(sms_gateway: Any) -> None:
    gateway = sms_gateway(307, headers={307: {"Location": "http://127.0.0.1:9/elsewhere"}})
    result = await sms(gateway.url).send(provider_sms())
    assert (result.outcome, result.detail) == (Outcome.PERMANENT, "http 307")
    assert len(gateway.requests) == 1


@pytest.mark.asyncio
async def test_an_unreachable_gateway_is_transient() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        result = await sms(url).send(provider_sms())
    assert result.outcome is Outcome.TRANSIENT


@pytest.mark.asyncio
async def test_a_survivor_sms_in_quiet_hours_is_sent_when_her_window_opens_and_only_to_her_safe_number(
    sms_gateway: Any,
) -> None:
    gateway = sms_gateway(200)
    profile = SurvivorProfile(
        CASE, Language.VI, True, frozenset({ServiceType.MEDICAL}), (Channel.SMS,),
        (ContactPoint(Channel.SMS, "0911111111", False),  # the number he checks: never used
         ContactPoint(Channel.SMS, "+84 922 222 222", True)),
        (ContactWindow.parse("08:00-11:00"),),
    )
    event = StatusChange("ev-9", REFERRAL, CASE, "prov", "79", ReferralStatus.REQUESTED, ReferralStatus.ACCEPTED,
                         "", "cw", ServiceType.MEDICAL, Urgency.EMERGENCY)
    (survivor,) = [a for a in recipients_for(event, profile) if a.kind.for_survivor]

    # Accepted at 23:40 Vietnam time: nothing goes out, it waits for 08:00.
    night = datetime(2025, 6, 2, 23, 40, tzinfo=HCM)
    decision = survivor_message(event, survivor, profile, night)
    assert isinstance(decision, Defer)
    assert decision.until == datetime(2025, 6, 3, 8, 0, tzinfo=HCM)
    pending = decision.message

    # The worker's clock ticks: still night at 07:59, so still deferred and nothing is sent.
    for minutes in (20, 60 * 8 + 19):
        tick = recheck(pending, profile, night + timedelta(minutes=minutes))
        assert isinstance(tick, Defer) and tick.until == decision.until
    assert gateway.requests == []

    # 08:00: the window opens and the same notice goes out, to the safe number only.
    opened = recheck(pending, profile, decision.until)
    assert isinstance(opened, Send) and opened.message.notice_id == pending.notice_id
    result = await sms(gateway.url).send(opened.message)
    assert result.outcome is Outcome.SENT
    (request,) = gateway.requests
    body = request.json()
    assert body["to"] == "+84 922 222 222"
    assert body["text"] == "Lịch hẹn của bạn đã được xác nhận. Trả lời STOP để ngừng nhận tin nhắn."
    assert "0911111111" not in request.body.decode()
    assert "from" not in body
