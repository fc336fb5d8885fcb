"""Channel adapters without a network: webhook signing and verification, message shapes, misrouting."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

import pytest

from notifications.adapters.channels import (
    NOTICE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SeenSignatures,
    SmsGatewayChannel,
    SmsGatewayConfig,
    WebhookChannel,
    WebhookRejected,
    sign_webhook,
    verify_webhook,
    webhook_body,
)
from notifications.adapters.smtp import EmailChannel, SmtpConfig, on_the_wire
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
from notifications.domain.retry import Outcome
from notifications.domain.safe_contact import ANYTIME, ContactPoint, Send, SurvivorProfile, survivor_message
from refnet_platform.vocabulary import ServiceType

SECRET = b"partner-secret-1"
BODY = b'{"notice_id":"n-1"}'
T0 = 1_750_000_000


def headers_for(secret: bytes | list[bytes] = SECRET, body: bytes = BODY, ts: int = T0) -> dict[str, str]:
    return sign_webhook(secret, body, ts)


# --- verify_webhook ------------------------------------------------------------------------------


def test_a_fresh_correctly_signed_webhook_is_accepted_once() -> None:
    seen = SeenSignatures()
    verify_webhook(SECRET, headers_for(), BODY, now=T0 + 5, seen=seen)
    with pytest.raises(WebhookRejected) as info:
        verify_webhook(SECRET, headers_for(), BODY, now=T0 + 6, seen=seen)
    assert info.value.reason == "replay"


@pytest.mark.parametrize(
    ("headers", "body", "now", "reason"),
    [
        (headers_for(), BODY + b" ", T0, "bad_signature"),
        (headers_for(b"someone-else"), BODY, T0, "bad_signature"),
        (headers_for(), BODY, T0 + 301, "stale"),
        (headers_for(), BODY, T0 - 301, "stale"),  # from the future
        ({TIMESTAMP_HEADER: str(T0)}, BODY, T0, "missing_headers"),
        ({SIGNATURE_HEADER: "v1=00"}, BODY, T0, "missing_headers"),
        ({**headers_for(), TIMESTAMP_HEADER: "yesterday"}, BODY, T0, "bad_timestamp"),
        ({**headers_for(), SIGNATURE_HEADER: headers_for()[SIGNATURE_HEADER].replace("v1=", "v0=")}, BODY, T0,
         "bad_signature"),
        # The timestamp is signed: moving it forward breaks the signature.
        ({**headers_for(), TIMESTAMP_HEADER: str(T0 + 100)}, BODY, T0 + 100, "bad_signature"),
    ],
)
def test_tampered_stale_or_unsigned_webhooks_are_rejected(
    headers: dict[str, str], body: bytes, now: float, reason: str
) -> None:
    with pytest.raises(WebhookRejected) as info:
        verify_webhook(SECRET, headers, body, now=now, seen=SeenSignatures())
    assert info.value.reason == reason


def test_headers_are_case_insensitive_and_secrets_can_rotate() -> None:
    signed = {k.lower(): v for k, v in headers_for([b"old-secret", b"new-secret"]).items()}
    assert signed[SIGNATURE_HEADER.lower()].count("v1=") == 2
    verify_webhook([b"new-secret"], signed, BODY, now=T0, seen=SeenSignatures())
    verify_webhook([b"old-secret", b"other"], signed, BODY, now=T0, seen=SeenSignatures())


def test_a_replay_carrying_only_one_of_two_signatures_is_still_a_replay() -> None:
    seen = SeenSignatures()
    both = headers_for([b"a", b"b"])
    verify_webhook([b"a", b"b"], both, BODY, now=T0, seen=seen)
    only_b = {**both, SIGNATURE_HEADER: both[SIGNATURE_HEADER].split(",")[1]}
    with pytest.raises(WebhookRejected, match="replay"):
        verify_webhook([b"a", b"b"], only_b, BODY, now=T0, seen=seen)


def test_the_seen_cache_forgets_what_the_staleness_check_already_rejects() -> None:
    seen = SeenSignatures()
    verify_webhook(SECRET, headers_for(ts=T0), BODY, now=T0, tolerance=60, seen=seen)
    assert len(seen) == 1
    with pytest.raises(WebhookRejected, match="stale"):
        verify_webhook(SECRET, headers_for(ts=T0), BODY, now=T0 + 61, tolerance=60, seen=seen)
    verify_webhook(SECRET, headers_for(ts=T0 + 61), BODY, now=T0 + 61, tolerance=60, seen=seen)
    assert len(seen) == 1  # the first entry expired and was pruned


def test_a_full_cache_fails_closed() -> None:
    seen = SeenSignatures(max_entries=1)
    verify_webhook(SECRET, headers_for(body=b"1"), b"1", now=T0, seen=seen)
    with pytest.raises(WebhookRejected, match="replay_cache_full"):
        verify_webhook(SECRET, headers_for(body=b"2"), b"2", now=T0, seen=seen)


def test_empty_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        sign_webhook(b"", BODY, T0)
    with pytest.raises(ValueError):
        verify_webhook([], headers_for(), BODY, now=T0, seen=SeenSignatures())


# --- message shapes ------------------------------------------------------------------------------

LINKS = Links("https://partners.refnet.test", "https://ops.refnet.test")
REFERRAL, CASE = str(uuid.uuid4()), str(uuid.uuid4())


def provider_message(channel: Channel, address: str) -> OutboundMessage:
    event = NewReferral("ev", REFERRAL, CASE, ServiceType.MEDICAL, "prov", "79", Urgency.HIGH)
    (m,) = staff_messages(event, recipients_for(event)[0], Contact("prov", Language.VI, (Endpoint(channel, address),)),
                          LINKS)
    return m


def survivor_sms(channel: Channel = Channel.SMS, address: str = "0912000111") -> OutboundMessage:
    event = StatusChange("ev", REFERRAL, CASE, "prov", "79", ReferralStatus.REQUESTED, ReferralStatus.ACCEPTED,
                         "", "cw", ServiceType.SHELTER)
    profile = SurvivorProfile(CASE, Language.VI, True, frozenset(ServiceType), (channel,),
                              (ContactPoint(channel, address, True),), (ANYTIME,))
    addressee = recipients_for(event, profile)[-1]
    decision = survivor_message(event, addressee, profile, datetime(2025, 1, 1, tzinfo=UTC))
    assert isinstance(decision, Send)
    return decision.message


def received(built: Message) -> EmailMessage:
    """The e-mail as its recipient's client reads it (headers decoded), from the bytes sent."""
    parsed = message_from_bytes(on_the_wire(built), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_staff_email_carries_a_deterministic_message_id_and_both_parts() -> None:
    m = provider_message(Channel.EMAIL, "duty@partner.test")
    email = received(EmailChannel(SmtpConfig("127.0.0.1", sender="refnet <notify@refnet.test>")).build(m))
    assert email["Message-ID"] == f"<{m.notice_id}@refnet.test>"
    assert email[NOTICE_HEADER] == m.notice_id
    assert email["Subject"] == m.subject
    assert [p.get_content_type() for p in email.iter_parts()] == ["text/plain", "text/html"]


def test_survivor_email_comes_from_the_neutral_sender_and_names_nothing() -> None:
    m = survivor_sms(Channel.EMAIL, "lan@mail.test")
    channel = EmailChannel(SmtpConfig("127.0.0.1", sender="refnet <notify@refnet.test>",
                                      survivor_sender="Lịch hẹn <lich-hen@mail.test>"))
    built = channel.build(m)
    raw = built.as_string()
    assert "refnet" not in raw.lower()
    email = received(built)
    assert email["From"] == "Lịch hẹn <lich-hen@mail.test>"
    assert email[NOTICE_HEADER] is None
    assert email["Message-ID"] == f"<{m.notice_id}@mail.test>"


@pytest.mark.parametrize("for_survivor", [False, True])
def test_the_bytes_sent_are_the_email_packages_own_folding_of_the_message(for_survivor: bool) -> None:
    """The wire policy writes a short ASCII header as it is instead of folding it: the bytes must be those the
    package's own compat32 folding writes, a long Subject and a long encoded display name folded as it folds them."""
    m = survivor_sms(Channel.EMAIL, "lan@mail.test") if for_survivor else provider_message(Channel.EMAIL, "d@p.test")
    m = replace(m, subject=m.subject + " " + "Hồ sơ cần xử lý ngay trong ngày hôm nay, tỉnh Quảng Nam " * 3)
    channel = EmailChannel(SmtpConfig("127.0.0.1", sender="Mạng lưới chuyển gửi của đường dây nóng quốc gia "
                                      "<thong-bao@refnet.test>", survivor_sender="Lịch hẹn <lich-hen@mail.test>"))
    built = channel.build(m)
    sent = on_the_wire(built)
    assert sent == built.as_bytes(policy=policy.compat32.clone(linesep="\r\n"))
    assert received(built)["Subject"] == m.subject


@pytest.mark.asyncio
async def test_survivor_email_without_a_neutral_sender_is_not_sent() -> None:
    m = survivor_sms(Channel.EMAIL, "lan@mail.test")
    result = await EmailChannel(SmtpConfig("127.0.0.1", port=1)).send(m)
    assert result.outcome is Outcome.PERMANENT


def test_sms_request_shape() -> None:
    channel = SmsGatewayChannel(SmsGatewayConfig("http://127.0.0.1:9/", "k-123", sender_id="REFNET"))
    staff = provider_message(Channel.SMS, "0901000001")
    url, body, headers = channel.request(staff)
    assert url == "http://127.0.0.1:9/v1/messages"
    assert json.loads(body) == {"to": "0901000001", "text": staff.body, "reference": staff.notice_id, "from": "REFNET"}
    assert headers["Authorization"] == "Bearer k-123" and headers["Idempotency-Key"] == staff.notice_id
    # A survivor never gets the branded sender id.
    _, body, _ = channel.request(survivor_sms())
    assert "from" not in json.loads(body)


def test_webhook_body_is_canonical_json_of_the_payload() -> None:
    m = provider_message(Channel.WEBHOOK, "https://partner.test/hook")
    body = webhook_body(m)
    assert json.loads(body) == dict(m.payload)
    assert body == webhook_body(m)
    assert b'": ' not in body  # compact, sorted: the signed bytes are exactly what is sent


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("adapter", "message", "detail"),
    [
        (SmsGatewayChannel(SmsGatewayConfig("http://127.0.0.1:9", "k")),
         provider_message(Channel.EMAIL, "a@b.test"), "email message given to the sms channel"),
        (WebhookChannel(lambda m: b"s"), survivor_sms(), "sms message given to the webhook channel"),
        (WebhookChannel(lambda m: b"s"), provider_message(Channel.WEBHOOK, "file:///etc/passwd"), "not an http(s) url"),
        (WebhookChannel(lambda m: None), provider_message(Channel.WEBHOOK, "https://p.test/h"),
         "no webhook secret for this recipient"),
    ],
)
async def test_misrouted_or_unusable_messages_fail_permanently_without_a_network(
    adapter: SmsGatewayChannel | WebhookChannel, message: OutboundMessage, detail: str
) -> None:
    result = await adapter.send(message)
    assert (result.outcome, result.detail) == (Outcome.PERMANENT, detail)
