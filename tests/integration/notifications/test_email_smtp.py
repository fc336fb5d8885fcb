"""E-mail over a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from notifications.adapters.channels import NOTICE_HEADER
from notifications.adapters.smtp import EmailChannel, SmtpConfig
from notifications.domain.messages import (
    Channel,
    Language,
    NewReferral,
    ReferralStatus,
    StatusChange,
    Urgency,
    recipients_for,
)
from notifications.domain.rendering import Contact, Endpoint, Links, OutboundMessage, short_ref, staff_messages
from notifications.domain.retry import DeadLetter, Outcome, RetryPolicy
from notifications.domain.safe_contact import ANYTIME, ContactPoint, Send, SurvivorProfile, survivor_message
from refnet_platform.vocabulary import ServiceType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LINKS = Links("https://partners.refnet.test", "https://ops.refnet.test")
REFERRAL, CASE = str(uuid.uuid4()), str(uuid.uuid4())
SENDER = "refnet <notify@refnet.test>"
NEUTRAL = "Lich hen <lich-hen@mail.test>"


def provider_email(address: str, language: Language = Language.VI) -> OutboundMessage:
    event = NewReferral("ev-1", REFERRAL, CASE, ServiceType.PSYCHOSOCIAL, "prov-1", "79", Urgency.EMERGENCY)
    contact = Contact("prov-1", language, (Endpoint(Channel.EMAIL, address),))
    (message,) = staff_messages(event, recipients_for(event)[0], contact, LINKS)
    return message


def channel(server: Any, **overrides: Any) -> EmailChannel:
    return EmailChannel(SmtpConfig(server.host, server.port, sender=SENDER, survivor_sender=NEUTRAL, timeout=5,
                                   **overrides))


@pytest.mark.asyncio
@pytest.mark.parametrize("language", list(Language))
async def test_a_provider_email_arrives_over_smtp_in_the_recipients_language(
    smtp_server: Any, language: Language
) -> None:
    message = provider_email("duty@clinic.test", language)
    result = await channel(smtp_server).send(message)
    assert result.outcome is Outcome.SENT, result

    ((mail_from, rcpt_tos, email),) = smtp_server.mailbox.messages
    assert (mail_from, rcpt_tos) == ("notify@refnet.test", ["duty@clinic.test"])
    assert email["Subject"] == message.subject
    assert email["Message-ID"] == f"<{message.notice_id}@refnet.test>"
    assert email[NOTICE_HEADER] == message.notice_id
    text = email.get_body(("plain",)).get_content()
    html = email.get_body(("html",)).get_content()
    assert short_ref(REFERRAL) in text and f"/referrals/{REFERRAL}" in html
    if language is Language.VI:
        assert email["Subject"].startswith("[KHẨN CẤP]") and "Tư vấn tâm lý xã hội" in text
    else:
        assert email["Subject"].startswith("[EMERGENCY]") and "Psychosocial counselling" in text


@pytest.mark.asyncio
async def test_a_survivor_email_arrives_from_a_neutral_sender_with_nothing_telling(smtp_server: Any) -> None:
    event = StatusChange("ev-2", REFERRAL, CASE, "prov", "79", ReferralStatus.REQUESTED, ReferralStatus.ACCEPTED,
                         "", "cw", ServiceType.SHELTER)
    profile = SurvivorProfile(CASE, Language.VI, True, frozenset({ServiceType.SHELTER}), (Channel.EMAIL,),
                              (ContactPoint(Channel.EMAIL, "lan@mail.test", True),), (ANYTIME,))
    decision = survivor_message(event, recipients_for(event, profile)[-1], profile, datetime.now(UTC))
    assert isinstance(decision, Send)
    assert (await channel(smtp_server).send(decision.message)).outcome is Outcome.SENT

    ((mail_from, rcpt_tos, email),) = smtp_server.mailbox.messages
    assert (mail_from, rcpt_tos) == ("lich-hen@mail.test", ["lan@mail.test"])
    raw = email.as_string().lower()
    for word in ("refnet", "shelter", "tạm lánh", "tam lanh", "x-refnet"):
        assert word not in raw
    assert email.get_body(("plain",)).get_content().startswith("Lịch hẹn của bạn đã được xác nhận.")


@pytest.mark.asyncio
async def test_a_refused_mailbox_is_a_permanent_failure_and_dead_letters(smtp_server: Any, deliver: Any) -> None:
    results, step = await deliver(channel(smtp_server), provider_email("reject@clinic.test"),
                                  RetryPolicy(0.01, 0.02, 5))
    assert [r.outcome for r in results] == [Outcome.PERMANENT]
    assert step == DeadLetter("permanent_failure", "smtp 550 5.1.1", 1)
    assert smtp_server.mailbox.messages == []


@pytest.mark.asyncio
async def test_a_deferred_mailbox_is_transient_and_retried(smtp_server: Any, deliver: Any) -> None:
    results, step = await deliver(channel(smtp_server), provider_email("later@clinic.test"),
                                  RetryPolicy(0.01, 0.02, 3))
    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 3
    assert results[0].detail == "smtp 451 4.3.0"
    assert step == DeadLetter("retries_exhausted", "smtp 451 4.3.0", 3)


@pytest.mark.asyncio
async def test_no_smtp_server_listening_is_transient() -> None:
    import socket

    with socket.socket() as s:  # a port that is certainly closed: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        result = await EmailChannel(SmtpConfig("127.0.0.1", port, sender=SENDER, timeout=2)).send(
            provider_email("duty@clinic.test")
        )
    assert result.outcome is Outcome.TRANSIENT
    assert result.detail.startswith("smtp ")
