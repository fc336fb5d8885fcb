"""Notifications in the real network: the real processes on a real broker, delivering to a real SMTP server,
a real HTTP server playing the SMS gateway (it honours Idempotency-Key, as gateways do) and a partner's
webhook receiver. A case tells the right people and the survivor only on her safe number; people read their
in-app feeds with their tokens from the real identity provider, a supervisor only her provinces'; a worker
killed mid-batch (SIGKILL) and restarted sends nothing twice and loses nothing."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import grpc
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from notifications.adapters.channels import SeenSignatures, WebhookRejected, verify_webhook
from notifications.adapters.tables import deliveries, notices
from refnet.common.v1 import types_pb2 as t
from refnet.intake.v1 import intake_service_pb2 as intake_pb
from refnet.intake.v1 import intake_service_pb2_grpc as intake_grpc
from refnet.intake.v1 import types_pb2 as it
from refnet.notifications.v1 import notifications_service_pb2 as pb
from refnet.notifications.v1 import notifications_service_pb2_grpc as pb_grpc
from refnet.referral.v1 import events_pb2 as referral_events
from refnet.referral.v1 import referral_service_pb2 as referral_pb
from refnet.referral.v1 import referral_service_pb2_grpc as referral_grpc
from refnet_dev.kafka import KafkaBroker
from refnet_dev.keycloak import Keycloak
from refnet_dev.network import Network
from refnet_dev.util import eventually as wait_until
from refnet_dev.util import free_port, repo_root
from refnet_platform import kafka_clients
from refnet_platform.engine import make_engine
from refnet_platform.envelope import OutgoingEvent, wrap

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
DISPATCH_BATCH = 8  # deliveries a lane claims (and records) at a time: what a kill can leave claimed

HOST = "127.0.0.1"
WEBHOOK_SECRET = "e2e-partner-secret"
SURVIVOR_PHONE = "0912 345 678"
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
CONFIRMED_VI = "Lịch hẹn của bạn đã được xác nhận. Trả lời STOP để ngừng nhận tin nhắn."


eventually = partial(wait_until, timeout=60)


# --- the outside world: an SMTP server, an SMS gateway, a partner's webhook receiver -------------


@dataclass
class Mailbox:
    messages: list[tuple[str, Any]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        self.messages.extend((rcpt, message) for rcpt in envelope.rcpt_tos)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Any]:
        return [m for rcpt, m in list(self.messages) if rcpt == address]


@dataclass
class Gateway:
    """Each request is held `delay` seconds. A repeated Idempotency-Key is answered as the first was and
    sends nothing: `sent` counts the messages that went out, per key."""

    url: str = ""
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    sent: Counter[str] = field(default_factory=Counter)
    kill_after: int = 0
    reached: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def receive(self, headers: dict[str, str], body: bytes) -> None:
        request = dict(json.loads(body), key=headers.get("Idempotency-Key", ""))
        with self.lock:
            self.requests.append(request)
            if self.sent[request["key"]] == 0:
                self.sent[request["key"]] += 1
            if self.kill_after and len(self.requests) >= self.kill_after:
                self.reached.set()
        time.sleep(self.delay)

    def texts_to(self, number: str) -> list[str]:
        return [r["text"] for r in list(self.requests) if r["to"] == number]


@dataclass
class Partner:
    url: str = ""
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


@dataclass
class Outside:
    smtp_port: int
    mailbox: Mailbox
    gateway: Gateway
    partner: Partner


def _http(handle: Callable[[BaseHTTPRequestHandler, bytes], int]) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            status = handle(self, self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            body = b'{"id": "gw"}'
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except BrokenPipeError:  # the worker that asked was killed
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://{HOST}:{server.server_address[1]}"


@pytest.fixture(scope="module")
def outside() -> Iterator[Outside]:
    mailbox, gateway, partner, seen = Mailbox(), Gateway(), Partner(), SeenSignatures()

    def sms(handler: BaseHTTPRequestHandler, body: bytes) -> int:
        gateway.receive(dict(handler.headers.items()), body)
        return 200

    def hook(handler: BaseHTTPRequestHandler, body: bytes) -> int:
        try:
            verify_webhook(WEBHOOK_SECRET.encode(), dict(handler.headers.items()), body, time.time(), seen=seen)
        except WebhookRejected as exc:
            partner.rejected.append(exc.reason)
            return 401
        partner.accepted.append(json.loads(body))
        return 204

    controller = Controller(mailbox, hostname=HOST, port=free_port())
    controller.start()
    servers = [_http(sms), _http(hook)]
    gateway.url, partner.url = servers[0][1], servers[1][1] + "/refnet/hooks"
    try:
        yield Outside(controller.port, mailbox, gateway, partner)
    finally:
        controller.stop()
        for server, _ in servers:
            server.shutdown()
            server.server_close()


def directory_file(path: Path, outside: Outside) -> Path:
    """The demo directory, with duty contacts that reach this test's servers."""
    data = json.loads((repo_root() / "demo" / "directory.json").read_text(encoding="utf-8"))
    contacts = {
        "qn-police-baichay": {"email": "police-baichay@e2e.test", "phone": "0903000003",
                              "webhook_url": outside.partner.url, "language": "vi"},
        "qn-police-halong": {"email": "police-halong@e2e.test", "phone": "0904000004", "language": "vi"},
    }
    for provider in data["providers"]:
        provider["duty_contact"] = contacts.get(provider["provider_id"], {"language": "vi"})
    data["case_workers"] = [{"case_worker_id": "qn-worker-7", "province_code": "22",
                             "contact": {"email": "worker7@e2e.test", "language": "en"}}]
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def network(kafka_broker: KafkaBroker, keycloak: Keycloak, outside: Outside,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("notifications-e2e")
    net = Network(kafka_broker.bootstrap, root / "var", directory_file=directory_file(root / "directory.json", outside),
                  keycloak=keycloak,
                  extra_env={
                      "NOTIFICATIONS_SMTP_HOST": HOST, "NOTIFICATIONS_SMTP_PORT": str(outside.smtp_port),
                      "NOTIFICATIONS_SMTP_SENDER": "refnet <no-reply@e2e.test>",
                      "NOTIFICATIONS_SMS_GATEWAY_URL": outside.gateway.url, "NOTIFICATIONS_SMS_API_KEY": "e2e",
                      "NOTIFICATIONS_SMS_TIMEOUT_S": "2", "NOTIFICATIONS_WEBHOOK_SECRET": WEBHOOK_SECRET,
                      # Any time is safe for a survivor who gave intake no times of her own (one who gave some
                      # waits for them, below; the default window's deferral is proven with a moved clock elsewhere).
                      "NOTIFICATIONS_SURVIVOR_WINDOWS": "00:00-24:00",
                      # A claimed delivery whose worker died is taken over after 3 s, not a minute.
                      "NOTIFICATIONS_DELIVERY_LEASE_S": "3", "NOTIFICATIONS_DISPATCH_INTERVAL_S": "0.2",
                      "NOTIFICATIONS_DISPATCH_BATCH": str(DISPATCH_BATCH)})
    try:
        net.start()
        yield net
    finally:
        net.stop()


# --- one case: who is told, and the survivor only on her safe number ---------------------------


def test_a_case_tells_the_police_the_case_worker_and_the_survivor_only_on_her_safe_number(
    network: Network, outside: Outside,
) -> None:
    name, address = f"Trần Thị Canary {uuid.uuid4().hex[:6]}", "Tổ 9, khu 2, Bãi Cháy"
    request = intake_pb.RegisterCaseRequest(
        client_request_id=f"notifications-e2e-{uuid.uuid4()}", province_code="22", commune_code="06673",
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
        survivor=intake_pb.Survivor(is_child=False, age=34, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True)],
        contact=intake_pb.Contact(name=name, phone=SURVIVOR_PHONE, address=address, phone_is_safe=True),
        case_worker_id="qn-worker-7")
    with network.channel("intake", "qn-worker-7", "operator") as intake_ch, \
            network.channel("referral", "qn-police-baichay", "agency") as police_ch, \
            network.channel("notifications", "qn-police-baichay", "agency") as police_feed_ch, \
            network.channel("notifications", "qn-worker-7", "operator") as worker_feed_ch:
        case_id = intake_grpc.IntakeServiceStub(intake_ch).RegisterCase(request, timeout=15).case.case_id
        police = referral_grpc.ReferralServiceStub(police_ch)
        referral = eventually(lambda: list(police.ListReferrals(referral_pb.ListReferralsRequest(
            provider_id="qn-police-baichay", case_id=case_id)).referrals), "the police referral")[0]

        # The police duty desk: e-mail, SMS and its own system's signed webhook, and its in-app feed.
        mail = eventually(lambda: outside.mailbox.to("police-baichay@e2e.test"), "the police duty e-mail")
        assert mail[0]["Subject"].startswith("Chuyển gửi mới RF-" + referral.referral_id[-8:].upper())
        eventually(lambda: outside.gateway.texts_to("0903000003"), "the police duty SMS")
        hook = eventually(lambda: [h for h in outside.partner.accepted if h["referral_id"] == referral.referral_id],
                          "the police system's webhook")[0]
        assert outside.partner.rejected == []
        feed = pb_grpc.NotificationsServiceStub(police_feed_ch)
        listed = eventually(lambda: list(feed.ListNotices(pb.ListNoticesRequest(case_id=case_id)).notices),
                            "the police in-app notice")
        assert [(n.kind, n.referral_id) for n in listed] == [("referral_new", referral.referral_id)]

        # Accepting tells the case worker (in English, as the directory says) and the survivor, neutrally.
        police.AcceptReferral(referral_pb.AcceptReferralRequest(referral_id=referral.referral_id,
                                                                request_id=str(uuid.uuid4())), timeout=10)
        texts = eventually(lambda: outside.gateway.texts_to(SURVIVOR_PHONE), "her SMS on her safe number")
        assert texts == [CONFIRMED_VI]
        worker_mail = eventually(lambda: outside.mailbox.to("worker7@e2e.test"), "the case worker's e-mail")
        assert any(m["Subject"].startswith(f"Referral RF-{referral.referral_id[-8:].upper()}") for m in worker_mail)
        worker_feed = pb_grpc.NotificationsServiceStub(worker_feed_ch)
        kinds = eventually(lambda: {n.kind for n in worker_feed.ListNotices(
            pb.ListNoticesRequest(case_id=case_id)).notices}, "the case worker's in-app notice")
        assert "referral_status" in kinds

    # Providers read no personal data: not her name, number or address, in any channel.
    provider_parts = [m.as_string() for m in mail] + [json.dumps(hook, ensure_ascii=False)] + \
        outside.gateway.texts_to("0903000003") + [n.body + n.subject for n in listed]
    for part in provider_parts:
        assert name not in part and SURVIVOR_PHONE not in part and address not in part and case_id not in part
    # Her number was used once, and is nowhere in notifications' database or logs.
    assert len(outside.gateway.texts_to(SURVIVOR_PHONE)) == 1
    digits = SURVIVOR_PHONE.encode()
    for path in [network.data_dir / "notifications.db", *(network.data_dir / "logs").glob("notifications-*.log")]:
        if path.exists():
            assert digits not in path.read_bytes(), path.name


# --- the times she gave intake decide when she is told -----------------------------------------


def test_her_notice_waits_for_the_safe_time_she_gave_at_intake(network: Network, outside: Outside) -> None:
    phone = "0913 456 789"
    # Her only safe hour starts three hours from now (the network's default window is the whole day).
    opens = (datetime.now(HCM) + timedelta(hours=3)).replace(second=0, microsecond=0)
    safe = it.SafeContactTime(start=opens.strftime("%H:%M"), end=(opens + timedelta(hours=1)).strftime("%H:%M"))
    request = intake_pb.RegisterCaseRequest(
        client_request_id=f"notifications-e2e-{uuid.uuid4()}", province_code="22", commune_code="06673",
        case_types=[t.CASE_TYPE_DOMESTIC_VIOLENCE], risk_level=t.RISK_LEVEL_MEDIUM,
        survivor=intake_pb.Survivor(is_child=False, age=41, sex=t.SEX_FEMALE),
        needs=[intake_pb.Need(service_type=t.SERVICE_TYPE_POLICE_PROTECTION, consented=True)],
        contact=intake_pb.Contact(phone=phone, phone_is_safe=True, safe_times=[safe]), case_worker_id="qn-worker-7")
    with network.channel("intake", "qn-worker-7", "operator") as intake_ch, \
            network.channel("referral", "qn-police-baichay", "agency") as police_ch:
        case_id = intake_grpc.IntakeServiceStub(intake_ch).RegisterCase(request, timeout=15).case.case_id
        police = referral_grpc.ReferralServiceStub(police_ch)
        referral = eventually(lambda: list(police.ListReferrals(referral_pb.ListReferralsRequest(
            provider_id="qn-police-baichay", case_id=case_id)).referrals), "the police referral")[0]
        police.AcceptReferral(referral_pb.AcceptReferralRequest(referral_id=referral.referral_id,
                                                                request_id=str(uuid.uuid4())), timeout=10)

    engine = make_engine(f"sqlite:///{network.data_dir / 'notifications.db'}")
    query = select(deliveries.c.status, deliveries.c.next_attempt_at, deliveries.c.detail).join(
        notices, notices.c.notice_id == deliveries.c.notice_id).where(
        deliveries.c.lane == "survivor", notices.c.case_id == case_id)

    def deferred() -> dict[str, Any] | None:
        with engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row and row["status"] == "deferred" else None

    try:
        row = eventually(deferred, "her notice deferred to her safe time")
    finally:
        engine.dispose()
    assert (row["next_attempt_at"].replace(tzinfo=UTC), row["detail"]) == (opens, "outside_safe_window")
    assert outside.gateway.texts_to(phone) == []


# --- a supervisor reads the provinces in her token, and no others -------------------------------


def publish_escalations(bootstrap: str, provinces: list[str]) -> list[str]:
    """ReferralEscalated events (an SLA breach) on referral's stream, one per province."""
    producer = kafka_clients.producer(bootstrap, "test")
    referral_ids = [str(uuid.uuid4()) for _ in provinces]
    try:
        for referral_id, province in zip(referral_ids, provinces, strict=True):
            message = referral_events.ReferralEscalated(
                referral_id=referral_id, case_id=str(uuid.uuid4()), need_id=str(uuid.uuid4()), province_code=province,
                service_type=t.SERVICE_TYPE_POLICE_PROTECTION, provider_id="qn-police-baichay",
                reason="not_accepted_in_time", sla="accept", risk_level=t.RISK_LEVEL_MEDIUM)
            envelope = wrap(OutgoingEvent(message, "referral.referrals.v1", province, f"referral/{referral_id}"),
                            "referral")
            producer.produce("referral.referrals.v1", key=province.encode(), value=envelope.SerializeToString())
        producer.flush()
    finally:
        producer.close()
    return referral_ids


def test_a_supervisor_reads_her_provinces_supervisor_notices_and_not_anothers(
    network: Network, kafka_broker: KafkaBroker,
) -> None:
    quang_ninh, ha_tinh = publish_escalations(kafka_broker.bootstrap, ["22", "42"])
    ours = {quang_ninh, ha_tinh}
    with network.person_channel("notifications", "qn-supervisor") as qn_ch, \
            network.person_channel("notifications", "ht-supervisor") as ht_ch:
        qn, ht = pb_grpc.NotificationsServiceStub(qn_ch), pb_grpc.NotificationsServiceStub(ht_ch)

        def escalations(feed: Any, **request: Any) -> list[tuple[str, str, str]] | None:
            found = [(n.recipient_id, n.province_code, n.referral_id) for n in feed.ListNotices(
                pb.ListNoticesRequest(page_size=500, **request)).notices]
            return found if any(r in ours for _, _, r in found) else None

        # ht-supervisor (her token: provinces ["42"]) reads 42's first, so that notice is recorded before
        # qn-supervisor's feed (provinces ["22"]) is shown to lack it.
        ht_seen = eventually(lambda: escalations(ht), "province 42's supervisor notice")
        assert ("42", "42", ha_tinh) in ht_seen and {(r, p) for r, p, _ in ht_seen} == {("42", "42")}
        qn_seen = eventually(lambda: escalations(qn), "province 22's supervisor notice")
        assert ("22", "22", quang_ninh) in qn_seen
        assert {(r, p) for r, p, _ in qn_seen} == {("22", "22")} and ha_tinh not in {r for _, _, r in qn_seen}
        with pytest.raises(grpc.RpcError) as denied:
            qn.ListNotices(pb.ListNoticesRequest(recipient_id="42"), timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


# --- a worker killed mid-batch and restarted: nothing twice, nothing lost ----------------------


def publish_referrals(bootstrap: str, count: int, provider: str) -> list[str]:
    """ReferralRequested events on referral's stream, as the referral service would publish them."""
    producer = kafka_clients.producer(bootstrap, "test")
    referral_ids = [str(uuid.uuid4()) for _ in range(count)]
    try:
        for referral_id in referral_ids:
            message = referral_events.ReferralRequested(
                referral_id=referral_id, case_id=str(uuid.uuid4()), need_id=str(uuid.uuid4()),
                service_type=t.SERVICE_TYPE_POLICE_PROTECTION, provider_id=provider, province_code="22",
                risk_level=t.RISK_LEVEL_MEDIUM, case_worker_id="qn-worker-7")
            event = OutgoingEvent(message, "referral.referrals.v1", "22", f"referral/{referral_id}")
            envelope = wrap(event, "referral")
            producer.produce("referral.referrals.v1", key=b"22", value=envelope.SerializeToString())
        producer.flush()
    finally:
        producer.close()
    return referral_ids


def test_a_worker_killed_mid_batch_and_restarted_loses_nothing_and_repeats_only_under_the_same_key(
    network: Network, outside: Outside, kafka_broker: KafkaBroker,
) -> None:
    count, duty_phone, duty_mail = 20, "0904000004", "police-halong@e2e.test"
    gateway = outside.gateway
    gateway.delay, gateway.kill_after = 0.5, len(gateway.requests) + 6
    referral_ids = publish_referrals(kafka_broker.bootstrap, count, "qn-police-halong")

    assert gateway.reached.wait(60), "the worker never got going"
    network.stop_process("notifications-worker", signal.SIGKILL)  # an SMS is in flight at this moment
    killed_at = len(gateway.texts_to(duty_phone))
    network.start_process("notifications-worker")

    def all_sent() -> bool:
        return len([k for k, r in _keys_to(gateway, duty_phone).items() if r]) == count

    eventually(all_sent, f"all {count} SMS after the restart", timeout=90)
    eventually(lambda: len(outside.mailbox.to(duty_mail)) >= count, f"all {count} e-mails")
    with network.channel("notifications", "qn-police-halong", "agency") as channel:
        feed = pb_grpc.NotificationsServiceStub(channel)
        listed = eventually(lambda: (lambda n: n if len(n) >= count else None)(list(
            feed.ListNotices(pb.ListNoticesRequest(page_size=100)).notices)), f"all {count} in-app notices")
    time.sleep(4)  # longer than a lease: anything left claimed by the killed worker has been taken over

    keys = _keys_to(gateway, duty_phone)
    assert 0 < killed_at < count  # it really was killed mid-batch
    assert len(keys) == count and all(gateway.sent[k] == 1 for k in keys)  # each SMS went out exactly once
    repeats = sum(keys.values()) - count
    # At most the batch claimed at the kill (sent, not yet recorded), re-sent under the same Idempotency-Key.
    assert repeats <= DISPATCH_BATCH
    # SMTP has no idempotency: the e-mails sent but not yet recorded at the kill go again, with the same
    # Message-ID (mail systems drop the repeat). Each notice has one Message-ID; at most a batch repeats.
    mails = outside.mailbox.to(duty_mail)
    message_ids = {m["Message-ID"] for m in mails}
    assert len(message_ids) == count and len(mails) - count <= DISPATCH_BATCH
    assert sorted(n.referral_id for n in listed) == sorted(referral_ids)
    print(f"\nkilled after {killed_at} SMS; {count} SMS, {len(mails)} e-mails ({len(message_ids)} Message-IDs), "
          f"{len(listed)} in-app notices; "
          f"{repeats} request(s) repeated under the same Idempotency-Key")


def _keys_to(gateway: Gateway, number: str) -> Counter[str]:
    return Counter(r["key"] for r in list(gateway.requests) if r["to"] == number)
