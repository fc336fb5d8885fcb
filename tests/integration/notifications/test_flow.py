"""A referral's life, told to the right people over real SMTP, a real SMS gateway and a real webhook
receiver: who gets what, in which language, emergencies first, and the survivor only safely."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notifications.adapters.channels import ChannelAdapter, SmsGatewayChannel, SmsGatewayConfig, WebhookChannel
from notifications.adapters.smtp import EmailChannel, SmtpConfig
from notifications.domain.messages import (
    Channel,
    Escalation,
    Event,
    Language,
    NewReferral,
    ReferralStatus,
    Role,
    StatusChange,
    Urgency,
    recipients_for,
)
from notifications.domain.rendering import (
    Contact,
    Endpoint,
    Links,
    OutboundMessage,
    by_priority,
    short_ref,
    staff_messages,
)
from notifications.domain.safe_contact import ContactPoint, ContactWindow, Send, SurvivorProfile, survivor_message
from refnet_platform.vocabulary import ServiceType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
LINKS = Links("https://partners.refnet.test", "https://ops.refnet.test")
CASE = str(uuid.uuid4())
MEDICAL, LEGAL = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.mark.asyncio
async def test_a_referrals_life_reaches_the_right_people(
    smtp_server: Any, sms_gateway: Any, webhook_receiver: Any
) -> None:
    gateway = sms_gateway(200)
    directory = {
        (Role.PROVIDER, "clinic-79"): Contact("clinic-79", Language.VI, (
            Endpoint(Channel.EMAIL, "duty@clinic.test"), Endpoint(Channel.SMS, "0901000001"),
            Endpoint(Channel.WEBHOOK, webhook_receiver.url),
        )),
        (Role.PROVIDER, "legal-79"): Contact("legal-79", Language.EN, (Endpoint(Channel.EMAIL, "desk@legal.test"),)),
        (Role.CASE_WORKER, "cw-5"): Contact("cw-5", Language.VI, (Endpoint(Channel.EMAIL, "cw5@sw-centre.test"),)),
        (Role.SUPERVISOR, "79"): Contact("sup-79", Language.VI, (
            Endpoint(Channel.EMAIL, "supervisor@sw-centre.test"), Endpoint(Channel.SMS, "0902000002"),
        )),
    }
    survivor = SurvivorProfile(
        CASE, Language.VI, True, frozenset({ServiceType.MEDICAL}), (Channel.SMS,),
        (ContactPoint(Channel.SMS, "0911111111", False), ContactPoint(Channel.SMS, "0922222222", True)),
        (ContactWindow.parse("07:00-21:00"),),
    )
    events: list[Event] = [
        NewReferral("ev-1", LEGAL, CASE, ServiceType.LEGAL_AID, "legal-79", "79", Urgency.ROUTINE, "cw-5"),
        NewReferral("ev-2", MEDICAL, CASE, ServiceType.MEDICAL, "clinic-79", "79", Urgency.EMERGENCY, "cw-5"),
        StatusChange("ev-3", MEDICAL, CASE, "clinic-79", "79", ReferralStatus.REQUESTED, ReferralStatus.ACCEPTED,
                     "", "cw-5", ServiceType.MEDICAL, Urgency.EMERGENCY),
        StatusChange("ev-4", LEGAL, CASE, "legal-79", "79", ReferralStatus.REQUESTED, ReferralStatus.EXPIRED,
                     "not_accepted_in_time", "cw-5", ServiceType.LEGAL_AID),
        Escalation("ev-5", LEGAL, CASE, "79", ServiceType.LEGAL_AID, "legal-79", "not_accepted_in_time", "accept",
                   datetime(2025, 6, 2, 13, 0, tzinfo=HCM), rerouted=False, case_worker_id="cw-5"),
    ]
    now = datetime(2025, 6, 2, 14, 0, tzinfo=HCM)

    outbox: list[OutboundMessage] = []
    for event in events:
        for addressee in recipients_for(event, survivor):
            if addressee.role is Role.SURVIVOR:
                decision = survivor_message(event, addressee, survivor, now)
                assert isinstance(decision, Send)
                outbox.append(decision.message)
            else:
                contact = directory[(addressee.role, addressee.recipient_id)]
                outbox.extend(staff_messages(event, addressee, contact, LINKS))

    adapters: dict[Channel, ChannelAdapter] = {
        Channel.EMAIL: EmailChannel(SmtpConfig(smtp_server.host, smtp_server.port, sender="refnet <n@refnet.test>",
                                               timeout=5)),
        Channel.SMS: SmsGatewayChannel(SmsGatewayConfig(gateway.url, "key", timeout=5, trust_env=False)),
        Channel.WEBHOOK: WebhookChannel(lambda m: webhook_receiver.secret, trust_env=False),
    }
    for message in by_priority(outbox):
        result = await adapters[message.channel].send(message)
        assert result.ok, (message.kind, message.channel, result)

    # E-mail, in the order sent: the emergency referral's notices before the routine one's.
    mail = [(rcpt[0], email["Subject"]) for _, rcpt, email in smtp_server.mailbox.messages]
    assert [to for to, _ in mail] == [
        "duty@clinic.test",  # ev-2, emergency: new referral to the clinic
        "cw5@sw-centre.test",  # ev-3, emergency: accepted
        "desk@legal.test",  # ev-1, routine: new referral to legal aid, in English
        "cw5@sw-centre.test",  # ev-4: legal aid's referral expired: the case worker hears of it...
        "desk@legal.test",  # ...and legal aid is told it is no longer theirs
        "supervisor@sw-centre.test",  # ev-5: the SLA breach goes to the province's supervisor
    ]
    assert mail[0][1].startswith("[KHẨN CẤP] Chuyển gửi mới " + short_ref(MEDICAL))
    assert mail[2][1] == f"New referral {short_ref(LEGAL)}: Legal counselling and legal aid"
    assert mail[4][1] == f"Referral {short_ref(LEGAL)} expired (not accepted in time): no action needed"
    assert mail[5][1].startswith("[Quá hạn] Chuyển gửi " + short_ref(LEGAL))

    # SMS: the clinic's duty phone, the supervisor's, and the survivor's safe number, never the unsafe one.
    texts = {r.json()["to"]: r.json()["text"] for r in gateway.requests}
    assert set(texts) == {"0901000001", "0902000002", "0922222222"}
    assert texts["0922222222"] == "Lịch hẹn của bạn đã được xác nhận. Trả lời STOP để ngừng nhận tin nhắn."

    # The clinic's own system got the signed webhook for the new referral, and verified it.
    (hook,) = webhook_receiver.accepted
    assert hook.json()["referral_id"] == MEDICAL and hook.json()["urgency"] == "emergency"
    assert webhook_receiver.rejected == []
    # Providers never see the case id (staff inside the hotline do, in their console links).
    provider_sms = [r for r in gateway.requests if r.json()["to"] == "0901000001"]
    assert all(CASE not in r.body.decode() for r in [*provider_sms, hook])
    assert CASE not in smtp_server.mailbox.messages[0][2].as_string()
