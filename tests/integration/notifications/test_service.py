"""The notifications service on a real database (SQLite and PostgreSQL) with real channels: a real SMTP
server, a real HTTP SMS gateway, a real webhook receiver, intake's contact API over mutual TLS, the real
Kafka topics for dead letters and status events, and the in-app feed over gRPC with mutual TLS (machines by
their certificates, people with their access tokens from the real identity provider)."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
import pytest_asyncio
from google.protobuf.message import DecodeError
from sqlalchemy import Engine, select

from notifications.adapters.dead_letters import KafkaDeadLetters
from notifications.adapters.directory_file import load_directory_file
from notifications.adapters.intake_contacts import IntakeContacts
from notifications.adapters.tables import deliveries, notices
from notifications.bootstrap import bootstrap
from notifications.config import MIGRATIONS, Settings
from notifications.domain import commands
from notifications.domain.messages import (
    Channel,
    EmergencyCase,
    Escalation,
    Language,
    NewReferral,
    ReferralStatus,
    StatusChange,
    Urgency,
)
from notifications.domain.rendering import Links, short_ref
from notifications.domain.retry import RetryPolicy
from notifications.domain.safe_contact import ContactWindow
from notifications.entrypoints.grpc_api import NotificationsServicer
from notifications.service_layer.handlers import Policy
from refnet.common.v1.envelope_pb2 import DeadLetter, EventEnvelope
from refnet.intake.v1 import contact_service_pb2 as contact_pb
from refnet.intake.v1 import contact_service_pb2_grpc as contact_grpc
from refnet.intake.v1 import types_pb2 as it
from refnet.notifications.v1 import events_pb2
from refnet.notifications.v1 import notifications_service_pb2 as pb
from refnet.notifications.v1 import notifications_service_pb2_grpc as pb_grpc
from refnet_dev.certs import DevPki
from refnet_dev.kafka import KafkaBroker, read_records
from refnet_dev.keycloak import Keycloak
from refnet_platform import kafka_clients
from refnet_platform.bus import MessageBus
from refnet_platform.caller import MACHINE_ROLES, Role
from refnet_platform.grpc_server import DomainErrorInterceptor
from refnet_platform.identity import (
    Authenticator,
    OidcConfig,
    TokenVerifier,
    bearer,
    channel_credentials,
    server_credentials,
)
from refnet_platform.outbox import Relay
from refnet_platform.runtime import open_database
from refnet_platform.vocabulary import ServiceType

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=HCM)
LINKS = Links("https://partners.refnet.test", "https://console.refnet.test")
CASE = str(uuid.uuid4())


def directory(tmp_path: Path, webhook_url: str = "") -> Path:
    path = tmp_path / "directory.json"
    path.write_text(json.dumps({
        "providers": [
            {"provider_id": "qn-hospital", "sector": "health", "province_code": "22",
             "duty_contact": {"email": "duty@hospital.test", "phone": "0901000001", "webhook_url": webhook_url,
                              "language": "vi"}},
            {"provider_id": "qn-legal-aid", "sector": "legal_aid", "province_code": "22",
             "duty_contact": {"email": "desk@legal.test", "language": "en"}},
        ],
        "supervisors": [{"province_code": "22", "supervisor_ids": ["qn-supervisor"],
                         "duty_contact": {"email": "supervisor@swc.test", "phone": "0902000002", "language": "vi"}}],
        "case_workers": [{"case_worker_id": "qn-worker-7", "province_code": "22",
                          "contact": {"email": "worker7@swc.test", "language": "en"}}],
    }))
    return path


@dataclass
class Service:
    bus: MessageBus
    engine: Engine
    clock: list[datetime] = field(default_factory=lambda: [NOON])

    def dispatch(self, at: datetime | None = None) -> dict[str, int]:
        return self.bus.handle(commands.DispatchDue(now=at or self.clock[0]))  # type: ignore[no-any-return]


def start_service(tmp_path: Path, database_url: str, env: dict[str, Any], webhook_url: str = "",
                  retry: dict[str, tuple[float, float, int]] | None = None, concurrency: int = 16,
                  **wiring: Any) -> Iterator[Service]:
    """The service as bootstrap wires it, on its own clock (tests move it instead of waiting)."""
    settings = Settings(DATABASE_URL=database_url, **env)
    engine = open_database(settings, MIGRATIONS)
    clock = [NOON]
    policy = Policy(LINKS, (ContactWindow.parse("08:00-20:00"),), Language.VI,
                    retry={Channel(name): RetryPolicy(*values) for name, values in (retry or {}).items()},
                    concurrency=concurrency, clock=lambda: clock[0], jitter=random.Random(1))
    bus = bootstrap(settings, engine, policy=policy, **wiring)
    bus.handle(load_directory_file(directory(tmp_path, webhook_url)))
    try:
        yield Service(bus, engine, clock)
    finally:
        engine.dispose()


class NoDeadLetters:
    def publish(self, letters: Any) -> None:
        raise AssertionError(f"unexpected dead letters: {letters}")


# --- who is told what, over real SMTP, a real SMS gateway and signed webhooks -------------------


@pytest.fixture
def channels_service(tmp_path: Path, database_url: str, smtp_server: Any, sms_gateway: Any,
                     webhook_receiver: Any) -> Iterator[tuple[Service, Any]]:
    gateway = sms_gateway(200)
    env = {"smtp_host": smtp_server.host, "smtp_port": smtp_server.port, "smtp_sender": "refnet <n@refnet.test>",
           "sms_gateway_url": gateway.url, "sms_api_key": "test-key",
           "webhook_secrets": {"qn-hospital": webhook_receiver.secret.decode()}}
    # One send at a time per lane, so the order mail reaches the server is the order it was claimed in.
    for service in start_service(tmp_path, database_url, env, webhook_url=webhook_receiver.url, concurrency=1,
                                 dead_letters=NoDeadLetters()):
        yield service, gateway


def test_each_event_reaches_the_right_people_in_their_language_and_emergencies_first(
    channels_service: tuple[Service, Any], smtp_server: Any, webhook_receiver: Any,
) -> None:
    service, gateway = channels_service
    medical, legal = str(uuid.uuid4()), str(uuid.uuid4())
    for command in (
        commands.Notify(NewReferral("ev-1", legal, CASE, ServiceType.LEGAL_AID, "qn-legal-aid", "22",
                                    Urgency.ROUTINE, "qn-worker-7")),
        commands.Notify(StatusChange("ev-2", legal, CASE, "qn-legal-aid", "22", ReferralStatus.REQUESTED,
                                     ReferralStatus.REJECTED, "no_capacity",
                                     "qn-worker-7", ServiceType.LEGAL_AID)),
        commands.Notify(Escalation("ev-3", legal, CASE, "22", ServiceType.LEGAL_AID, "qn-legal-aid",
                                   "not_accepted_in_time", "accept", NOON, case_worker_id="qn-worker-7")),
        commands.NoteCase(CASE, "22", "qn-worker-7", frozenset(), EmergencyCase("ev-4", CASE, "22", "qn-worker-7", 2)),
        commands.Notify(NewReferral("ev-5", medical, CASE, ServiceType.MEDICAL, "qn-hospital", "22",
                                    Urgency.EMERGENCY, "qn-worker-7")),
    ):
        service.clock[0] += timedelta(seconds=1)  # events arrive one after the other
        service.bus.handle(command)
    # The in-app notices are in their feeds already; the webhook's 2xx is a confirmed delivery.
    counts = service.dispatch()
    assert counts == {"sent": 8, "delivered": 1}

    mail = [(rcpt[0], email["Subject"]) for _, rcpt, email in smtp_server.mailbox.messages]
    # Emergencies first (the emergency case and the emergency referral), then the rest as they came.
    assert [to for to, _ in mail] == ["supervisor@swc.test", "duty@hospital.test", "desk@legal.test",
                                      "worker7@swc.test", "supervisor@swc.test"]
    subjects = dict(zip(["case", "medical", "legal", "rejected", "sla"], [s for _, s in mail], strict=True))
    assert subjects["medical"].startswith("[KHẨN CẤP] Chuyển gửi mới " + short_ref(medical))  # Vietnamese desk
    assert subjects["legal"] == f"New referral {short_ref(legal)}: Legal counselling and legal aid"  # English desk
    assert subjects["rejected"].startswith(f"Referral {short_ref(legal)} (CS-")  # the case worker reads English
    assert subjects["sla"].startswith("[Quá hạn] Chuyển gửi " + short_ref(legal))

    texts = [(r.json()["to"], r.headers["Idempotency-Key"], r.json()["reference"]) for r in gateway.requests]
    assert [to for to, _, _ in texts] == ["0902000002", "0901000001", "0902000002"]
    assert all(key == reference for _, key, reference in texts)  # the notice id, for the gateway to dedupe on
    (hook,) = webhook_receiver.accepted
    assert webhook_receiver.rejected == []
    assert (hook.json()["referral_id"], hook.json()["urgency"]) == (medical, "emergency")
    # Providers never see the case id; e-mails carry the notice id for their systems to dedupe on.
    provider_mail = [e for _, rcpt, e in smtp_server.mailbox.messages if rcpt[0] in ("duty@hospital.test",
                                                                                       "desk@legal.test")]
    assert all(CASE not in e.as_string() for e in provider_mail)
    assert CASE not in hook.body.decode() and all(CASE not in r.body.decode() for r in gateway.requests
                                                  if r.json()["to"] == "0901000001")
    assert len({e["X-Refnet-Notice-Id"] for _, _, e in smtp_server.mailbox.messages}) == 5

    # The same events again (a redelivery): nothing new is recorded, nothing is sent again.
    service.bus.handle(commands.Notify(NewReferral("ev-5", medical, CASE, ServiceType.MEDICAL, "qn-hospital", "22",
                                                   Urgency.EMERGENCY, "qn-worker-7")))
    assert service.dispatch() == {}
    assert len(smtp_server.mailbox.messages) == 5 and len(gateway.requests) == 3


# --- a survivor: deferred to her window, then sent to her safe number ---------------------------


@dataclass
class FakeIntake:
    """Intake's CaseContactService over mutual TLS: answers from `reply`, records who asked."""

    address: str
    pki: DevPki
    reply: contact_pb.GetCaseContactResponse
    code: grpc.StatusCode | None = None
    asked: list[tuple[str, str, contact_pb.GetCaseContactRequest]] = field(default_factory=list)


@pytest.fixture
def fake_intake(tmp_path: Path) -> Iterator[FakeIntake]:
    pki = DevPki(tmp_path / "certs").ensure()
    fake = FakeIntake("", pki, contact_pb.GetCaseContactResponse())

    class Servicer(contact_grpc.CaseContactServiceServicer):
        def GetCaseContact(self, request: Any, context: Any) -> contact_pb.GetCaseContactResponse:
            auth = context.auth_context()
            from cryptography import x509

            cert = x509.load_pem_x509_certificate(auth["x509_pem_cert"][0])
            fake.asked.append((cert.subject.rfc4514_string(), request.purpose, request))
            if fake.code is not None:
                context.abort(fake.code, "refused")
            return fake.reply

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    contact_grpc.add_CaseContactServiceServicer_to_server(Servicer(), server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(pki.server_dir))
    server.start()
    fake.address = f"127.0.0.1:{port}"
    try:
        yield fake
    finally:
        server.stop(0)


def with_her_contacts(tmp_path: Path, database_url: str, sms_gateway: Any,
                      fake_intake: FakeIntake) -> Iterator[tuple[Service, Any]]:
    """The service reading her contact from the fake intake over mutual TLS, her case noted (medical
    consented), with an SMS gateway that accepts everything."""
    gateway = sms_gateway(200)
    cert, key = fake_intake.pki.client("notifications", "service")
    contacts = IntakeContacts.from_files(fake_intake.address, fake_intake.pki.ca, cert, key)
    env = {"sms_gateway_url": gateway.url, "sms_api_key": "k"}
    try:
        for service in start_service(tmp_path, database_url, env, contacts=contacts, dead_letters=NoDeadLetters()):
            service.bus.handle(commands.NoteCase(CASE, "22", "qn-worker-7", frozenset({ServiceType.MEDICAL})))
            yield service, gateway
    finally:
        contacts.close()


def test_a_deferred_message_is_sent_when_her_window_opens_only_to_her_safe_number(
    tmp_path: Path, database_url: str, sms_gateway: Any, fake_intake: FakeIntake,
) -> None:
    for service, gateway in with_her_contacts(tmp_path, database_url, sms_gateway, fake_intake):
        referral = str(uuid.uuid4())
        service.clock[0] = datetime(2026, 3, 2, 22, 15, tzinfo=HCM)  # quiet hours in Vietnam
        service.bus.handle(commands.Notify(StatusChange(
            "ev-acc", referral, CASE, "qn-hospital", "22", ReferralStatus.REQUESTED, ReferralStatus.ACCEPTED, "",
            "qn-worker-7", ServiceType.MEDICAL)))
        fake_intake.reply = contact_pb.GetCaseContactResponse(
            name="Her Name", phone="0922 222 222", phone_is_safe=True, categories=["name", "phone", "safe_contact"])

        service.dispatch()  # the case worker is told at once; she is not, at night (she gave no safe times)
        assert [r.json()["to"] for r in gateway.requests] == []
        assert len(fake_intake.asked) == 1  # her record read once, for her safe times
        service.dispatch(datetime(2026, 3, 3, 7, 59, tzinfo=HCM))
        assert gateway.requests == [] and len(fake_intake.asked) == 1  # deferred to 08:00: not read again before

        service.dispatch(datetime(2026, 3, 3, 8, 0, tzinfo=HCM))
        (sms,) = gateway.requests
        assert sms.json()["to"] == "0922 222 222"
        assert sms.json()["text"] == "Lịch hẹn của bạn đã được xác nhận. Trả lời STOP để ngừng nhận tin nhắn."
        (who, purpose, request) = fake_intake.asked[-1]
        assert (who, purpose) == ("CN=notifications,OU=service,O=refnet", "survivor_notice")
        assert (request.case_id, request.referral_id, request.recipient_sector) == (CASE, referral, "health")
        service.dispatch(datetime(2026, 3, 3, 9, 0, tzinfo=HCM))
        assert len(gateway.requests) == 1

        # A second notice while her number is no longer marked safe: withheld, nothing sent.
        fake_intake.reply = contact_pb.GetCaseContactResponse(phone="0922 222 222", phone_is_safe=False,
                                                              categories=["phone"])
        service.clock[0] = datetime(2026, 3, 3, 10, 0, tzinfo=HCM)
        service.bus.handle(commands.Notify(StatusChange(
            "ev-fail", referral, CASE, "qn-hospital", "22", ReferralStatus.ACCEPTED, ReferralStatus.FAILED,
            "other", "qn-worker-7", ServiceType.MEDICAL)))
        service.dispatch()
        # And once her consent is withdrawn at intake, intake refuses and nothing more is sent.
        fake_intake.code = grpc.StatusCode.FAILED_PRECONDITION
        service.bus.handle(commands.Notify(StatusChange(
            "ev-cancel", referral, CASE, "qn-hospital", "22", ReferralStatus.IN_SERVICE, ReferralStatus.CANCELLED,
            "other", "qn-worker-7", ServiceType.MEDICAL)))
        service.dispatch()
        assert [r.json()["to"] for r in gateway.requests] == ["0922 222 222", "0901000001"]  # + the provider's


def her_delivery(service: Service, event_id: str) -> dict[str, Any]:
    query = select(deliveries.c.status, deliveries.c.next_attempt_at, deliveries.c.detail).join(
        notices, notices.c.notice_id == deliveries.c.notice_id).where(
        deliveries.c.lane == "survivor", notices.c.source_event_id == event_id)
    with service.engine.connect() as conn:
        (row,) = conn.execute(query).mappings()
    return dict(row)


def test_her_own_safe_times_from_intake_decide_when_she_is_told(
    tmp_path: Path, database_url: str, sms_gateway: Any, fake_intake: FakeIntake,
) -> None:
    for service, gateway in with_her_contacts(tmp_path, database_url, sms_gateway, fake_intake):
        referral = str(uuid.uuid4())
        # Monday noon, inside the default 08:00-20:00; she said only Tuesday and Thursday 21:30-22:15 are safe.
        fake_intake.reply = contact_pb.GetCaseContactResponse(
            phone="0922 222 222", phone_is_safe=True, categories=["phone", "safe_contact"],
            safe_times=[it.SafeContactTime(weekdays=[2, 4], start="21:30", end="22:15")])
        service.bus.handle(commands.Notify(StatusChange(
            "ev-acc", referral, CASE, "qn-hospital", "22", ReferralStatus.REQUESTED, ReferralStatus.ACCEPTED, "",
            "qn-worker-7", ServiceType.MEDICAL)))
        service.dispatch()
        tuesday = datetime(2026, 3, 3, 21, 30, tzinfo=HCM)
        row = her_delivery(service, "ev-acc")
        assert (row["status"], row["next_attempt_at"].replace(tzinfo=UTC), row["detail"]) == (
            "deferred", tuesday, "outside_safe_window")
        service.dispatch(datetime(2026, 3, 3, 12, 0, tzinfo=HCM))  # inside the default window: still not hers
        assert gateway.requests == []
        service.dispatch(tuesday)
        assert [r.json()["to"] for r in gateway.requests] == ["0922 222 222"]
        assert her_delivery(service, "ev-acc")["status"] == "sent"

        # Times intake should never have let through: she is not told at a time not known to be safe.
        fake_intake.reply = contact_pb.GetCaseContactResponse(
            phone="0922 222 222", phone_is_safe=True, categories=["phone", "safe_contact"],
            safe_times=[it.SafeContactTime(start="21:30", end="26:00")])
        service.bus.handle(commands.Notify(StatusChange(
            "ev-fail", referral, CASE, "qn-hospital", "22", ReferralStatus.ACCEPTED, ReferralStatus.FAILED,
            "other", "qn-worker-7", ServiceType.MEDICAL)))
        service.dispatch(datetime(2026, 3, 3, 21, 45, tzinfo=HCM))
        assert len(gateway.requests) == 1
        assert (her_delivery(service, "ev-fail")["status"], her_delivery(service, "ev-fail")["detail"]) == (
            "cancelled", "invalid_safe_times")


# --- retries, then the dead-letter topic and the operations team's alert -----------------------


def records(bootstrap: str, topic: str) -> list[Any]:
    return read_records(bootstrap, topic)


def test_a_gateway_that_keeps_failing_is_retried_then_dead_lettered_with_an_alert(
    tmp_path: Path, database_url: str, sms_gateway: Any, kafka_broker: KafkaBroker,
) -> None:
    gateway = sms_gateway(503)
    env = {"sms_gateway_url": gateway.url, "sms_api_key": "k", "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap}
    dead_letters = KafkaDeadLetters(kafka_broker.bootstrap)
    referral, event_id = str(uuid.uuid4()), str(uuid.uuid4())  # the topics outlive the test: its own ids
    for service in start_service(tmp_path, database_url, env, dead_letters=dead_letters,
                                 retry={"sms": (2.0, 30.0, 4)}):
        service.bus.handle(commands.Notify(NewReferral(event_id, referral, CASE, ServiceType.MEDICAL, "qn-hospital",
                                                       "22", Urgency.HIGH, "qn-worker-7")))
        moment = NOON
        for _ in range(4):  # the worker's clock moves on past each backoff; nobody waits
            service.dispatch(moment)
            moment += timedelta(seconds=31)
        assert len(gateway.requests) == 4
        assert len({r.headers["Idempotency-Key"] for r in gateway.requests}) == 1
        service.dispatch(moment + timedelta(hours=1))
        assert len(gateway.requests) == 4  # given up
        relay = Relay(service.engine, kafka_clients.producer(kafka_broker.bootstrap, "notifications-test-relay"))
        relay.publish_pending()
        relay.producer.close()
    dead_letters.close()
    notice_id = gateway.requests[0].headers["Idempotency-Key"]

    letters = [DeadLetter.FromString(r.value) for r in records(kafka_broker.bootstrap, "notifications.dlq.v1")]
    (letter,) = [d for d in letters if notice_id in d.error]
    assert (letter.consumer, letter.attempts, letter.event_id, letter.original_topic) == (
        "notifications-worker", 4, event_id, "")
    assert letter.error.startswith("delivery retries_exhausted: http 503")

    alerts = []
    for record in records(kafka_broker.bootstrap, "notifications.deliveries.v1"):
        try:
            envelope = EventEnvelope.FromString(record.value)
        except DecodeError:  # the topic outlives the test: another test's poison record
            continue
        if envelope.type == "refnet.notifications.v1.NotificationFailed":
            failed = events_pb2.NotificationFailed()
            envelope.data.Unpack(failed)
            if failed.notice_id == notice_id:
                alerts.append((failed, record.key, envelope.subject))
    ((failed, key, subject),) = alerts
    assert (failed.reason, failed.detail, failed.attempts, failed.channel, failed.role) == (
        "retries_exhausted", "http 503", 4, "sms", "provider")
    assert (key, subject) == (b"22", f"referral/{referral}")


# --- the in-app feed over gRPC with mutual TLS -------------------------------------------------


@dataclass
class Api:
    service: Service
    pki: DevPki
    keycloak: Keycloak
    address: str

    def stub(self, subject: str, role: str) -> pb_grpc.NotificationsServiceStub:
        """A machine by its own certificate; operators, supervisors and ops are people: the realm user
        `subject` (see `person`)."""
        if Role(role) not in MACHINE_ROLES:
            return self.person(subject)
        cert, key = self.pki.client(subject, role)
        channel = grpc.aio.secure_channel(self.address, channel_credentials(self.pki.ca, cert, key))
        return pb_grpc.NotificationsServiceStub(channel)

    def person(self, username: str) -> pb_grpc.NotificationsServiceStub:
        """The realm user `username` (any role, an agency's staff too) through a front door (the web app's
        certificate), every call carrying their access token."""
        cert, key = self.pki.client("refnet-web", Role.GATEWAY)
        keycloak = self.keycloak

        def add_token(context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback) -> None:
            try:
                callback(bearer(keycloak.token(username)), None)
            except Exception as exc:  # handed to gRPC, which fails the call with it
                callback((), exc)

        credentials = grpc.composite_channel_credentials(channel_credentials(self.pki.ca, cert, key),
                                                         grpc.metadata_call_credentials(add_token))
        return pb_grpc.NotificationsServiceStub(grpc.aio.secure_channel(self.address, credentials))


@pytest_asyncio.fixture(loop_scope="session")
async def api(tmp_path: Path, database_url: str, keycloak: Keycloak) -> AsyncIterator[Api]:
    pki = DevPki(tmp_path / "certs").ensure()
    authenticator = Authenticator(TokenVerifier(OidcConfig(keycloak.issuer)))
    for service in start_service(tmp_path, database_url, {}, adapters={}, dead_letters=NoDeadLetters()):
        service.clock[0] = datetime.now(UTC)
        server = grpc.aio.server(interceptors=[DomainErrorInterceptor(authenticator)])
        pb_grpc.add_NotificationsServiceServicer_to_server(NotificationsServicer(service.bus, 0.05), server)
        port = server.add_secure_port("127.0.0.1:0", server_credentials(pki.server_dir))
        await server.start()
        try:
            yield Api(service, pki, keycloak, f"127.0.0.1:{port}")
        finally:
            await server.stop(0)


async def notify_and_dispatch(api: Api, event_id: str, provider: str = "qn-hospital") -> None:
    command = commands.Notify(NewReferral(event_id, str(uuid.uuid4()), CASE, ServiceType.MEDICAL, provider, "22",
                                          Urgency.ROUTINE, "qn-worker-7"))
    await asyncio.to_thread(api.service.bus.handle, command)
    await asyncio.to_thread(api.service.bus.handle, commands.DispatchDue())


@pytest.mark.asyncio(loop_scope="session")
async def test_the_feed_lists_and_streams_only_the_callers_own_notices(api: Api) -> None:
    hospital = api.stub("qn-hospital", "agency")
    await notify_and_dispatch(api, "ev-a")
    await notify_and_dispatch(api, "ev-b", provider="qn-legal-aid")
    listed = await hospital.ListNotices(pb.ListNoticesRequest(recipient_id="qn-hospital"))
    assert [(n.kind, n.channel, n.status, n.urgency) for n in listed.notices] == [
        ("referral_new", "in_app", "delivered", "routine")]
    assert listed.notices[0].subject.startswith("Chuyển gửi mới RF-")

    stream = hospital.WatchNotices(pb.WatchNoticesRequest())
    received: list[pb.Notice] = []

    async def watch() -> None:
        async for reply in stream:
            received.append(reply.notice)
            if len(received) == 2:
                return

    watching = asyncio.create_task(watch())
    await asyncio.sleep(0.3)  # the stream is open and at the end of the feed
    await notify_and_dispatch(api, "ev-c")
    await notify_and_dispatch(api, "ev-d", provider="qn-legal-aid")  # not the hospital's
    await notify_and_dispatch(api, "ev-e")
    await asyncio.wait_for(watching, 10)
    stream.cancel()
    assert [n.sequence > listed.notices[0].sequence for n in received] == [True, True]
    assert len({n.notice_id for n in received} | {listed.notices[0].notice_id}) == 3

    # Another agency; the operations team (flows and ids, never notices); another operator asking for
    # qn-worker-7's feed (qn-operator, signed in with the same province).
    for subject, role, request in (("qn-legal-aid", "agency", "qn-hospital"), ("ops-oncall", "ops", ""),
                                   ("qn-operator", "operator", "qn-worker-7")):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await api.stub(subject, role).ListNotices(pb.ListNoticesRequest(recipient_id=request))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            async for _ in api.stub(subject, role).WatchNotices(pb.WatchNoticesRequest(recipient_id=request)):
                pass
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await hospital.ListNotices(pb.ListNoticesRequest(page_size=-1))
    assert (bad.value.code(), bad.value.details().split(":")[0]) == (grpc.StatusCode.INVALID_ARGUMENT, "page_size")


@pytest.mark.asyncio(loop_scope="session")
async def test_people_signed_in_read_their_own_feeds(api: Api) -> None:
    await notify_and_dispatch(api, "ev-new")
    referral = str(uuid.uuid4())
    accepted = commands.Notify(StatusChange("ev-acc", referral, CASE, "qn-hospital", "22", ReferralStatus.REQUESTED,
                                            ReferralStatus.ACCEPTED, "", "qn-worker-7", ServiceType.MEDICAL))
    await asyncio.to_thread(api.service.bus.handle, accepted)
    # The hospital's staff member reads the hospital's feed: her token's agency_id, as the hospital's own system.
    staff = await api.person("qn-hospital-staff").ListNotices(pb.ListNoticesRequest())
    system = await api.stub("qn-hospital", "agency").ListNotices(pb.ListNoticesRequest())
    assert [(n.recipient_id, n.kind) for n in staff.notices] == [("qn-hospital", "referral_new")]
    assert [n.notice_id for n in staff.notices] == [n.notice_id for n in system.notices]
    # A case worker reads her own feed, by her user name; another operator's is empty for her.
    worker = api.stub("qn-worker-7", "operator")
    for request in (pb.ListNoticesRequest(), pb.ListNoticesRequest(recipient_id="qn-worker-7")):
        mine = await worker.ListNotices(request)
        assert [(n.recipient_id, n.kind, n.referral_id) for n in mine.notices] == [
            ("qn-worker-7", "referral_status", referral)]
    assert list((await api.stub("ht-worker-3", "operator").ListNotices(pb.ListNoticesRequest())).notices) == []


async def escalate(api: Api, event_id: str, province: str) -> str:
    """An SLA breach in a province: a notice for that province's supervisor feed."""
    referral = str(uuid.uuid4())
    command = commands.Notify(Escalation(event_id, referral, CASE, province, ServiceType.MEDICAL, "qn-hospital",
                                         "not_accepted_in_time", "accept", datetime.now(UTC)))
    await asyncio.to_thread(api.service.bus.handle, command)
    return referral


def supervised(reply: pb.ListNoticesResponse) -> list[tuple[str, str, str]]:
    return [(n.recipient_id, n.province_code, n.referral_id) for n in reply.notices]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_supervisor_reads_the_provinces_in_her_token_and_no_others(api: Api) -> None:
    quang_ninh, ha_tinh = await escalate(api, "ev-22", "22"), await escalate(api, "ev-42", "42")
    qn = api.stub("qn-supervisor", "supervisor")  # her token: provinces ["22"]
    for request in (pb.ListNoticesRequest(), pb.ListNoticesRequest(recipient_id="22")):
        assert supervised(await qn.ListNotices(request)) == [("22", "22", quang_ninh)]
    # Province 42's feed is not hers to read, by listing or by streaming.
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await qn.ListNotices(pb.ListNoticesRequest(recipient_id="42"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        async for _ in qn.WatchNotices(pb.WatchNoticesRequest(recipient_id="42")):
            pass
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The token decides, not the directory: its supervisor_ids list only qn-supervisor, yet ht-supervisor
    # (provinces ["42"]) reads 42's feed; the national line's supervisor ("*") reads every province's.
    assert supervised(await api.stub("ht-supervisor", "supervisor").ListNotices(pb.ListNoticesRequest())) == [
        ("42", "42", ha_tinh)]
    national = api.stub("national-111-supervisor", "supervisor")
    assert supervised(await national.ListNotices(pb.ListNoticesRequest())) == [
        ("42", "42", ha_tinh), ("22", "22", quang_ninh)]
    assert supervised(await national.ListNotices(pb.ListNoticesRequest(recipient_id="42"))) == [
        ("42", "42", ha_tinh)]

    # Her stream brings province 22's new notices as they come, never 42's.
    stream = qn.WatchNotices(pb.WatchNoticesRequest())
    first = asyncio.create_task(stream.read())
    await asyncio.sleep(0.3)  # the stream is open and at the end of her feeds
    await escalate(api, "ev-42-later", "42")
    later = await escalate(api, "ev-22-later", "22")
    reply = await asyncio.wait_for(first, 10)
    stream.cancel()
    assert (reply.notice.recipient_id, reply.notice.referral_id) == ("22", later)

    # A certificate claiming her role is refused before anything is read: supervisors are people.
    cert, key = api.pki.client("qn-supervisor", "supervisor")
    async with grpc.aio.secure_channel(api.address, channel_credentials(api.pki.ca, cert, key)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.NotificationsServiceStub(channel).ListNotices(pb.ListNoticesRequest())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
